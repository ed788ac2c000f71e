"""In-memory indexes of stored executions, shared by the memory store and the file store's cache.

Each structure answers the Store queries in time proportional to the answer, not to the
execution: operations by id, a touched-sequence log for deltas, events by id, due entries
per execution.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from durable_ext.backends.store import (
    CommitBatch,
    DueEntry,
    ExecutionHeader,
    ExecutionPage,
    HistoryEvent,
    OperationRecord,
)
from durable_ext.errors import ConflictError, InvalidParameterValueError, SpecError, StoreError

__all__ = [
    "ExecutionIndex",
    "check_batch",
    "merge_due",
    "page_executions",
    "parse_marker",
    "reject_unknown_options",
]


def reject_unknown_options(spec_options: dict[str, str], allowed: Iterable[str], url: str) -> None:
    """Raise :class:`SpecError` naming any query option the store does not know."""
    unknown = sorted(set(spec_options) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise SpecError(
            f"unknown option(s) {', '.join(unknown)} in backend URL {url!r}; known: {known}"
        )


def check_batch(batch: CommitBatch, current: ExecutionHeader | None) -> None:
    """Check the structural invariants of a commit against the stored header.

    Raises:
        ConflictError: the stored revision is not the expected one.
        StoreError: the batch is malformed (wrong ARN, gaps in event ids).

    """
    h = batch.header
    if current is not None:
        if current.revision != batch.expected_revision:
            raise ConflictError(
                f"execution {h.arn} changed concurrently: expected revision "
                f"{batch.expected_revision}, found {current.revision}"
            )
        first_event = current.event_count + 1
    else:
        first_event = 1
    if h.revision != batch.expected_revision + 1:
        raise StoreError(f"commit for {h.arn}: header revision must be expected_revision + 1")
    for offset, ev in enumerate(batch.events):
        if ev.event_id != first_event + offset:
            raise StoreError(
                f"commit for {h.arn}: event id {ev.event_id} breaks the sequence "
                f"(expected {first_event + offset})"
            )
    for d in batch.due_set:
        if d.arn != h.arn:
            raise StoreError(f"commit for {h.arn}: due entry belongs to {d.arn}")


class ExecutionIndex:
    """The stored state of one execution, held in memory."""

    __slots__ = ("_touch_log", "due", "events", "header", "ops", "order")

    def __init__(self, header: ExecutionHeader) -> None:
        self.header = header
        self.ops: dict[str, OperationRecord] = {}
        self.order: list[str] = []
        self.events: list[HistoryEvent] = []
        self.due: dict[str, DueEntry] = {}
        # (touched, op_id) in increasing touched order; an entry is stale once the op
        # was touched again. Compacted when stale entries dominate.
        self._touch_log: list[tuple[int, str]] = []

    def apply(self, batch: CommitBatch) -> None:
        """Apply a checked batch."""
        self.header = batch.header
        mark = max(0, len(self._touch_log) - 1)
        for rec in batch.operations:
            if rec.op_id not in self.ops:
                self.order.append(rec.op_id)
            self.ops[rec.op_id] = rec
            self._touch_log.append((rec.touched, rec.op_id))
        if len(self._touch_log) > 64 and len(self._touch_log) > 2 * len(self.ops):
            self._touch_log = sorted((r.touched, r.op_id) for r in self.ops.values())
        elif any(
            a > b for a, b in zip(self._touch_log[mark:], self._touch_log[mark + 1 :], strict=False)
        ):
            # Only a misbehaving writer touches out of order; keep bisect correct anyway.
            self._touch_log.sort()
        self.events.extend(batch.events)
        for key in batch.due_clear:
            self.due.pop(key, None)
        for d in batch.due_set:
            self.due[d.key] = d

    def operations(self, ids: Iterable[str] | None) -> list[OperationRecord]:
        """Return records in creation order."""
        if ids is None:
            return [self.ops[i] for i in self.order]
        found = [self.ops[i] for i in set(ids) if i in self.ops]
        found.sort(key=lambda r: r.index)
        return found

    def touched_after(self, seq: int) -> list[OperationRecord]:
        """Return records touched after ``seq``, in creation order."""
        start = bisect.bisect_right(self._touch_log, (seq, "\U0010ffff"))
        seen: dict[str, OperationRecord] = {}
        for touched, op_id in self._touch_log[start:]:
            rec = self.ops[op_id]
            if rec.touched == touched:
                seen[op_id] = rec
        out = list(seen.values())
        out.sort(key=lambda r: r.index)
        return out

    def read_events(self, after: int, limit: int | None, reverse: bool) -> list[HistoryEvent]:
        """Events after ``after`` (ascending) or before it (descending)."""
        if reverse:
            end = len(self.events) if after <= 0 else min(after - 1, len(self.events))
            begin = 0 if limit is None else max(0, end - limit)
            return list(reversed(self.events[begin:end]))
        begin = max(0, after)
        stop = None if limit is None else begin + limit
        return self.events[begin:stop]

    def due_entries(self, until_ms: int | None, kinds: set[str] | None) -> list[DueEntry]:
        """Due entries of this execution that match."""
        return [
            d
            for d in self.due.values()
            if (until_ms is None or d.due_ms <= until_ms) and (kinds is None or d.kind in kinds)
        ]


def page_executions(
    headers: Iterable[ExecutionHeader],
    *,
    function_name: str | None,
    status: str | None,
    limit: int | None,
    marker: str | None,
) -> ExecutionPage:
    """Filter, sort (newest first) and page headers; the marker is ``"<start_ms>:<arn>"``."""
    rows = [
        h
        for h in headers
        if (function_name is None or h.function_name == function_name)
        and (status is None or h.status == status)
    ]
    rows.sort(key=lambda h: (-h.start_ms, h.arn))
    if marker:
        ms, arn = parse_marker(marker)
        rows = [h for h in rows if (-h.start_ms, h.arn) > (-ms, arn)]
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        return ExecutionPage(rows, f"{last.start_ms}:{last.arn}")
    return ExecutionPage(rows, None)


def merge_due(
    indexes: Iterable[ExecutionIndex],
    until_ms: int | None,
    kinds: Iterable[str] | None,
    limit: int | None,
) -> list[DueEntry]:
    """Due entries of several executions, earliest first."""
    kind_set = set(kinds) if kinds is not None else None
    out: list[DueEntry] = []
    for idx in indexes:
        out.extend(idx.due_entries(until_ms, kind_set))
    out.sort(key=lambda d: (d.due_ms, d.arn, d.key))
    return out if limit is None else out[:limit]


def parse_marker(marker: str) -> tuple[int, str]:
    """Split a listing marker ``"<start_ms>:<arn>"``; a bad one is a bad parameter."""
    ms, _, arn = marker.partition(":")
    try:
        if arn.startswith("arn:"):
            return int(ms), arn
    except ValueError:
        pass
    raise InvalidParameterValueError(f"invalid list marker {marker[:80]!r}")
