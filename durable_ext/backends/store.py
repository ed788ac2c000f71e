"""The Store protocol: storage primitives for durable executions, and the records it stores.

A store keeps what the engine (:mod:`durable_ext.engine`) decides; it never
interprets it. The engine holds every rule of the service (validation, tokens, status
transitions, deltas, history); a store only has to provide:

* **one atomic commit per checkpoint batch** (:meth:`Store.commit`) whose cost is
  proportional to the batch: it writes the new header, upserts the operation records the
  batch touched, appends the new history events and sets/clears due-time entries. It never
  rewrites the whole execution;
* **a compare-and-set** on :attr:`ExecutionHeader.revision`: a commit states the revision
  it was computed from and fails with :class:`~durable_ext.errors.ConflictError` when
  another writer got there first. The header also carries the checkpoint token sequence
  and the current invocation id, so a stale invocation always loses the race;
* **per-operation and per-event records** readable by id, by creation order, and by
  "touched after sequence N" (the delta query behind ``NewExecutionState``);
* **a due-time index** (:class:`DueEntry`) over all executions: wait ends, retry times,
  callback deadlines, the execution deadline, pending invocations and invocation leases;
* **execution-name idempotency**: :meth:`Store.create` is a conditional create on
  ``(function_name, name)`` and on the ARN;
* **listing** by function and status, newest first, with an opaque marker.

Mapping onto other databases (one round trip per commit)::

    Redis     header   HASH/STRING  dx:{arn}:h          (revision checked in Lua)
              ops      HASH         dx:{arn}:ops        op_id -> record JSON
              touched  ZSET         dx:{arn}:touched    op_id scored by touched seq
              order    ZSET         dx:{arn}:order      op_id scored by index
              events   LIST/HASH    dx:{arn}:ev         event_id -> event JSON
              due      ZSET         dx:due              "{arn}|{key}" scored by due_ms
              names    STRING       dx:name:{fn}:{name} SET NX -> arn
              commit = one EVALSHA: compare revision, then HSET/ZADD/RPUSH/ZREM.
    DynamoDB  one table, pk = arn, sk = "H" | "O#<op_id>" | "E#<event_id:012d>";
              due entries in a sparse GSI (due_ms); names as pk = "N#<fn>#<name>".
              commit = TransactWriteItems with ConditionExpression
              "revision = :expected" on the header item (large batches: write the
              op/event items first, idempotently, then the conditional header update,
              which is what makes them visible).

Everything in these records is JSON-able (``to_dict``/``from_dict``); timestamps are
integer epoch milliseconds (UTC). Payloads inside :attr:`OperationRecord.data` use the SDK's
``Operation.to_json_dict`` wire shape.

Third-party stores test themselves with :class:`durable_ext.testing.contract.StoreContract`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from durable_ext.spec import StoreSpec

__all__ = [
    "CLOSED_STATUSES",
    "SECRET_BYTES",
    "TERMINAL_STATUSES",
    "ClaimingStore",
    "CommitBatch",
    "CreateResult",
    "DueClaim",
    "DueEntry",
    "ExecutionHeader",
    "ExecutionPage",
    "ExecutionStatus",
    "HistoryEvent",
    "OperationRecord",
    "Store",
    "Subscription",
    "WakingStore",
]

SECRET_BYTES = 32
"""Length of :meth:`Store.secret`."""

class ExecutionStatus(StrEnum):
    """The statuses of an execution (stores index them as the plain strings)."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"
    PAUSING = "PAUSING"
    PAUSED = "PAUSED"
    DELETING = "DELETING"


TERMINAL_STATUSES = frozenset({
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMED_OUT,
    ExecutionStatus.STOPPED,
})
"""The statuses an execution ends in (only these can be deleted)."""

