"""What the handler sees: pages of operations, deltas, and children hidden by their context.

``NewExecutionState`` is the operations touched since the handler last saw state, in
creation order; pages are bounded by bytes (and by count for GetDurableExecutionState);
children, at any depth, of a completed context without ``ReplayChildren`` are hidden.
"""

from __future__ import annotations

from typing import Any

from durable_ext.backends.store import ExecutionHeader, OperationRecord, Store
from durable_ext.engine.mutation import Mutation, op_size, public_op
from durable_ext.engine.rules import TERMINAL_OP
from durable_ext.errors import InvalidParameterValueError

__all__ = ["delta", "page", "state_page", "visible"]


def page(
    records: list[OperationRecord], limit: int | None, page_bytes: int
) -> tuple[list[OperationRecord], bool]:
    """Split off the first page: at most ``limit`` records and ``page_bytes`` of payload."""
    total = 0
    for i, rec in enumerate(records):
        if limit is not None and i >= limit:
            return records[:i], True
        total += op_size(rec.data)
        if total > page_bytes and i > 0:
            return records[:i], True
    return records, False


def delta(tx: Mutation) -> list[OperationRecord]:
    """Return what was touched since the handler last saw state (this mutation too)."""
    merged = {r.op_id: r for r in tx.store.touched_after(tx.arn, tx.header.handler_seen_seq)}
    merged.update(tx.changed)
    recs = sorted(merged.values(), key=lambda r: r.index)
    return visible(tx.store, tx.arn, recs, tx)


def visible(
    store: Store, arn: str, records: list[OperationRecord], tx: Mutation | None = None
) -> list[OperationRecord]:
    """Drop children (at any depth) of completed contexts without ReplayChildren."""
    known: dict[str, dict[str, Any]] = {r.op_id: r.data for r in records}
    hidden: dict[str, bool] = {}

    def lookup(op_id: str) -> dict[str, Any] | None:
        if tx is not None and op_id in tx.changed:
            return tx.changed[op_id].data
        if op_id not in known:
            recs = store.operations(arn, [op_id])
            if not recs:
                return None
            known[op_id] = recs[0].data
        return known[op_id]

    def is_hidden(op_id: str | None) -> bool:
        if not op_id:
            return False
        if op_id not in hidden:
            parent = lookup(op_id)
            if parent is None:
                hidden[op_id] = False
            else:
                closed = (
                    parent.get("Type") == "CONTEXT"
                    and parent.get("Status") in TERMINAL_OP
                    and not (parent.get("ContextDetails") or {}).get("ReplayChildren")
                )
                hidden[op_id] = closed or is_hidden(parent.get("ParentId"))
        return hidden[op_id]

    return [r for r in records if not is_hidden(r.data.get("ParentId"))]


def state_page(
    store: Store, h: ExecutionHeader, marker: str | None, limit: int, page_bytes: int
) -> tuple[list[dict[str, Any]], str | None]:
    """GetDurableExecutionState: a page of the state, or of a paginated checkpoint delta.

    Markers name the token sequence they belong to (``s:SEQ:START`` for the state,
    ``d:SEQ:SEEN:START`` for a delta), so one of an older token is refused.
    """
    prefix = f"s:{h.token_sequence}"
    parts = (marker or "").split(":")
    try:
        if not marker or (parts[0] == "s" and len(parts) == 3
                          and int(parts[1]) == h.token_sequence):
            records = visible(store, h.arn, store.operations(h.arn))
            start = int(parts[2]) if marker else 0
        elif parts[0] == "d" and len(parts) == 4 and int(parts[1]) == h.token_sequence:
            records = visible(store, h.arn, store.touched_after(h.arn, int(parts[2])))
            start = int(parts[3])
            prefix = f"d:{parts[1]}:{parts[2]}"
        else:
            raise InvalidParameterValueError("Invalid marker")
    except ValueError:
        raise InvalidParameterValueError("Invalid marker") from None
    first, rest = page(records[start:], limit, page_bytes)
    next_marker = f"{prefix}:{start + len(first)}" if rest else None
    return [public_op(r.data) for r in first], next_marker
