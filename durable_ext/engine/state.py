"""The engine's own records: execution state, leases, due kinds and due keys.

A store keeps :attr:`ExecutionHeader.state <durable_ext.backends.store.ExecutionHeader.state>`
as an opaque JSON object; this module is the one place that knows its layout
(:class:`EngineState`), the layout of an invocation's lease (:class:`Lease`), the kinds of
due entries (:class:`DueKind`) and their keys (:class:`DueKey`). The stored key names are
part of the persisted format: executions written by earlier releases read back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

from durable_ext.backends.store import DueEntry

__all__ = [
    "ClientRequest",
    "DueKey",
    "DueKind",
    "EngineState",
    "LastCheckpoint",
    "Lease",
    "ParentLink",
    "PauseState",
    "PendingClose",
]


class DueKind:
    """Kinds of :class:`~durable_ext.backends.store.DueEntry` (opaque strings to stores).

    ``WAKE`` fires waits and retry delays of one operation, ``CALLBACK_TIMEOUT`` and
    ``CALLBACK_HEARTBEAT`` time out a callback, ``EXECUTION_TIMEOUT`` times out the
    execution, ``INVOKE`` asks for an invocation, ``DISPATCH`` sends a chained invoke to
    its target, ``NOTIFY`` reports a finished chained child to its caller, ``DELETE``
    finishes the deletion of a DELETING execution (whoever requested it may have died
    before removing it), ``EMIT`` holds a status-change event until it is delivered
    (the outbox), and ``LEASE``
    marks an invocation in flight (its ``due_ms`` is wall-clock time, so a runtime that
    died is noticed even under a virtual clock).
    """

    WAKE: ClassVar[str] = "wake"
    CALLBACK_TIMEOUT: ClassVar[str] = "callback-timeout"
    CALLBACK_HEARTBEAT: ClassVar[str] = "callback-heartbeat"
    EXECUTION_TIMEOUT: ClassVar[str] = "execution-timeout"
    INVOKE: ClassVar[str] = "invoke"
    DISPATCH: ClassVar[str] = "dispatch"
    NOTIFY: ClassVar[str] = "notify"
    LEASE: ClassVar[str] = "lease"
    DELETE: ClassVar[str] = "delete"
    EMIT: ClassVar[str] = "emit"

    ACTIVE: ClassVar[tuple[str, ...]] = (
        INVOKE, WAKE, CALLBACK_TIMEOUT, CALLBACK_HEARTBEAT, EXECUTION_TIMEOUT, DISPATCH, NOTIFY,
        DELETE,
    )
    """What a runtime acts on when it is due (leases are only watched)."""
    PROGRESS: ClassVar[tuple[str, ...]] = (INVOKE, WAKE, DISPATCH, NOTIFY)
    """What makes an execution progress by itself. Callback and execution deadlines are
    not among them: they bound waiting for outside input, so an idle runtime does not
    wait for them (or jump a virtual clock to them)."""


class DueKey:
    """The key of each due entry of an execution (unique within it)."""

    INVOKE: ClassVar[str] = "invoke"
    TIMEOUT: ClassVar[str] = "timeout"
    LEASE: ClassVar[str] = "lease"
    NOTIFY: ClassVar[str] = "notify"
    DELETE: ClassVar[str] = "delete"

    @staticmethod
    def emit(seq: int) -> str:
        """Return the key of outbox event ``seq`` (zero-padded: keys sort in order)."""
        return f"emit:{seq:012d}"

    @staticmethod
    def wake(op_id: str) -> str:
        """Return the key of the wait or retry delay of operation ``op_id``."""
        return f"wake:{op_id}"

    @staticmethod
    def callback_timeout(op_id: str) -> str:
        """Return the key of the timeout of callback ``op_id``."""
        return f"cbt:{op_id}"

    @staticmethod
    def callback_heartbeat(op_id: str) -> str:
        """Return the key of the heartbeat deadline of callback ``op_id``."""
        return f"cbh:{op_id}"

    @staticmethod
    def dispatch(op_id: str) -> str:
        """Return the key of the dispatch of chained invoke ``op_id``."""
        return f"dispatch:{op_id}"


@dataclass(frozen=True, slots=True)
class ParentLink:
    """The chained-invoke operation of another execution that started this one."""

    arn: str
    op: str


@dataclass(frozen=True, slots=True)
class PendingClose:
    """The execution outcome the handler checkpointed, applied when its invocation ends."""

    status: str
    result: str | None = None
    error: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class LastCheckpoint:
    """The last checkpoint sent with a client token, replayed if the same one comes again."""

    client_token: str
    token_in: str
    token_out: str | None
    op_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PauseState:
    """A pause in force: requested (PAUSING) or in effect (PAUSED).

    Attributes:
        requested_ms: When the pause was requested (PauseRequestTimestamp).
        reason: The reason given, recorded in the history.
        timeout_paused: Whether the execution timeout stands still while paused.
        paused_ms: When the execution became PAUSED (None while PAUSING).
        deferred: An invocation is owed at resume: the pause interrupted one, or
            something completed (or came due) while paused.
        deadline_ms: The execution deadline the pause set aside (timeout paused only).

    """

    requested_ms: int
    reason: str | None = None
    timeout_paused: bool = True
    paused_ms: int | None = None
    deferred: bool = False
    deadline_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the stored form."""
        return {"at": self.requested_ms, "reason": self.reason, "tp": self.timeout_paused,
                "paused": self.paused_ms, "deferred": self.deferred,
                "deadline": self.deadline_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PauseState:
        """Read the stored form."""
        return cls(int(data["at"]), data.get("reason"), bool(data.get("tp", True)),
                   data.get("paused"), bool(data.get("deferred")), data.get("deadline"))


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A control-plane request made with a ClientToken, remembered for idempotent repeats.

    ``params`` is a digest of the request's parameters: a repeat with the same token but
    other parameters is refused rather than answered as the first one was.
    """

    token: str
    action: str
    params: str
    at_ms: int

    def to_list(self) -> list[Any]:
        """Return the stored form."""
        return [self.token, self.action, self.params, self.at_ms]

    @classmethod
    def from_list(cls, data: Sequence[Any]) -> ClientRequest:
        """Read the stored form."""
        return cls(str(data[0]), str(data[1]), str(data[2]), int(data[3]))


Gate = Literal["IDLE", "INVOKING"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineState:
    """What the engine keeps with an execution besides its header fields.

    Attributes:
        gate: ``INVOKING`` while an invocation is open, else ``IDLE``.
        open: Callbacks and chained invokes waiting for an outcome, by operation id.
        updated: Operations completed from outside since the last invocation began.
        fails: Failed invocations in a row.
        invalid: Invalid PENDING outputs in a row.
        timeout: The execution timeout, seconds.
        parent: The caller, for an execution started by a chained invoke.
        attributes: Free-form strings given at start (the handler reference).
        invocation_start: When the open invocation began, epoch ms.
        request_id: The open invocation's request id.
        reinvoke: Something completed from outside during the open invocation.
        input_seq: The operation sequence the open invocation's input was taken at.
        closing: The outcome checkpointed by the open invocation.
        last_checkpoint: The last client-token checkpoint, for idempotent repeats.
        pause: The pause in force (status PAUSING or PAUSED), if any.
        deadline: The execution deadline, epoch ms (None: start plus ``timeout``); a
            pause with its timeout paused moves it.
        requests: Recent control-plane requests made with a ClientToken.
        deletion_ms: When deletion was requested (status DELETING).
        emitted: Status-change events written to the outbox so far (the last sequence).

    """

    gate: Gate = "IDLE"
    open: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    fails: int = 0
    invalid: int = 0
    timeout: int = 0
    parent: ParentLink | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    invocation_start: int | None = None
    request_id: str = ""
    reinvoke: bool = False
    input_seq: int | None = None
    closing: PendingClose | None = None
    last_checkpoint: LastCheckpoint | None = None
    pause: PauseState | None = None
    deadline: int | None = None
    requests: tuple[ClientRequest, ...] = ()
    deletion_ms: int | None = None
    emitted: int = 0

    @property
    def invoking(self) -> bool:
        """Whether an invocation is open."""
        return self.gate == "INVOKING"

    def evolve(self, **changes: Any) -> EngineState:
        """Return a copy with ``changes`` applied."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the stored form (the key names of earlier releases)."""
        out: dict[str, Any] = {
            "gate": self.gate,
            "open": list(self.open),
            "updated": list(self.updated),
            "fails": self.fails,
            "invalid": self.invalid,
            "timeout": self.timeout,
        }
        if self.parent is not None:
            out["parent"] = {"arn": self.parent.arn, "op": self.parent.op}
        if self.attributes:
            out["attrs"] = dict(self.attributes)
        if self.invocation_start is not None:
            out["inv_start"] = self.invocation_start
        if self.request_id:
            out["request_id"] = self.request_id
        if self.reinvoke:
            out["reinvoke"] = True
        if self.input_seq is not None:
            out["input_seq"] = self.input_seq
        if self.closing is not None:
            c = self.closing
            out["close"] = {"status": c.status, "result": c.result,
                            "error": None if c.error is None else dict(c.error)}
        if self.last_checkpoint is not None:
            cp = self.last_checkpoint
            out["cp"] = {"ct": cp.client_token, "in": cp.token_in, "out": cp.token_out,
                         "ids": list(cp.op_ids)}
        if self.pause is not None:
            out["pause"] = self.pause.to_dict()
        if self.deadline is not None:
            out["deadline"] = self.deadline
        if self.requests:
            out["requests"] = [r.to_list() for r in self.requests]
        if self.deletion_ms is not None:
            out["deletion"] = self.deletion_ms
        if self.emitted:
            out["emitted"] = self.emitted
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineState:
        """Read the stored form."""
        parent = data.get("parent")
        close = data.get("close")
        cp = data.get("cp")
        return cls(
            gate="INVOKING" if data.get("gate") == "INVOKING" else "IDLE",
            open=tuple(data.get("open") or ()),
            updated=tuple(data.get("updated") or ()),
            fails=int(data.get("fails") or 0),
            invalid=int(data.get("invalid") or 0),
            timeout=int(data.get("timeout") or 0),
            parent=ParentLink(str(parent["arn"]), str(parent["op"])) if parent else None,
            attributes=dict(data.get("attrs") or {}),
            invocation_start=data.get("inv_start"),
            request_id=str(data.get("request_id") or ""),
            reinvoke=bool(data.get("reinvoke")),
            input_seq=data.get("input_seq"),
            closing=PendingClose(close["status"], close.get("result"), close.get("error"))
            if close else None,
            last_checkpoint=LastCheckpoint(cp["ct"], cp["in"], cp.get("out"), tuple(cp["ids"]))
            if cp else None,
            pause=PauseState.from_dict(data["pause"]) if data.get("pause") else None,
            deadline=data.get("deadline"),
            requests=tuple(ClientRequest.from_list(r) for r in data.get("requests") or ()),
            deletion_ms=data.get("deletion"),
            emitted=int(data.get("emitted") or 0),
        )


@dataclass(frozen=True, slots=True)
class Lease:
    """An open invocation's lease: who runs it, and until when (wall-clock epoch ms).

    ``owner`` identifies the runtime or worker process, unique per process (it holds a
    random instance id); ``host`` and ``pid`` are for people only: host names repeat
    across machines and containers, and a pid means nothing outside its PID namespace.
    """

    arn: str
    invocation_id: str
    owner: str
    host: str
    pid: int
    due_ms: int

    @classmethod
    def of(cls, entry: DueEntry) -> Lease:
        """Return the lease a ``LEASE`` due entry describes."""
        d = entry.data
        return cls(
            arn=entry.arn,
            invocation_id=str(d.get("invocation", "")),
            owner=str(d.get("owner", "")),
            host=str(d.get("host", "")),
            pid=int(d.get("pid", 0) or 0),
            due_ms=entry.due_ms,
        )

    def data(self) -> dict[str, Any]:
        """Return the due entry's data (the stored form)."""
        return {"invocation": self.invocation_id, "owner": self.owner, "pid": self.pid,
                "host": self.host}

    def expired(self, wall_ms: int, margin_ms: int = 0) -> bool:
        """Expired for longer than ``margin_ms`` (the tolerated clock skew) at ``wall_ms``."""
        return self.due_ms + margin_ms <= wall_ms