CLOSED_STATUSES = TERMINAL_STATUSES | {ExecutionStatus.DELETING}
"""Statuses after which nothing but reads (and finishing a deletion) is accepted."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionHeader:
    """The small, fixed-size part of an execution, rewritten by every commit.

    Stores index ``arn``, ``function_name``, ``name``, ``status`` and ``start_ms`` and
    compare ``revision``; everything else is engine state they keep verbatim.

    Attributes:
        arn: Execution ARN; its last ``/`` segment is ``execution_id``.
        execution_id: Id of the EXECUTION operation (unique per store).
        function_name: Registered function the execution belongs to.
        name: Execution name, unique per function.
        status: One of :class:`ExecutionStatus`.
        start_ms: Start time, epoch ms.
        end_ms: End time once terminal.
        revision: Bumped by one on every commit; the compare-and-set value.
        token_sequence: Checkpoint token sequence (bumped by each accepted checkpoint).
        invocation_id: Id of the current invocation; tokens of older ones are stale.
        input_payload: The execution input (a JSON string).
        result: The result payload once SUCCEEDED.
        error: The ErrorObject (wire keys) once FAILED/TIMED_OUT/STOPPED.
        seq_counter: Last "touched" sequence handed to an operation.
        handler_seen_seq: Watermark of operations already delivered to the handler.
        event_count: Number of history events (the next EventId is ``event_count + 1``).
        op_count: Number of operation records (the next creation index).
        state: Further engine state (invocation gate, parent link, timeouts...).

    """

    arn: str
    execution_id: str
    function_name: str
    name: str
    status: str
    start_ms: int
    end_ms: int | None = None
    revision: int = 0
    token_sequence: int = 0
    invocation_id: str | None = None
    input_payload: str = "null"
    result: str | None = None
    error: dict[str, Any] | None = None
    seq_counter: int = 0
    handler_seen_seq: int = 0
    event_count: int = 0
    op_count: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """True once the execution can no longer change (ended, or being deleted)."""
        return self.status in CLOSED_STATUSES

    def evolve(self, **changes: Any) -> ExecutionHeader:
        """Return a copy with ``changes`` applied (records are immutable)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stable keys)."""
        return {
            "arn": self.arn,
            "execution_id": self.execution_id,
            "function_name": self.function_name,
            "name": self.name,
            "status": self.status,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "revision": self.revision,
            "token_sequence": self.token_sequence,
            "invocation_id": self.invocation_id,
            "input_payload": self.input_payload,
            "result": self.result,
            "error": self.error,
            "seq_counter": self.seq_counter,
            "handler_seen_seq": self.handler_seen_seq,
            "event_count": self.event_count,
            "op_count": self.op_count,
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionHeader:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationRecord:
    """One operation of an execution.

    Attributes:
        op_id: Operation id (unique within the execution).
        index: Creation order (0 = the EXECUTION operation); never changes.
        touched: ``seq_counter`` value of the last change; the delta query returns the
            records with ``touched > handler_seen_seq``.
        data: The operation in the SDK's ``Operation.to_json_dict`` wire shape, plus engine
            keys prefixed with ``_`` (e.g. the START options a history event needs).

    """

    op_id: str
    index: int
    touched: int
    data: dict[str, Any]

    @property
    def parent_id(self) -> str | None:
        """The ParentId of the operation, if any."""
        parent: str | None = self.data.get("ParentId")
        return parent

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "op_id": self.op_id,
            "index": self.index,
            "touched": self.touched,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OperationRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEvent:
    """One history event; EventIds are assigned at commit and never change.

    Attributes:
        event_id: 1-based, contiguous within an execution.
        data: The event in GetDurableExecutionHistory shape with epoch-ms timestamps
            (the engine converts them to datetimes on read).

    """

    event_id: int
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"event_id": self.event_id, "data": self.data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEvent:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class DueEntry:
    """A timer: "something about ``arn`` is due at ``due_ms``".

    Entries are keyed by ``(arn, key)``; setting an existing key replaces it.

    Attributes:
        arn: Execution the timer belongs to.
        key: Unique within the execution, e.g. ``"wake:<op_id>"`` or ``"invoke"``.
        kind: One of :class:`durable_ext.engine.state.DueKind` (opaque to stores).
        due_ms: When it fires, epoch ms (runtime clock; real clock for LEASE).
        data: Small engine data (operation id, invocation id...).

    """

    arn: str
    key: str
    kind: str
    due_ms: int
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "arn": self.arn,
            "key": self.key,
            "kind": self.kind,
            "due_ms": self.due_ms,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DueEntry:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitBatch:
    """Everything one engine mutation writes, applied atomically by :meth:`Store.commit`.

    Attributes:
        header: The new header; ``header.revision`` must be ``expected_revision + 1``.
        expected_revision: Revision the mutation was computed from (the CAS condition).
        operations: Records to upsert (new ones have fresh indexes, in creation order).
        events: Events to append; their ids continue the existing sequence without gaps.
        due_set: Due entries to add or replace (all for ``header.arn``).
        due_clear: Keys of due entries of ``header.arn`` to delete (missing keys are fine).

    """

    header: ExecutionHeader
    expected_revision: int
    operations: Sequence[OperationRecord] = ()
    events: Sequence[HistoryEvent] = ()
    due_set: Sequence[DueEntry] = ()
    due_clear: Sequence[str] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what the file store journals)."""
        return {
            "h": self.header.to_dict(),
            "x": self.expected_revision,
            "o": [op.to_dict() for op in self.operations],
            "e": [ev.to_dict() for ev in self.events],
            "ds": [d.to_dict() for d in self.due_set],
            "dc": list(self.due_clear),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CommitBatch:
        """Inverse of :meth:`to_dict`."""
        return cls(
            header=ExecutionHeader.from_dict(data["h"]),
            expected_revision=data["x"],
            operations=[OperationRecord.from_dict(o) for o in data["o"]],
            events=[HistoryEvent.from_dict(e) for e in data["e"]],
            due_set=[DueEntry.from_dict(d) for d in data["ds"]],
            due_clear=list(data["dc"]),
        )


@dataclass(frozen=True, slots=True)
class CreateResult:
    """Outcome of :meth:`Store.create`.

    Attributes:
        created: False when an execution with the same ``(function_name, name)`` existed.
        header: The new execution's header, or the existing one's.

    """

    created: bool
    header: ExecutionHeader


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    """A page of :meth:`Store.list_executions` (newest first)."""

    headers: list[ExecutionHeader]
    next_marker: str | None = None


@runtime_checkable
class Store(Protocol):
    """Storage primitives for durable executions.

    Laws (checked by ``StoreContract``):

    * after ``create(b)`` returns ``created=True``, ``header(arn)`` equals ``b.header`` and
      ``operations``/``events``/``due`` return what the batch held;
    * ``commit(b)`` either applies all of ``b`` or nothing; it raises ``ConflictError`` when
      the stored revision is not ``b.expected_revision`` and ``NotFoundError`` for an
      unknown ARN;
    * reads return what the last successful commit wrote, from any process sharing the
      store;
    * a commit's cost depends on the size of the batch, not of the execution.

    Implementations must be safe to call from several threads.
    """

    name: ClassVar[str]

    @classmethod
    def from_spec(cls, spec: StoreSpec, **kwargs: Any) -> Store:
        """Build the store from a parsed URL; unknown query options raise ``SpecError``."""
        ...

    def create(self, batch: CommitBatch) -> CreateResult:
        """Create an execution unless ``(function_name, name)`` is taken (conditional put).

        ``batch.expected_revision`` is ignored (there is nothing to compare with). An ARN
        that already exists under another name raises ``ConflictError``.
        """
        ...

    def commit(self, batch: CommitBatch) -> None:
        """Apply ``batch`` atomically if the stored revision is ``batch.expected_revision``."""
        ...

    def header(self, arn: str) -> ExecutionHeader:
        """Return the current header; ``NotFoundError`` if there is no such execution."""
        ...

    def operations(self, arn: str, ids: Iterable[str] | None = None) -> list[OperationRecord]:
        """Operation records in creation order: all, or those of ``ids`` that exist."""
        ...

    def touched_after(self, arn: str, seq: int) -> list[OperationRecord]:
        """Return the records with ``touched > seq``, in creation order (the delta query)."""
        ...

    def events(
        self, arn: str, *, after: int = 0, limit: int | None = None, reverse: bool = False
    ) -> list[HistoryEvent]:
        """History events with ``event_id > after`` ascending, or ``< after`` descending.

        With ``reverse=True`` and ``after=0`` the newest events come first.
        """
        ...

    def due(
        self,
        until_ms: int | None = None,
        *,
        arn: str | None = None,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[DueEntry]:
        """Due entries with ``due_ms <= until_ms`` (all if None), earliest first."""
        ...

    def list_executions(
        self,
        *,
        function_name: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> ExecutionPage:
        """Headers newest first (``start_ms`` descending, then ARN), filtered and paged."""
        ...

    def delete(self, arn: str) -> bool:
        """Remove the execution and everything the store keeps of it; False if absent.

        Its header, operation records, events, due entries, listing entries and its
        name claim (when the claim still names ``arn``) go; the header goes last, so a
        deletion cut short leaves the execution readable and a repeat finishes it. The
        engine only deletes executions it has made DELETING, so nothing commits to them.
        """
        ...

    def secret(self) -> bytes:
        """Return the store's MAC secret: :data:`SECRET_BYTES` random bytes, made once.

        The first call on a new store creates it atomically (a conditional write: two
        processes racing get the same value); every process sharing the store reads the
        same bytes. The engine derives the keys of callback ids and checkpoint tokens from
        it, so nobody without access to the store can forge either. It is never part of an
        execution's records, and a store should keep it as private as its data.
        """
        ...

    def close(self) -> None:
        """Release files, connections and locks."""
        ...


# ---------------------------------------------------------------- optional capabilities
# A store may offer these on top of the Store protocol; a fleet worker uses them when the
# store has them (``isinstance(store, ClaimingStore)``) and polls ``due()`` otherwise.


@dataclass(frozen=True, slots=True)
class DueClaim:
    """Outcome of :meth:`ClaimingStore.claim_due`.

    Attributes:
        entries: The entries now claimed by the caller, earliest first.
        next_due_ms: The earliest later due time among the entries asked for (None: none),
            so an idle worker knows how long it may sleep.

    """

    entries: list[DueEntry]
    next_due_ms: int | None = None


@runtime_checkable
class ClaimingStore(Protocol):
    """A store whose workers claim due entries instead of all racing for the first ones.

    A claim marks entries as the caller's for ``hold_ms`` so other workers pass over them;
    it steers workers apart, it decides nothing: the engine's compare-and-set commit still
    makes each entry take effect once, and an entry whose claimer died is free again when
    the hold has passed. Replacing an entry (``CommitBatch.due_set``) drops its claim.
    """

    def claim_due(
        self,
        now_ms: int,
        *,
        kinds: Sequence[str],
        functions: Sequence[str],
        owner: str,
        limit: int,
        hold_ms: int,
        exclude: Sequence[str] = (),
    ) -> DueClaim:
        """Claim up to ``limit`` entries due at ``now_ms`` of ``kinds`` and ``functions``.

        Entries of the executions in ``exclude`` (those the caller is running) are left
        alone, so a claim never holds back work the caller cannot start.
        """
        ...


class Subscription(Protocol):
    """A running subscription; ``close()`` ends it."""

    def close(self) -> None:
        """Stop delivering and release the connection."""
        ...


@runtime_checkable
class WakingStore(Protocol):
    """A store that pushes a signal whenever a commit sets due entries (e.g. LISTEN/NOTIFY).

    ``on_due(kind, due_ms)`` is called from a thread of the store, once per kind and
    commit, with the earliest ``due_ms`` of that kind the commit set; ``on_due("", 0)``
    means signals may have been missed (the connection was re-established): poll now.
    """

    def listen_due(self, on_due: Callable[[str, int], None]) -> Subscription:
        """Start delivering signals to ``on_due`` until the subscription is closed."""
        ...
