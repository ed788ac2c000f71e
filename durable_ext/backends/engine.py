"""The service's checkpoint semantics, pure and storage-agnostic.

:class:`Engine` turns control-plane and data-plane calls (start, begin/finish invocation,
checkpoint, get state, callbacks, timers, stop, chained-invoke completion) into
:class:`~durable_ext.backends.store.CommitBatch` es for any
:class:`~durable_ext.backends.store.Store`. Every mutation of an execution is one commit
guarded by a compare-and-set on the header revision, so several engines (threads or
processes) sharing a store serialise per execution exactly like the service's
per-execution lane. A lost race is recomputed from fresh state.

Rules implemented here (see the service-semantics reference):

* tokens ``(execution, token sequence, invocation)``: a checkpoint is accepted only with
  the current sequence of the current invocation of a running execution, and bumps the
  sequence once (also for an empty batch); a rejected batch leaves the token valid;
* the validation table (:mod:`durable_ext.backends.validation`), status transitions,
  attempt arithmetic and timestamps of each operation type; Name/ParentId/SubType merged;
* ``NewExecutionState`` = operations touched since the handler last saw state, in creation
  order, paginated by bytes; children of completed contexts are hidden unless
  ``ReplayChildren``;
* an append-only history with stable EventIds, including ``InvocationCompleted`` for
  every invocation (crashes carry ``Error``), and the terminal ``Execution*`` event after
  the last ``InvocationCompleted``;
* execution-name idempotency; the terminal EXECUTION checkpoint gets no token; stop;
  execution timeout; callbacks with timeout and heartbeat; chained invokes;
* durable timers: every due time is a :class:`~durable_ext.backends.store.DueEntry`.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from durable_ext.backends._mutation import Mutation, NoCommit, op_size, public_op
from durable_ext.backends.history import (
    ms_to_dt,
    op_event,
    payload_block,
    plain_event,
    render_event,
)
from durable_ext.backends.operations import (
    DISPATCH,
    TERMINAL_OP,
    ChainedTarget,
    apply_update,
    set_status,
    target_name,
)
from durable_ext.backends.store import (
    CommitBatch,
    DueEntry,
    DueKind,
    ExecutionHeader,
    HistoryEvent,
    OperationRecord,
    Store,
)
from durable_ext.backends.tokens import CheckpointToken, IdSigner
from durable_ext.backends.validation import (
    CHAINED_INVOKE_INPUT_LIMIT,
    InvalidParameterValueError,
    validate_batch,
)
from durable_ext.errors import (
    ConflictError,
    ExecutionAlreadyStartedError,
    InvalidCheckpointTokenError,
    NotFoundError,
    StoreError,
)

__all__ = [
    "DISPATCH",
    "LEASE_KEY",
    "NOTIFY",
    "CheckpointResult",
    "Engine",
    "ExecutionAlreadyStartedError",
    "InvalidCheckpointTokenError",
    "InvalidParameterValueError",
    "InvocationInput",
    "normalize_input",
    "validate_name",
]

NOTIFY = "notify"
"""DueEntry kind: a finished chained child must report to its parent."""

PAGE_BYTES = 5 * 1024 * 1024
MAX_EXECUTION_TIMEOUT = 31_622_400
"""The service's upper bound (and this engine's default) for ExecutionTimeout, in seconds."""
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_CONFLICT_RETRIES = 50
LEASE_KEY = "lease"
"""Key of the due entry that holds the running invocation's lease (wall-clock ms)."""


