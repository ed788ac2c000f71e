"""History event builders and their GetDurableExecutionHistory rendering.

Events are stored with epoch-millisecond timestamps (JSON-able) and rendered as boto3
returns them: datetimes, and payloads dropped (``Truncated: True``) when execution data is
not requested.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

__all__ = ["ms_to_dt", "op_event", "payload_block", "plain_event", "render_event"]

_TS_KEYS = ("EventTimestamp", "ScheduledEndTimestamp", "StartTimestamp", "EndTimestamp")


def ms_to_dt(ms: int | None) -> datetime | None:
    """Epoch milliseconds -> aware UTC datetime."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def payload_block(payload: Any) -> dict[str, Any]:
    """Build an EventResult / EventError / EventInput block (no Payload key for None)."""
    if payload is None:
        return {"Truncated": False}
    return {"Payload": payload, "Truncated": False}


def plain_event(
    event_type: str, ts_ms: int, details: dict[str, Any] | None = None, **ident: Any
) -> dict[str, Any]:
    """Build an event with the given identity keys (Id, Name, SubType, ParentId) if set."""
    ev: dict[str, Any] = {"EventType": event_type, "EventTimestamp": ts_ms}
    for key in ("Id", "Name", "SubType", "ParentId"):
        value = ident.get(key)
        if value is not None:
            ev[key] = value
    ev[f"{event_type}Details"] = details if details is not None else {}
    return ev


def op_event(
    event_type: str, op: dict[str, Any], ts_ms: int, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build an event about operation ``op`` (wire dict), carrying its identity."""
    return plain_event(
        event_type,
        ts_ms,
        details,
        Id=op.get("Id"),
        Name=op.get("Name"),
        SubType=op.get("SubType"),
        ParentId=op.get("ParentId"),
    )


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
