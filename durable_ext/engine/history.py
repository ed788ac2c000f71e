"""History event builders: events are stored with epoch-millisecond timestamps (JSON-able).

:mod:`durable_ext.engine.views` renders them as boto3 returns them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["op_event", "payload_block", "plain_event"]


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