def validate_name(kind: str, value: str) -> str:
    """Check an execution or function name (``[a-zA-Z0-9-_]{1,64}``)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidParameterValueError(
            f"invalid {kind} {value!r}: expected 1-64 characters of [a-zA-Z0-9-_]"
        )
    return value


def normalize_input(value: Any) -> str:
    """Normalise input as the service does: JSON kept, other strings encoded, None -> null."""
    if value is None:
        return "null"
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return json.dumps(value)
        return value
    return json.dumps(value)


@dataclass(frozen=True, slots=True)
class InvocationInput:
    """What an invocation receives (the Lambda invocation envelope, epoch-ms ops)."""

    arn: str
    function_name: str
    invocation_id: str
    request_id: str
    token: str
    operations: list[dict[str, Any]]
    next_marker: str
    updated_ids: list[str]

    def to_event(self) -> dict[str, Any]:
        """``DurableExecutionInvocationInput.to_json_dict`` shape."""
        return {
            "DurableExecutionArn": self.arn,
            "CheckpointToken": self.token,
            "InitialExecutionState": {
                "Operations": self.operations,
                "NextMarker": self.next_marker,
            },
            "UpdatedOperationIds": self.updated_ids,
        }


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """A checkpoint response: the new token (None at the end) and the delta."""

    token: str | None
    operations: list[dict[str, Any]]
    next_marker: str | None = None


class Engine:
    """The durable-execution service's semantics over a :class:`Store`.

    Args:
        store: Where executions live.
        now_ms: The runtime clock (virtual or real), epoch ms.
        wall_ms: The real clock, for invocation leases.
        resolve_function: ``name -> "durable" | "plain" | None`` for chained invokes; None
            means unknown (the invoke fails at checkpoint time, as in the service).
        region: Region used in ARNs.
        account: Account id used in ARNs.
        page_bytes: Byte bound of the invocation input's first page and of deltas.
        max_invocation_failures: Consecutive failed invocations before the execution fails.
        invocation_retry_ms: Delay before re-invoking after a failed invocation.
        lease_ms: How long an invocation may run before another runtime may take over.

    Example:
        >>> from durable_ext.backends.memory import MemoryStore
        >>> eng = Engine(MemoryStore(), now_ms=lambda: 0)
        >>> arn, created = eng.start("fn", "{}")
        >>> eng.describe(arn)["Status"]
        'RUNNING'

    """

    def __init__(
        self,
        store: Store,
        *,
        now_ms: Callable[[], int] | None = None,
        wall_ms: Callable[[], int] | None = None,
        resolve_function: Callable[[str], str | None] | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        page_bytes: int = PAGE_BYTES,
        max_invocation_failures: int = 5,
        invocation_retry_ms: int = 0,
        lease_ms: int = 900_000,
    ) -> None:
        self.store = store
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self.resolve_function = resolve_function or (lambda _name: None)
        self.region = region
        self.account = account
        self.page_bytes = page_bytes
        self.max_invocation_failures = max_invocation_failures
        self.invocation_retry_ms = invocation_retry_ms
        self.lease_ms = lease_ms
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._signer: IdSigner | None = None

    @property
    def ids(self) -> IdSigner:
        """The signer of this store's callback ids and checkpoint tokens (read once)."""
        signer = self._signer
        if signer is None:
            signer = self._signer = IdSigner(self.store.secret())
        return signer

    # ------------------------------------------------------------------ plumbing

    def _lock(self, arn: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(arn)
            if lock is None:
                lock = self._locks[arn] = threading.Lock()
            return lock

    def _mutate(self, arn: str, fn: Callable[[Mutation], Any]) -> Any:
        """Run ``fn`` on fresh state and commit; recompute when another writer won."""
        with self._lock(arn):
            for _ in range(_CONFLICT_RETRIES):
                tx = Mutation(self.store, self.store.header(arn), self.now_ms(), self.ids)
                out = fn(tx)
                if isinstance(out, NoCommit):
                    return out.value
                batch, result = out
                try:
                    self.store.commit(batch)
                except ConflictError:
                    continue
                return result
            raise StoreError(f"execution {arn}: too many concurrent writers, giving up")

    def function_arn(self, function_name: str) -> str:
        """Return the unqualified function ARN."""
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{function_name}"

    def execution_arn(self, function_name: str, name: str, execution_id: str) -> str:
        """Return the execution ARN; its last segment is the EXECUTION operation id."""
        return f"{self.function_arn(function_name)}:$LATEST/durable-execution/{name}/{execution_id}"

    # ------------------------------------------------------------------ start

    def start(
        self,
        function_name: str,
        input_payload: str,
        *,
        name: str | None = None,
        execution_timeout: int | None = None,
        parent: Mapping[str, str] | None = None,
        execution_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> tuple[str, bool]:
        """Create an execution; returns ``(arn, created)``.

        ``attributes`` are free-form strings kept with the execution (the runtime records
        the handler's import path there, so tools can resume it).

        Raises:
            ExecutionAlreadyStartedError: ``name`` exists with a different input.

        """
        validate_name("function name", function_name)
        name = validate_name("execution name", name or str(uuid.uuid4()))
        timeout = int(execution_timeout or MAX_EXECUTION_TIMEOUT)
        if not 1 <= timeout <= MAX_EXECUTION_TIMEOUT:
            raise InvalidParameterValueError(
                f"ExecutionTimeout must be between 1 and {MAX_EXECUTION_TIMEOUT} seconds, "
                f"got {execution_timeout}"
            )
        exec_id = execution_id or str(uuid.uuid4())
        arn = self.execution_arn(function_name, name, exec_id)
        now = self.now_ms()
        state: dict[str, Any] = {
            "gate": "IDLE",
            "open": [],
            "updated": [],
            "fails": 0,
            "invalid": 0,
        }
        state["timeout"] = timeout
        if parent:
            state["parent"] = dict(parent)
        if attributes:
            state["attrs"] = dict(attributes)
        header = ExecutionHeader(
            arn=arn,
            execution_id=exec_id,
            function_name=function_name,
            name=name,
            status="RUNNING",
            start_ms=now,
            revision=1,
            input_payload=input_payload,
            op_count=1,
            event_count=1,
            state=state,
        )
        exec_op = {
            "Id": exec_id,
            "Type": "EXECUTION",
            "Status": "STARTED",
            "Name": name,
            "StartTimestamp": now,
            "ExecutionDetails": {"InputPayload": input_payload},
        }
        started: dict[str, Any] = {
            "Input": payload_block(input_payload),
            "ExecutionTimeout": timeout,
        }
        due = [
            DueEntry(arn=arn, key="invoke", kind=DueKind.INVOKE, due_ms=now),
            DueEntry(
                arn=arn, key="timeout", kind=DueKind.EXECUTION_TIMEOUT, due_ms=now + timeout * 1000
            ),
        ]
        batch = CommitBatch(
            header=header,
            expected_revision=0,
            operations=[OperationRecord(op_id=exec_id, index=0, touched=0, data=exec_op)],
            events=[
                HistoryEvent(
                    event_id=1,
                    data=plain_event("ExecutionStarted", now, started, Id=exec_id, Name=name),
                )
            ],
            due_set=due,
        )
        res = self.store.create(batch)
        if res.created:
            return arn, True
        if res.header.input_payload != input_payload:
            raise ExecutionAlreadyStartedError(
                f"execution {name!r} of function {function_name!r} already exists "
                f"({res.header.arn}) with a different input"
            )
        return res.header.arn, False

    # ------------------------------------------------------------------ invocations

    def begin_invocation(
        self, arn: str, *, owner: str = "", pid: int = 0, host: str = ""
    ) -> InvocationInput | None:
        """Open an invocation (new invocation id, fresh token); None when not runnable."""

        def fn(tx: Mutation) -> Any:
            h = tx.header
            if h.terminal:
                tx.clear_due("invoke")
                return tx.batch(), None
            if tx.state.get("gate") == "INVOKING":
                return NoCommit(None)
            inv = str(uuid.uuid4())
            request_id = str(uuid.uuid4())
            tx.state.update(
                gate="INVOKING",
                inv_start=tx.now_ms,
                request_id=request_id,
                reinvoke=False,
                input_seq=tx.seq,
            )
            updated = list(tx.state.get("updated", []))
            tx.state["updated"] = []
            tx.clear_due("invoke")
            tx.set_due(
                LEASE_KEY,
                DueKind.LEASE,
                self.wall_ms() + self.lease_ms,
                invocation=inv,
                owner=owner,
                pid=pid,
                host=host,
            )
            visible = self._visible(arn, self.store.operations(arn))
            first, rest = self._page(visible, None)
            marker = f"s:{h.token_sequence}:{len(first)}" if rest else ""
            token = self.ids.token(CheckpointToken(h.execution_id, h.token_sequence, inv))
            result = InvocationInput(
                arn=arn,
                function_name=h.function_name,
                invocation_id=inv,
                request_id=request_id,
                token=token,
                operations=[public_op(r.data) for r in first],
                next_marker=marker,
                updated_ids=updated,
            )
            return tx.batch(invocation_id=inv), result

        result: InvocationInput | None = self._mutate(arn, fn)
        return result

    def finish_invocation(
        self,
        arn: str,
        invocation_id: str,
        output: Mapping[str, Any] | None,
        error: Mapping[str, Any] | None = None,
    ) -> None:
        """Close an invocation with its output, or with ``error`` when it crashed.

        Records ``InvocationCompleted`` (with ``Error`` for a crash) and then applies the
        output: completion, failure, a valid PENDING, or a retry of the invocation.
        """
        self._end_invocation(arn, invocation_id, output, error)

    def _end_invocation(
        self,
        arn: str,
        invocation_id: str,
        output: Mapping[str, Any] | None,
        error: Mapping[str, Any] | None,
        *,
        lease_due_ms: int | None = None,
        released: bool = False,
    ) -> bool:
        """Close the current invocation; False when it is not current (nothing written).

        ``lease_due_ms`` makes the close conditional on the stored lease still having that
        due time. A ``released`` invocation was handed back unfinished: its error is
        recorded but it is neither counted as failed nor retried after a delay.
        """

        def fn(tx: Mutation) -> Any:
            h = tx.header
            if h.invocation_id != invocation_id or tx.state.get("gate") != "INVOKING":
                return NoCommit(False)
            if lease_due_ms is not None:
                lease = self._lease(arn)
                if lease is None or lease.due_ms != lease_due_ms:
                    return NoCommit(False)
            details: dict[str, Any] = {
                "StartTimestamp": tx.state.get("inv_start", tx.now_ms),
                "EndTimestamp": tx.now_ms,
                "RequestId": tx.state.get("request_id", ""),
            }
            if error is not None:
                details["Error"] = payload_block(dict(error))
            tx.event(plain_event("InvocationCompleted", tx.now_ms, details))
            tx.state["gate"] = "IDLE"
            tx.clear_due(LEASE_KEY)
            if h.terminal:
                return tx.batch(), True
            close = tx.state.pop("close", None)
            if close is not None:
                batch, _ = self._close(tx, close["status"], close.get("result"), close.get("error"))
            elif released:
                # handed back unfinished: not a failure of the handler, run it again now
                tx.set_due("invoke", DueKind.INVOKE, tx.now_ms)
                batch = tx.batch()
            elif error is not None:
                batch, _ = self._invocation_failed(tx, dict(error))
            else:
                batch, _ = self._apply_output(tx, output or {})
            return batch, True

        closed: bool = self._mutate(arn, fn)
        return closed

    def _invocation_failed(self, tx: Mutation, error: dict[str, Any]) -> Any:
        tx.state["fails"] = int(tx.state.get("fails", 0)) + 1
        if tx.state["fails"] >= self.max_invocation_failures:
            return self._close(tx, "FAILED", None, error)
        tx.set_due("invoke", DueKind.INVOKE, tx.now_ms + self.invocation_retry_ms)
        return tx.batch(), None

    def _apply_output(self, tx: Mutation, output: Mapping[str, Any]) -> Any:
        status = output.get("Status")
        invalid: str | None = None
        if status == "SUCCEEDED":
            if output.get("Error") is not None:
                invalid = "Cannot provide an Error for SUCCEEDED status."
            else:
                tx.state["fails"] = 0
                result = output.get("Result")
                if (
                    "parent" in tx.state
                    and len((result or "").encode()) > CHAINED_INVOKE_INPUT_LIMIT
                ):
                    # A chained child's result travels back into the caller's checkpoint.
                    return self._close(
                        tx,
                        "FAILED",
                        None,
                        {
                            "ErrorType": "InvalidParameterValueException",
                            "ErrorMessage": "Execution output payload size must be less than or "
                            f"equal to {CHAINED_INVOKE_INPUT_LIMIT} bytes.",
                        },
                    )
                return self._close(tx, "SUCCEEDED", result, None)
        elif status == "FAILED":
            if output.get("Result") is not None:
                invalid = "Cannot provide a Result for FAILED status."
            else:
                tx.state["fails"] = 0
                return self._close(tx, "FAILED", None, dict(output.get("Error") or {}))
        elif status == "PENDING":
            unseen = tx.seq > int(tx.state.get("input_seq", tx.seq))
            if self._has_pending(tx) or unseen:
                tx.state["fails"] = 0
                tx.state["invalid"] = 0
                external = bool(tx.state.pop("reinvoke", False))
                seen = max(int(tx.state.get("input_seq", 0)), tx.header.handler_seen_seq)
                if external or tx.seq > seen:
                    # Something completed that this invocation may not have acted on.
                    tx.set_due("invoke", DueKind.INVOKE, tx.now_ms)
                return tx.batch(), None
            invalid = "Cannot return PENDING status with no pending operations."
        else:
            invalid = f"Invalid invocation status {status!r}."
        tx.state["invalid"] = int(tx.state.get("invalid", 0)) + 1
        err = {"ErrorType": "InvalidParameterValueException", "ErrorMessage": invalid}
        if status != "PENDING" or tx.state["invalid"] > 3:
            return self._close(tx, "FAILED", None, err)
        tx.set_due("invoke", DueKind.INVOKE, tx.now_ms + self.invocation_retry_ms)
        return tx.batch(), None

    def _has_pending(self, tx: Mutation) -> bool:
        if tx.state.get("open"):
            return True
        if any(d.kind == DueKind.WAKE for d in tx.due_set.values()):
            return True
        return any(
            d.key not in tx.due_clear
            for d in self.store.due(arn=tx.arn, kinds=[DueKind.WAKE], limit=None)
        )

    def _close(
        self, tx: Mutation, status: str, result: str | None, error: Mapping[str, Any] | None
    ) -> Any:
        """Make the execution terminal (one commit) and return ``(batch, None)``."""
        h = tx.header
        exec_op = tx.get(h.execution_id)
        if exec_op is not None:
            tx.put({**exec_op, "Status": status, "EndTimestamp": tx.now_ms})
        etype = {
            "SUCCEEDED": "ExecutionSucceeded",
            "FAILED": "ExecutionFailed",
            "TIMED_OUT": "ExecutionTimedOut",
            "STOPPED": "ExecutionStopped",
        }[status]
        if status == "SUCCEEDED":
            details = {"Result": payload_block(result)}
        else:
            details = {"Error": payload_block(dict(error or {}))}
        tx.event(plain_event(etype, tx.now_ms, details, Id=h.execution_id, Name=h.name))
        for d in self.store.due(arn=tx.arn):
            if d.kind != NOTIFY:
                tx.clear_due(d.key)
        for key in list(tx.due_set):
            if tx.due_set[key].kind != NOTIFY:
                tx.clear_due(key)
        if "parent" in tx.state:
            tx.set_due("notify", NOTIFY, tx.now_ms, **tx.state["parent"])
        batch = tx.batch(
            status=status,
            end_ms=tx.now_ms,
            result=result if status == "SUCCEEDED" else None,
            error=None if status == "SUCCEEDED" else dict(error or {}),
        )
        return batch, None

    def renew_lease(self, arn: str, invocation_id: str, until_ms: int) -> bool:
        """Move the lease of a running invocation to ``until_ms`` (wall-clock epoch ms).

        A lease is never shortened: when it already lasts until ``until_ms`` nothing is
        written. Concurrent commits (the invocation's own checkpoints) are retried.

        Returns:
            True when the lease lasts at least until ``until_ms``; False when the
            invocation is no longer the execution's current one (taken over, finished,
            or the execution is gone or terminal).

        """

        def fn(tx: Mutation) -> Any:
            h = tx.header
            if h.terminal or h.invocation_id != invocation_id or tx.state.get("gate") != "INVOKING":
                return NoCommit(False)
            lease = self._lease(arn)
            if lease is None or lease.data.get("invocation") != invocation_id:
                return NoCommit(False)
            if lease.due_ms >= until_ms:
                return NoCommit(True)
            tx.set_due(LEASE_KEY, DueKind.LEASE, until_ms, **lease.data)
            return tx.batch(), True

        try:
            renewed: bool = self._mutate(arn, fn)
        except NotFoundError:
            return False
        return renewed

    def _lease(self, arn: str) -> DueEntry | None:
        """Return the stored lease of the execution's running invocation, if any."""
        return next(
            (d for d in self.store.due(arn=arn, kinds=[DueKind.LEASE]) if d.key == LEASE_KEY),
            None,
        )

    def abandon_invocation(
        self, arn: str, invocation_id: str, message: str, *, lease_due_ms: int | None = None
    ) -> bool:
        """Record a lost invocation (crashed runtime/process) and schedule a new one.

        It counts as a failed invocation (``max_invocation_failures`` in a row fail the
        execution) and is retried after ``invocation_retry_ms``.

        Args:
            arn: The execution.
            invocation_id: The invocation that was lost.
            message: ``ErrorMessage`` of the ``Runtime.ExitError`` recorded for it.
            lease_due_ms: Take over only this lease: when given and the stored lease's
                due time differs (it was renewed since it was judged expired), nothing
                happens.

        Returns:
            True when the invocation was closed; False when it was not the current one or
            its lease was renewed meanwhile.

        """
        return self._end_invocation(
            arn,
            invocation_id,
            None,
            {"ErrorType": "Runtime.ExitError", "ErrorMessage": message},
            lease_due_ms=lease_due_ms,
        )

    def release_invocation(self, arn: str, invocation_id: str, message: str) -> bool:
        """Hand back an unfinished invocation (graceful shutdown) to be run again at once.

        ``InvocationCompleted`` records the release with the same error as a crash
        (``Runtime.ExitError``, as the service records a runtime that exited), but unlike
        :meth:`abandon_invocation` it does not count as a failed invocation and the next
        invocation is due immediately, not after ``invocation_retry_ms``: the handler did
        not fail, its runtime went away. Whatever the old invocation still sends is
        refused (its tokens are fenced).

        Returns:
            True when the invocation was released; False when it was not the current one.

        """
        return self._end_invocation(
            arn,
            invocation_id,
            None,
            {"ErrorType": "Runtime.ExitError", "ErrorMessage": message},
            released=True,
        )

    # ------------------------------------------------------------------ data plane

    def _check_token(self, tx: Mutation, token: str) -> None:
        h = tx.header
        parsed = self.ids.parse_token(token) if token else None
        if (
            parsed is None
            or h.terminal
            or "close" in tx.state
            or parsed.execution_id != h.execution_id
            or parsed.sequence != h.token_sequence
            or parsed.invocation_id != h.invocation_id
            or tx.state.get("gate") != "INVOKING"
        ):
            raise InvalidCheckpointTokenError()

    def checkpoint(
        self,
        arn: str,
        token: str,
        updates: Sequence[Mapping[str, Any]],
        client_token: str | None = None,
    ) -> CheckpointResult:
        """CheckpointDurableExecution: validate and apply ``updates`` (wire dicts)."""
        self._require(arn)

        def fn(tx: Mutation) -> Any:
            last = tx.state.get("cp")
            if client_token and last and last["ct"] == client_token and last["in"] == token:
                recs = self.store.operations(arn, last["ids"])
                return NoCommit(
                    CheckpointResult(last["out"], [public_op(r.data) for r in recs], None)
                )
            self._check_token(tx, token)
            ids = {u.get("Id") for u in updates} | {u.get("ParentId") for u in updates}
            tx.load(i for i in ids if isinstance(i, str) and i)
            existing = {i: r.data for i, r in tx.loaded.items()}
            validate_batch(updates, existing)
            for u in updates:
                self._apply_update(tx, u)
            self._fire_due_wakes(tx)
            h = tx.header
            new_seq = h.token_sequence + 1
            closing = "close" in tx.state
            delta = self._delta(tx)
            first, rest = self._page(delta, None)
            marker = None
            if rest and not closing:
                marker = f"d:{new_seq}:{h.handler_seen_seq}:{len(first)}"
            out_token = (
                None
                if closing
                else self.ids.token(CheckpointToken(h.execution_id, new_seq, h.invocation_id or ""))
            )
            if client_token:
                tx.state["cp"] = {
                    "ct": client_token,
                    "in": token,
                    "out": out_token,
                    "ids": [r.op_id for r in first],
                }
            else:
                tx.state.pop("cp", None)
            result = CheckpointResult(out_token, [public_op(r.data) for r in first], marker)
            batch = tx.batch(token_sequence=new_seq, handler_seen_seq=tx.seq)
            return batch, result

        result: CheckpointResult = self._mutate(arn, fn)
        return result

    def get_state(
        self, arn: str, token: str, marker: str | None, max_items: int | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """GetDurableExecutionState: a page of the state (or of a paginated delta)."""
        self._require(arn)
        tx = Mutation(self.store, self.store.header(arn), self.now_ms(), self.ids)
        self._check_token(tx, token)
        h = tx.header
        limit = max(1, min(int(max_items or 1000), 1000))
        if not marker:
            records = self._visible(arn, self.store.operations(arn))
            start = 0
            prefix = f"s:{h.token_sequence}"
        else:
            parts = marker.split(":")
            try:
                if parts[0] == "s" and len(parts) == 3 and int(parts[1]) == h.token_sequence:
                    records = self._visible(arn, self.store.operations(arn))
                    start = int(parts[2])
                    prefix = f"s:{h.token_sequence}"
                elif parts[0] == "d" and len(parts) == 4 and int(parts[1]) == h.token_sequence:
                    records = self._visible(arn, self.store.touched_after(arn, int(parts[2])))
                    start = int(parts[3])
                    prefix = f"d:{parts[1]}:{parts[2]}"
                else:
                    raise InvalidParameterValueError("Invalid marker")
            except ValueError:
                raise InvalidParameterValueError("Invalid marker") from None
        page, rest = self._page(records[start:], limit)
        next_marker = f"{prefix}:{start + len(page)}" if rest else None
        return [public_op(r.data) for r in page], next_marker

    def _page(
        self, records: list[OperationRecord], limit: int | None
    ) -> tuple[list[OperationRecord], bool]:
        total = 0
        for i, rec in enumerate(records):
            if limit is not None and i >= limit:
                return records[:i], True
            total += op_size(rec.data)
            if total > self.page_bytes and i > 0:
                return records[:i], True
        return records, False

    def _delta(self, tx: Mutation) -> list[OperationRecord]:
        merged = {r.op_id: r for r in self.store.touched_after(tx.arn, tx.header.handler_seen_seq)}
        merged.update(tx.changed)
        recs = sorted(merged.values(), key=lambda r: r.index)
        return self._visible(tx.arn, recs, tx)

    def _visible(
        self, arn: str, records: list[OperationRecord], tx: Mutation | None = None
    ) -> list[OperationRecord]:
        """Drop children (at any depth) of completed contexts without ReplayChildren."""
        known: dict[str, dict[str, Any]] = {r.op_id: r.data for r in records}
        hidden: dict[str, bool] = {}

        def lookup(op_id: str) -> dict[str, Any] | None:
            if tx is not None and op_id in tx.changed:
                return tx.changed[op_id].data
            if op_id not in known:
                recs = self.store.operations(arn, [op_id])
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

    # ------------------------------------------------------------------ updates

    def _apply_update(self, tx: Mutation, u: Mapping[str, Any]) -> None:
        apply_update(tx, u, self._start_chained)

    def _start_chained(self, function_name: str) -> ChainedTarget:
        """Resolve a chained-invoke target and name the child execution it will get."""
        target = target_name(function_name)
        kind = self.resolve_function(target) if target else None
        child_id = str(uuid.uuid4())
        child_arn = self.execution_arn(target or "unknown", child_id, child_id)
        return ChainedTarget(target, kind, child_id, child_id, child_arn)

    # ------------------------------------------------------------------ timers

    def _fire_due_wakes(self, tx: Mutation) -> None:
        """Lazy completion inside a checkpoint: due waits succeed, due retries get READY."""
        due = [
            d
            for d in self.store.due(tx.now_ms, arn=tx.arn, kinds=[DueKind.WAKE])
            if d.key not in tx.due_clear and d.key not in tx.due_set
        ]
        due += [d for d in tx.due_set.values() if d.kind == DueKind.WAKE and d.due_ms <= tx.now_ms]
        for d in sorted(due, key=lambda d: (d.due_ms, d.key)):
            self._fire_wake(tx, d, external=False)

    def _fire_wake(self, tx: Mutation, entry: DueEntry, *, external: bool = True) -> bool:
        tx.clear_due(entry.key)
        data = tx.get(entry.data.get("op", ""))
        if data is None:
            return False
        data = dict(data)
        now = tx.now_ms
        if data.get("Type") == "WAIT" and data.get("Status") == "STARTED":
            set_status(data, "SUCCEEDED", now)
            tx.put(data)
            tx.event(op_event("WaitSucceeded", data, now, {"Duration": data.get("_wait", 0)}))
        elif data.get("Type") == "STEP" and data.get("Status") == "PENDING":
            sd = dict(data.get("StepDetails") or {})
            sd.pop("NextAttemptTimestamp", None)
            data["StepDetails"] = sd
            set_status(data, "READY", now)
            tx.put(data)
        else:
            return False
        self._mark_changed(tx, data["Id"], external=external)
        return True

    def _mark_changed(self, tx: Mutation, op_id: str, *, external: bool = True) -> None:
        """Record an asynchronous completion for the handler, now or at its next invocation.

        ``external=False`` is a completion applied inside the handler's own checkpoint: the
        response delivers it. An external one (callback, timer, chained invoke) during an
        invocation re-invokes when that invocation suspends, even if a later checkpoint
        showed it: the handler may have decided to suspend before it saw the change.
        """
        updated = tx.state.setdefault("updated", [])
        if op_id not in updated:
            updated.append(op_id)
        if tx.state.get("gate") != "INVOKING":
            tx.set_due("invoke", DueKind.INVOKE, tx.now_ms)
        elif external:
            tx.state["reinvoke"] = True

    def fire(self, entry: DueEntry) -> None:
        """Fire a due timer (WAKE, CALLBACK_*, EXECUTION_TIMEOUT)."""

        def fn(tx: Mutation) -> Any:
            current = self.store.due(arn=tx.arn)
            if not any(d.key == entry.key and d.due_ms == entry.due_ms for d in current):
                return NoCommit(None)
            if tx.header.terminal:
                tx.clear_due(entry.key)
                return tx.batch(), None
            if entry.kind == DueKind.WAKE:
                self._fire_wake(tx, entry)
            elif entry.kind in (DueKind.CALLBACK_TIMEOUT, DueKind.CALLBACK_HEARTBEAT):
                heartbeat = entry.kind == DueKind.CALLBACK_HEARTBEAT
                err = {
                    "ErrorType": "Callback.Heartbeat" if heartbeat else "Callback.Timeout",
                    "ErrorMessage": "Callback timed out on heartbeat"
                    if heartbeat
                    else "Callback timed out",
                }
                op = tx.get(str(entry.data.get("op")))
                if op is None or op.get("Status") != "STARTED":
                    tx.clear_due(entry.key)  # completed meanwhile; nothing to time out
                else:
                    self._complete_callback(tx, op["Id"], "TIMED_OUT", None, err)
            elif entry.kind == DueKind.EXECUTION_TIMEOUT:
                secs = tx.state.get("timeout", 0)
                return self._close(
                    tx,
                    "TIMED_OUT",
                    None,
                    {
                        "ErrorType": "Execution.Timeout",
                        "ErrorMessage": f"Execution timed out after {secs} seconds.",
                    },
                )
            else:
                return NoCommit(None)
            return tx.batch(), None

        self._mutate(entry.arn, fn)

    def clear_due(self, arn: str, key: str) -> None:
        """Remove one due entry (e.g. once a dispatch or notification was handled)."""

        def fn(tx: Mutation) -> Any:
            if not any(d.key == key for d in self.store.due(arn=arn)):
                return NoCommit(None)
            tx.clear_due(key)
            return tx.batch(), None

        self._mutate(arn, fn)

    # ------------------------------------------------------------------ callbacks

    def _complete_callback(
        self,
        tx: Mutation,
        op_id: str,
        status: str,
        result: str | None,
        error: Mapping[str, Any] | None,
    ) -> None:
        data = tx.get(op_id)
        if data is None or data.get("Type") != "CALLBACK" or data.get("Status") != "STARTED":
            raise NotFoundError(f"callback {op_id!r} of {tx.arn} is not waiting for a result")
        data = dict(data)
        cd = dict(data.get("CallbackDetails") or {})
        if result is not None:
            cd["Result"] = result
        if error is not None:
            cd["Error"] = dict(error)
        data["CallbackDetails"] = cd
        set_status(data, status, tx.now_ms)
        tx.put(data)
        tx.clear_due(f"cbt:{op_id}")
        tx.clear_due(f"cbh:{op_id}")
        tx.state["open"] = [i for i in tx.state.get("open", []) if i != op_id]
        etype = {
            "SUCCEEDED": "CallbackSucceeded",
            "FAILED": "CallbackFailed",
            "TIMED_OUT": "CallbackTimedOut",
        }[status]
        details = (
            {"Result": payload_block(result)}
            if status == "SUCCEEDED"
            else {"Error": payload_block(dict(error or {}))}
        )
        tx.event(op_event(etype, data, tx.now_ms, details))
        self._mark_changed(tx, op_id)

    def _callback_target(self, callback_id: str) -> tuple[str, str]:
        decoded = self.ids.callback_target(callback_id)
        if decoded is None:
            # the service's answer for an id it never issued; nothing about why
            raise NotFoundError(f"unknown callback id {callback_id[:80]!r}")
        self._require(decoded[0])
        return decoded

    def callback_success(self, callback_id: str, result: bytes | str | None) -> None:
        """SendDurableExecutionCallbackSuccess (the result is kept verbatim)."""
        arn, op_id = self._callback_target(callback_id)
        text = result.decode() if isinstance(result, bytes) else result
        text = text or None

        def fn(tx: Mutation) -> Any:
            self._callback_open(tx, op_id)
            self._complete_callback(tx, op_id, "SUCCEEDED", text, None)
            return tx.batch(), None

        self._mutate(arn, fn)

    def callback_failure(self, callback_id: str, error: Mapping[str, Any] | None) -> None:
        """SendDurableExecutionCallbackFailure."""
        arn, op_id = self._callback_target(callback_id)
        err = {k: v for k, v in (error or {}).items() if v is not None}

        def fn(tx: Mutation) -> Any:
            self._callback_open(tx, op_id)
            self._complete_callback(tx, op_id, "FAILED", None, err)
            return tx.batch(), None

        self._mutate(arn, fn)

    def callback_heartbeat(self, callback_id: str) -> None:
        """SendDurableExecutionCallbackHeartbeat: push the heartbeat deadline out."""
        arn, op_id = self._callback_target(callback_id)

        def fn(tx: Mutation) -> Any:
            data = self._callback_open(tx, op_id)
            hb = int((data.get("_cb") or {}).get("hb", 0))
            if hb <= 0:
                return NoCommit(None)
            tx.set_due(f"cbh:{op_id}", DueKind.CALLBACK_HEARTBEAT, tx.now_ms + hb * 1000, op=op_id)
            return tx.batch(), None

        self._mutate(arn, fn)

    def _callback_open(self, tx: Mutation, op_id: str) -> dict[str, Any]:
        if tx.header.terminal:
            raise NotFoundError(
                f"execution {tx.arn} is {tx.header.status}; callback {op_id!r} is closed"
            )
        data = tx.get(op_id)
        if data is None or data.get("Type") != "CALLBACK" or data.get("Status") != "STARTED":
            raise NotFoundError(f"callback {op_id!r} of {tx.arn} is not waiting for a result")
        return data

    # ------------------------------------------------------------------ chained invoke

    def complete_chained(
        self, arn: str, op_id: str, status: str, result: str | None, error: Mapping[str, Any] | None
    ) -> None:
        """Report a chained invoke's outcome (target terminal) to the calling execution."""

        def fn(tx: Mutation) -> Any:
            data = tx.get(op_id)
            if (
                tx.header.terminal
                or data is None
                or data.get("Type") != "CHAINED_INVOKE"
                or data.get("Status") != "STARTED"
            ):
                return NoCommit(None)
            data = dict(data)
            cid: dict[str, Any] = {}
            if status == "SUCCEEDED":
                cid["Result"] = result
                cid = {k: v for k, v in cid.items() if v is not None}
            else:
                cid["Error"] = dict(error or {"ErrorMessage": "Chained invoke failed."})
            data["ChainedInvokeDetails"] = cid
            set_status(data, status, tx.now_ms)
            tx.put(data)
            tx.clear_due(f"dispatch:{op_id}")
            tx.state["open"] = [i for i in tx.state.get("open", []) if i != op_id]
            etype = {
                "SUCCEEDED": "ChainedInvokeSucceeded",
                "FAILED": "ChainedInvokeFailed",
                "TIMED_OUT": "ChainedInvokeTimedOut",
                "STOPPED": "ChainedInvokeStopped",
            }[status]
            details = (
                {"Result": payload_block(result)}
                if status == "SUCCEEDED"
                else {"Error": payload_block(cid["Error"])}
            )
            tx.event(op_event(etype, data, tx.now_ms, details))
            self._mark_changed(tx, op_id)
            return tx.batch(), None

        self._mutate(arn, fn)

    # ------------------------------------------------------------------ control plane

    def _require(self, arn: str) -> ExecutionHeader:
        try:
            return self.store.header(arn)
        except NotFoundError:
            raise NotFoundError(f"no durable execution {arn!r}") from None

    def stop(self, arn: str, error: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """StopDurableExecution: idempotent; the caller's error is recorded."""
        self._require(arn)
        err = dict(error) if error else {"ErrorMessage": "Execution stopped by user request"}

        def fn(tx: Mutation) -> Any:
            if tx.header.terminal:
                return NoCommit(None)
            tx.state.pop("close", None)
            return self._close(tx, "STOPPED", None, err)

        self._mutate(arn, fn)
        return {"StopTimestamp": ms_to_dt(self.store.header(arn).end_ms)}

    def attributes(self, arn: str) -> dict[str, str]:
        """Return the ``attributes`` given at start."""
        return dict(self._require(arn).state.get("attrs") or {})

    def describe(self, arn: str) -> dict[str, Any]:
        """GetDurableExecution."""
        h = self._require(arn)
        out: dict[str, Any] = {
            "DurableExecutionArn": h.arn,
            "DurableExecutionName": h.name,
            "FunctionArn": self.function_arn(h.function_name),
            "InputPayload": h.input_payload,
            "StartTimestamp": ms_to_dt(h.start_ms),
            "Status": h.status,
            "Version": "$LATEST",
        }
        if h.result is not None:
            out["Result"] = h.result
        if h.error is not None:
            out["Error"] = h.error
        if h.end_ms is not None:
            out["EndTimestamp"] = ms_to_dt(h.end_ms)
        return out

    def history(
        self,
        arn: str,
        *,
        include_execution_data: bool = True,
        max_items: int | None = None,
        marker: str | None = None,
        reverse_order: bool = False,
    ) -> dict[str, Any]:
        """GetDurableExecutionHistory (paged by EventId)."""
        h = self._require(arn)
        limit = int(max_items) if max_items else None
        try:
            mark = int(marker) if marker else None
        except ValueError:
            raise InvalidParameterValueError("Invalid marker") from None
        if reverse_order:
            events = self.store.events(arn, after=mark or 0, limit=limit, reverse=True)
            more = (
                bool(events)
                and events[-1].event_id > 1
                and limit is not None
                and len(events) == limit
            )
            next_marker = str(events[-1].event_id) if more else None
        else:
            start = mark or 1
            events = self.store.events(arn, after=start - 1, limit=limit)
            last = events[-1].event_id if events else start - 1
            more = limit is not None and last < h.event_count
            next_marker = str(last + 1) if more else None
        out: dict[str, Any] = {
            "Events": [
                render_event(e.event_id, e.data, include_data=include_execution_data)
                for e in events
            ]
        }
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    def list_executions(
        self,
        *,
        function_name: str | None = None,
        status: str | None = None,
        max_items: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """ListDurableExecutionsByFunction."""
        page = self.store.list_executions(
            function_name=function_name, status=status, limit=max_items, marker=marker
        )
        items = []
        for h in page.headers:
            item: dict[str, Any] = {
                "DurableExecutionArn": h.arn,
                "DurableExecutionName": h.name,
                "FunctionArn": self.function_arn(h.function_name),
                "Status": h.status,
                "StartTimestamp": ms_to_dt(h.start_ms),
            }
            if h.end_ms is not None:
                item["EndTimestamp"] = ms_to_dt(h.end_ms)
            items.append(item)
        out: dict[str, Any] = {"DurableExecutions": items}
        if page.next_marker:
            out["NextMarker"] = page.next_marker
        return out
