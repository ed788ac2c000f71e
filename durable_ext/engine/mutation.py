"""One engine mutation in progress: the working copy that becomes a CommitBatch."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from durable_ext.backends.store import (
    CommitBatch,
    DueEntry,
    ExecutionHeader,
    HistoryEvent,
    OperationRecord,
    Store,
)
from durable_ext.engine.outbox import EventStamp, outbox_entry
from durable_ext.engine.state import EngineState
from durable_ext.engine.tokens import IdSigner

__all__ = ["Mutation", "NoCommit", "op_size", "public_op"]


def public_op(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return the wire shape of a stored operation (engine-private ``_`` keys dropped)."""
    return {k: v for k, v in data.items() if not k.startswith("_")}


def op_size(data: Mapping[str, Any]) -> int:
    """Approximate payload bytes of an operation, for paging."""
    n = 1
    for details in ("StepDetails", "ContextDetails", "CallbackDetails", "ChainedInvokeDetails"):
        d = data.get(details)
        if d:
            n += len(d.get("Result") or "") + len(json.dumps(d["Error"]) if d.get("Error") else "")
    ed = data.get("ExecutionDetails")
    if ed:
        n += len(ed.get("InputPayload") or "")
    return n


@dataclass
class Mutation:
    """One mutation in progress: the working copy that becomes a CommitBatch."""

    store: Store
    header: ExecutionHeader
    now_ms: int
    ids: IdSigner
    stamp: EventStamp | None = None
    """Set when status changes are recorded in the outbox (:mod:`durable_ext.engine.outbox`)."""
    state: EngineState = field(init=False)
    header_changes: dict[str, Any] = field(default_factory=dict)
    loaded: dict[str, OperationRecord] = field(default_factory=dict)
    changed: dict[str, OperationRecord] = field(default_factory=dict)
    events: list[HistoryEvent] = field(default_factory=list)
    due_set: dict[str, DueEntry] = field(default_factory=dict)
    due_clear: set[str] = field(default_factory=set)
    seq: int = field(init=False)
    op_count: int = field(init=False)
    event_count: int = field(init=False)

    def __post_init__(self) -> None:
        self.state = EngineState.from_dict(self.header.state)
        self.seq = self.header.seq_counter
        self.op_count = self.header.op_count
        self.event_count = self.header.event_count

    @property
    def arn(self) -> str:
        """The execution being changed."""
        return self.header.arn

    def load(self, ids: Iterable[str]) -> None:
        """Read the stored records of ``ids`` that are not loaded yet."""
        want = [i for i in ids if i not in self.loaded and i not in self.changed]
        if want:
            for rec in self.store.operations(self.arn, want):
                self.loaded[rec.op_id] = rec

    def get(self, op_id: str) -> dict[str, Any] | None:
        """Return the operation as changed so far in this mutation, or as stored."""
        rec = self.changed.get(op_id) or self.loaded.get(op_id)
        if rec is None:
            self.load([op_id])
            rec = self.loaded.get(op_id)
        return rec.data if rec is not None else None

    def put(self, data: dict[str, Any]) -> None:
        """Upsert an operation and touch it (it goes to the handler's next delta)."""
        op_id = data["Id"]
        old = self.changed.get(op_id) or self.loaded.get(op_id)
        if old is None:
            self.load([op_id])
            old = self.loaded.get(op_id)
        if old is None:
            index = self.op_count
            self.op_count += 1
        else:
            index = old.index
        self.seq += 1
        self.changed[op_id] = OperationRecord(op_id=op_id, index=index, touched=self.seq, data=data)

    def event(self, data: dict[str, Any]) -> None:
        """Append a history event with the next EventId."""
        self.event_count += 1
        self.events.append(HistoryEvent(event_id=self.event_count, data=data))

    def set_due(self, key: str, kind: str, due_ms: int, **data: Any) -> None:
        """Add or replace the execution's due entry ``key``."""
        self.due_clear.discard(key)
        self.due_set[key] = DueEntry(arn=self.arn, key=key, kind=kind, due_ms=due_ms, data=data)

    def clear_due(self, key: str) -> None:
        """Remove the execution's due entry ``key``."""
        self.due_set.pop(key, None)
        self.due_clear.add(key)

    def evolve(self, **changes: Any) -> None:
        """Change the engine state (see :class:`~durable_ext.engine.state.EngineState`)."""
        self.state = self.state.evolve(**changes)

    def open_op(self, op_id: str) -> None:
        """Record that ``op_id`` (a callback or chained invoke) waits for an outcome."""
        self.state = self.state.evolve(open=(*self.state.open, op_id))

    def close_op(self, op_id: str) -> None:
        """Record that ``op_id`` has its outcome."""
        self.state = self.state.evolve(open=tuple(i for i in self.state.open if i != op_id))

    def batch(self, **header_changes: Any) -> CommitBatch:
        """Build the CommitBatch of everything changed, with the next header revision.

        A change of status also writes its event to the outbox when events are recorded.
        """
        changes = {**self.header_changes, **header_changes}
        previous = self.header.status
        emitted = self.stamp is not None and changes.get("status", previous) != previous
        if emitted:
            self.state = self.state.evolve(emitted=self.state.emitted + 1)
        header = self.header.evolve(
            revision=self.header.revision + 1,
            seq_counter=self.seq,
            op_count=self.op_count,
            event_count=self.event_count,
            state=self.state.to_dict(),
            **changes,
        )
        if emitted and self.stamp is not None:
            entry = outbox_entry(header, previous, self.state.emitted, self.now_ms, self.stamp)
            self.due_clear.discard(entry.key)
            self.due_set[entry.key] = entry
        ops = sorted(self.changed.values(), key=lambda r: r.index)
        return CommitBatch(
            header=header,
            expected_revision=self.header.revision,
            operations=ops,
            events=self.events,
            due_set=list(self.due_set.values()),
            due_clear=sorted(self.due_clear),
        )


@dataclass(frozen=True, slots=True)
class NoCommit:
    """A mutation that decided there is nothing to write."""

    value: Any
