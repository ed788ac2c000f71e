"""Executions listed with the filters of ``ListDurableExecutionsByFunction``, on any plane.

A :class:`~durable_ext.runtime.ControlPlane` pages executions newest first, by function
and one status. :func:`list_filtered` adds what the API's model offers beyond that
(several statuses, a name, a start-time range, oldest first): a listing that needs
none of them is the plane's own page; one that does scans the plane's pages (at most
``scan_cap`` executions), filters, and pages by offset (markers ``o:N``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from durable_ext.errors import InvalidParameterValueError

if TYPE_CHECKING:
    from durable_ext.runtime.control import ControlPlane

__all__ = ["SCAN_CAP", "list_filtered"]

SCAN_CAP = 100_000
"""Most executions one filtered listing call scans (the planes page newest first)."""
_SCAN_PAGE = 1000
_STORE_MARKER = re.compile(r"[0-9]{1,20}:\S+")


def list_filtered(
    plane: ControlPlane,
    *,
    function_name: str | None = None,
    statuses: Sequence[str] = (),
    name: str | None = None,
    started_after: float | None = None,
    started_before: float | None = None,
    reverse: bool = False,
    max_items: int = 100,
    marker: str | None = None,
    scan_cap: int = SCAN_CAP,
) -> dict[str, Any]:
    """Return one page ``{"DurableExecutions": [...], "NextMarker"?: str}``.

    Args:
        plane: Where the executions are.
        function_name: Only this function's (every function's when None, where the
            plane can list across functions).
        statuses: Only these statuses (any when empty).
        name: Only executions of this name.
        started_after: Only those started at or after this epoch second.
        started_before: Only those started at or before this epoch second.
        reverse: Oldest first.
        max_items: Page size.
        marker: The previous page's ``NextMarker``.
        scan_cap: Most executions a filtered call looks at.

    Raises:
        InvalidParameterValueError: a marker no page of this listing gave.

    """
    simple = not (name or started_after is not None or started_before is not None or reverse
                  or len(statuses) > 1)
    if simple:
        # The stores' markers are "<start ms>:<arn>"; anything else is the caller's error.
        if marker is not None and not _STORE_MARKER.fullmatch(marker):
            raise InvalidParameterValueError("Invalid marker")
        page: dict[str, Any] = plane.list_executions(
            function_name=function_name, status=statuses[0] if statuses else None,
            max_items=max_items, marker=marker)
        return page
    offset = 0
    if marker:
        digits = marker[2:]
        if not (marker.startswith("o:") and digits.isascii() and digits.isdigit()
                and len(digits) <= 9):
            raise InvalidParameterValueError("Invalid marker")
        offset = int(digits)
    matches: list[dict[str, Any]] = []
    store_marker: str | None = None
    scanned = 0
    while scanned < scan_cap:
        chunk = plane.list_executions(function_name=function_name,
                                      max_items=min(_SCAN_PAGE, scan_cap - scanned),
                                      marker=store_marker)
        items = chunk["DurableExecutions"]
        scanned += len(items)
        for it in items:
            ts = it["StartTimestamp"].timestamp()
            if statuses and it["Status"] not in statuses:
                continue
            if name and it["DurableExecutionName"] != name:
                continue
            if (started_after is not None and ts < started_after) or \
                    (started_before is not None and ts > started_before):
                continue
            matches.append(it)
        store_marker = chunk.get("NextMarker")
        if not store_marker or not items:
            break
    if reverse:
        matches.reverse()
    out: dict[str, Any] = {"DurableExecutions": matches[offset:offset + max_items]}
    if offset + max_items < len(matches):
        out["NextMarker"] = f"o:{offset + max_items}"
    return out
