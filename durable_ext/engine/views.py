"""The control plane's answers, built from stored records in the shapes boto3 returns.

GetDurableExecution, GetDurableExecutionHistory (events rendered with datetimes, and
payloads dropped with ``Truncated: True`` when execution data is not requested) and the
items of ListDurableExecutionsByFunction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from durable_ext.backends.store import ExecutionHeader, ExecutionStatus, HistoryEvent
from durable_ext.engine.arns import version_of
from durable_ext.engine.state import EngineState

__all__ = ["describe", "history_page", "listing_item", "ms_to_dt", "render_event"]

_TS_KEYS = ("EventTimestamp", "ScheduledEndTimestamp", "StartTimestamp", "EndTimestamp",
            "PauseRequestTimestamp", "ResumeRequestTimestamp")
_PAUSED_LIFETIME_MS = 366 * 24 * 3600 * 1000


def ms_to_dt(ms: int | None) -> datetime | None:
    """Epoch milliseconds -> aware UTC datetime."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def describe(
    h: ExecutionHeader, function_arn: str, state: EngineState | None = None
) -> dict[str, Any]:
    """GetDurableExecution of the execution whose header is ``h`` (engine ``state``)."""
    out: dict[str, Any] = {
        "DurableExecutionArn": h.arn,
        "DurableExecutionName": h.name,
        "FunctionArn": function_arn,
        "InputPayload": h.input_payload,
        "StartTimestamp": ms_to_dt(h.start_ms),
        "Status": h.status,
        "Version": version_of(h.arn),
    }
    if h.result is not None:
        out["Result"] = h.result
    if h.error is not None:
        out["Error"] = h.error
    if h.end_ms is not None:
        out["EndTimestamp"] = ms_to_dt(h.end_ms)
    if state is not None and not h.terminal:
        pause = state.pause
        if pause is not None and h.status in (ExecutionStatus.PAUSING, ExecutionStatus.PAUSED):
            details: dict[str, Any] = {
                "PauseRequestTimestamp": ms_to_dt(pause.requested_ms),
                "ExecutionTimeoutPaused": pause.timeout_paused,
            }
            if pause.reason is not None:
                details["Reason"] = pause.reason
            out["PauseDetails"] = details
        if pause is not None and pause.paused_ms is not None and pause.timeout_paused:
            deadline = h.start_ms + _PAUSED_LIFETIME_MS
        elif state.deadline is not None:
            deadline = state.deadline
        else:
            deadline = h.start_ms + state.timeout * 1000
        out["ExpectedExecutionTimeoutTimestamp"] = ms_to_dt(deadline)
    return out


def listing_item(h: ExecutionHeader, function_arn: str) -> dict[str, Any]:
    """One item of ListDurableExecutionsByFunction."""
    item: dict[str, Any] = {
        "DurableExecutionArn": h.arn,
        "DurableExecutionName": h.name,
        "FunctionArn": function_arn,
        "Status": h.status,
        "StartTimestamp": ms_to_dt(h.start_ms),
    }
    if h.end_ms is not None:
        item["EndTimestamp"] = ms_to_dt(h.end_ms)
    return item


def history_page(
    read: Callable[[int, int | None, bool], list[HistoryEvent]],
    event_count: int,
    *,
    include_data: bool,
    limit: int | None,
    marker: int | None,
    reverse: bool,
) -> dict[str, Any]:
    """GetDurableExecutionHistory: one page of events and the marker of the next.

    ``read(after, limit, reverse)`` is the store's event query of the execution; the
    marker is the EventId the next page starts from.
    """
    if reverse:
        events = read(marker or 0, limit, True)
        more = bool(events) and events[-1].event_id > 1 and limit is not None \
            and len(events) == limit
        next_marker = str(events[-1].event_id) if more else None
    else:
        start = marker or 1
        events = read(start - 1, limit, False)
        last = events[-1].event_id if events else start - 1
        next_marker = str(last + 1) if limit is not None and last < event_count else None
    out: dict[str, Any] = {
        "Events": [render_event(e.event_id, e.data, include_data=include_data) for e in events]
    }
    if next_marker:
        out["NextMarker"] = next_marker
    return out


def _convert(node: Any, include_data: bool) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _TS_KEYS and isinstance(value, int | float):
                out[key] = ms_to_dt(int(value))
            elif not include_data and key == "Payload" and "Truncated" in node:
                continue
            elif not include_data and key == "Truncated":
                out[key] = True
            else:
                out[key] = _convert(value, include_data)
        return out
    if isinstance(node, list):
        return [_convert(v, include_data) for v in node]
    return copy.copy(node)


def render_event(event_id: int, data: dict[str, Any], *, include_data: bool) -> dict[str, Any]:
    """Render a stored event in the boto3 shape."""
    out: dict[str, Any] = _convert(data, include_data)
    out["EventId"] = event_id
    return out
