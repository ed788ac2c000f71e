"""The service's checkpoint semantics, pure and storage-agnostic.

:class:`Engine` turns control-plane and data-plane calls (start, begin/finish invocation,
checkpoint, get state, callbacks, timers, stop, chained-invoke completion) into
:class:`~durable_ext.backends.store.CommitBatch` es for any
:class:`~durable_ext.backends.store.Store`. Every mutation of an execution is one commit
guarded by a compare-and-set on the header revision, so several engines (threads or
processes) sharing a store serialise per execution exactly like the service's
per-execution lane; a lost race is recomputed from fresh state. What each call changes is
decided by :mod:`~durable_ext.engine.rules`, checked by
:mod:`~durable_ext.engine.validation`, shown to the handler by
:mod:`~durable_ext.engine.visibility` and answered by :mod:`~durable_ext.engine.views`;
this module sequences them. Tokens name ``(execution, token sequence, invocation)``: a
checkpoint is accepted only with the current sequence of the current invocation of a
running execution and bumps the sequence once (a rejected batch leaves the token valid).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from durable_ext.backends.store import (
    DueEntry,
    ExecutionHeader,
    ExecutionStatus,
    HistoryEvent,
    Store,
)
from durable_ext.engine import rules, views
from durable_ext.engine.arns import LATEST, is_version
from durable_ext.engine.control import ExecutionControl
from durable_ext.engine.mutation import Mutation, NoCommit, public_op
from durable_ext.engine.outbox import EventStamp
from durable_ext.engine.records import CheckpointResult, InvocationInput, creation_batch
from durable_ext.engine.state import (
    DueKey,
    DueKind,
    EngineState,
    LastCheckpoint,
    Lease,
    ParentLink,
)
from durable_ext.engine.tokens import CheckpointToken, IdSigner
from durable_ext.engine.trace import invocation_header
from durable_ext.engine.validation import check_shapes, validate_batch, validate_name
from durable_ext.engine.visibility import delta, page, state_page, visible
from durable_ext.errors import (
    ConflictError,
    ExecutionAlreadyStartedError,
    InvalidCheckpointTokenError,
    InvalidParameterValueError,
    NotFoundError,
    StoreError,
)

__all__ = ["MAX_EXECUTION_TIMEOUT", "CheckpointResult", "Engine", "InvocationInput"]

PAGE_BYTES = 5 * 1024 * 1024
MAX_EXECUTION_TIMEOUT = 31_622_400
"""The service's upper bound (and this engine's default) for ExecutionTimeout, in seconds."""
_CONFLICT_RETRIES = 50
_MAX_STATE_ITEMS = 1000


class Engine(ExecutionControl):
    """The durable-execution service's semantics over a :class:`Store`.

    Args:
        store: Where executions live.
        now_ms: The runtime clock (virtual or real), epoch ms.
        wall_ms: The real clock, for invocation leases.
        resolve_function: ``name -> "durable" | "plain" | None`` for chained invokes; None
            means unknown (the invoke fails at checkpoint time, as in the service).
        resolve_version: ``"fn[:qualifier]" -> version`` for chained invokes (None: an
            unknown alias); by default every target runs ``$LATEST``.
        region: Region used in ARNs.
        account: Account id used in ARNs.
        page_bytes: Byte bound of the invocation input's first page and of deltas.
        max_invocation_failures: Consecutive failed invocations before the execution fails.
        invocation_retry_ms: Delay before re-invoking after a failed invocation.
        lease_ms: How long an invocation may run before another runtime may take over.
        status_events: Record every status change in the store's outbox
            (:mod:`~durable_ext.engine.outbox`); every process sharing a store should
            agree on it.

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
        resolve_version: Callable[[str], str | None] | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        page_bytes: int = PAGE_BYTES,
        max_invocation_failures: int = 5,
        invocation_retry_ms: int = 0,
        lease_ms: int = 900_000,
        status_events: bool = False,
    ) -> None:
        self.store = store
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self.resolve_function = resolve_function or (lambda _name: None)
        self.resolve_version = resolve_version or (lambda _name: LATEST)
        self.region = region
        self.account = account
        self.page_bytes = page_bytes
        self.max_invocation_failures = max_invocation_failures
        self.invocation_retry_ms = invocation_retry_ms
        self.lease_ms = lease_ms
        self.stamp = EventStamp(region, account) if status_events else None
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._signer: IdSigner | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def ids(self) -> IdSigner:
        """The signer of this store's callback ids and checkpoint tokens (read once)."""
        signer = self._signer
        if signer is None:
            signer = self._signer = IdSigner(self.store.secret())
        return signer

    def _lock(self, arn: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(arn)
            if lock is None:
                lock = self._locks[arn] = threading.Lock()
            return lock

    def _mutate(self, arn: str, fn: Callable[[Mutation], Any]) -> Any:
        """Run ``fn`` on fresh state and commit; recompute when another writer won.

        ``fn`` returns ``(batch, result)``, or :class:`NoCommit` when nothing changes.
        """
        with self._lock(arn):
            for _ in range(_CONFLICT_RETRIES):
                tx = Mutation(self.store, self.store.header(arn), self.now_ms(), self.ids,
                              self.stamp)
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

    def execution_arn(
        self, function_name: str, name: str, execution_id: str, version: str = LATEST
    ) -> str:
        """Return the execution ARN; its last segment is the EXECUTION operation id.

        The version it runs is part of it (``...:function:FN:VERSION/durable-execution/...``).
        """
        return (f"{self.function_arn(function_name)}:{version}/durable-execution/{name}/"
                f"{execution_id}")

    def _require(self, arn: str) -> ExecutionHeader:
        try:
            return self.store.header(arn)
        except NotFoundError:
            raise NotFoundError(f"no durable execution {arn!r}") from None

    # ------------------------------------------------------------------ start

    def start(
        self,
        function_name: str,
        input_payload: str,
        *,
        name: str | None = None,
        execution_timeout: int | None = None,
        parent: ParentLink | None = None,
        execution_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
        version: str = LATEST,
    ) -> tuple[str, bool]:
        """Create an execution that runs ``version``; returns ``(arn, created)``.

        ``attributes`` are free-form strings kept with the execution (the runtime records
        the handler's reference there, so a later process can run it on).

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
        if not is_version(version):
            raise InvalidParameterValueError(f"invalid function version {version!r}")
        arn = self.execution_arn(function_name, name, exec_id, version)
        now = self.now_ms()
        state = EngineState(timeout=timeout, parent=parent, attributes=dict(attributes or {}))
        batch = creation_batch(arn, exec_id, function_name, name, input_payload, state, now,
                               self.stamp)
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
        """Open an invocation (new invocation id, fresh token); None when not runnable.

        ``owner`` (unique per runtime process), ``pid`` and ``host`` go into its lease.
        """

        def fn(tx: Mutation) -> Any:
            h = tx.header
            if h.terminal:
                tx.clear_due(DueKey.INVOKE)
                return tx.batch(), None
            if tx.state.invoking:
                return NoCommit(None)
            if tx.state.pause is not None:
                # paused: no invocation starts; the resume owes it
                rules.schedule_invocation(tx, tx.now_ms)
                return tx.batch(), None
            inv = str(uuid.uuid4())
            request_id = str(uuid.uuid4())
            updated = list(tx.state.updated)
            tx.evolve(gate="INVOKING", invocation_start=tx.now_ms, request_id=request_id,
                      reinvoke=False, input_seq=tx.seq, updated=())
            tx.clear_due(DueKey.INVOKE)
            lease = Lease(arn, inv, owner, host, pid, self.wall_ms() + self.lease_ms)
            tx.set_due(DueKey.LEASE, DueKind.LEASE, lease.due_ms, **lease.data())
            first, rest = page(visible(self.store, arn, self.store.operations(arn)), None,
                               self.page_bytes)
            result = InvocationInput(
                arn=arn,
                function_name=h.function_name,
                invocation_id=inv,
                request_id=request_id,
                token=self.ids.token(CheckpointToken(h.execution_id, h.token_sequence, inv)),
                operations=[public_op(r.data) for r in first],
                next_marker=f"s:{h.token_sequence}:{len(first)}" if rest else "",
                updated_ids=updated,
                trace_header=invocation_header(arn, h.start_ms, tx.state.attributes, inv),
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
        error = {"ErrorType": "Runtime.ExitError", "ErrorMessage": message}
        return self._end_invocation(arn, invocation_id, None, error, lease_due_ms=lease_due_ms)

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
        error = {"ErrorType": "Runtime.ExitError", "ErrorMessage": message}
        return self._end_invocation(arn, invocation_id, None, error, released=True)

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
        """Close the current invocation; False when it is not current (nothing written)."""

        def fn(tx: Mutation) -> Any:
            if tx.header.invocation_id != invocation_id or not tx.state.invoking:
                return NoCommit(False)
            if lease_due_ms is not None:
                lease = self.lease(arn)
                if lease is None or lease.due_ms != lease_due_ms:
                    return NoCommit(False)
            rules.end_invocation(
                tx, output, error, released=released,
                max_failures=self.max_invocation_failures, retry_ms=self.invocation_retry_ms,
            )
            return tx.batch(), True

        closed: bool = self._mutate(arn, fn)
        return closed

    def lease(self, arn: str) -> Lease | None:
        """Return the lease of the execution's open invocation, from its own records."""
        try:
            entries = self.store.due(arn=arn, kinds=[DueKind.LEASE])
        except NotFoundError:
            return None
        return next((Lease.of(d) for d in entries if d.key == DueKey.LEASE), None)

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
            if h.terminal or h.invocation_id != invocation_id or not tx.state.invoking:
                return NoCommit(False)
            lease = self.lease(arn)
            if lease is None or lease.invocation_id != invocation_id:
                return NoCommit(False)
            if lease.due_ms >= until_ms:
                return NoCommit(True)
            tx.set_due(DueKey.LEASE, DueKind.LEASE, until_ms, **lease.data())
            return tx.batch(), True

        try:
            renewed: bool = self._mutate(arn, fn)
        except NotFoundError:
            return False
        return renewed

    # ------------------------------------------------------------------ data plane

    def _check_token(self, tx: Mutation, token: str) -> None:
        h = tx.header
        parsed = self.ids.parse_token(token) if token else None
        if (
            parsed is None
            or h.terminal
            or tx.state.closing is not None
            or parsed.execution_id != h.execution_id
            or parsed.sequence != h.token_sequence
            or parsed.invocation_id != h.invocation_id
            or not tx.state.invoking
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
            last = tx.state.last_checkpoint
            if client_token and last and last.client_token == client_token \
                    and last.token_in == token:
                recs = self.store.operations(arn, last.op_ids)
                return NoCommit(
                    CheckpointResult(last.token_out, [public_op(r.data) for r in recs], None)
                )
            self._check_token(tx, token)
            check_shapes(updates)
            ids = {u.get("Id") for u in updates} | {u.get("ParentId") for u in updates}
            tx.load(i for i in ids if isinstance(i, str) and i)
            validate_batch(updates, {i: r.data for i, r in tx.loaded.items()})
            for u in updates:
                rules.apply_update(tx, u, self._start_chained)
            rules.fire_due_wakes(tx)
            h = tx.header
            new_seq = h.token_sequence + 1
            pausing = h.status == ExecutionStatus.PAUSING
            if pausing:
                # the next checkpoint after a pause request: applied, but no token back,
                # so the SDK ends the invocation (PENDING) and the execution is PAUSED
                rules.enter_paused(tx, interrupted=True)
            closing = tx.state.closing is not None or pausing
            first, rest = page(delta(tx), None, self.page_bytes)
            marker = f"d:{new_seq}:{h.handler_seen_seq}:{len(first)}" \
                if rest and not closing else None
            out_token = None if closing else self.ids.token(
                CheckpointToken(h.execution_id, new_seq, h.invocation_id or "")
            )
            tx.evolve(last_checkpoint=LastCheckpoint(
                client_token, token, out_token, tuple(r.op_id for r in first)
            ) if client_token and not pausing else None)
            result = CheckpointResult(out_token, [public_op(r.data) for r in first], marker)
            return tx.batch(token_sequence=new_seq, handler_seen_seq=tx.seq), result

        result: CheckpointResult = self._mutate(arn, fn)
        return result

    def get_state(
        self, arn: str, token: str, marker: str | None, max_items: int | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """GetDurableExecutionState: a page of the state (or of a paginated delta)."""
        h = self._require(arn)
        self._check_token(Mutation(self.store, h, self.now_ms(), self.ids), token)
        limit = max(1, min(int(max_items or _MAX_STATE_ITEMS), _MAX_STATE_ITEMS))
        return state_page(self.store, h, marker, limit, self.page_bytes)

    # ------------------------------------------------------------------ chained invoke

    def _start_chained(self, function_name: str) -> rules.ChainedTarget:
        """Resolve a chained-invoke target and name the child execution it will get."""
        target = rules.target_name(function_name)
        kind = self.resolve_function(target) if target else None
        version = self.resolve_version(function_name) if kind else LATEST
        if version is None:
            kind, version = None, LATEST  # an alias nobody here knows: not found
        child_id = str(uuid.uuid4())
        child_arn = self.execution_arn(target or "unknown", child_id, child_id, version)
        return rules.ChainedTarget(target, kind, child_id, child_id, child_arn, version)

    def complete_chained(
        self, arn: str, op_id: str, status: str, result: str | None, error: Mapping[str, Any] | None
    ) -> None:
        """Report a chained invoke's outcome (target terminal) to the calling execution."""

        def fn(tx: Mutation) -> Any:
            if not rules.complete_chained(tx, op_id, status, result, error):
                return NoCommit(None)
            return tx.batch(), None

        self._mutate(arn, fn)

    # ------------------------------------------------------------------ timers

    def fire(self, entry: DueEntry) -> None:
        """Fire a due timer (WAKE, CALLBACK_*, EXECUTION_TIMEOUT)."""

        def fn(tx: Mutation) -> Any:
            current = self.store.due(arn=tx.arn)
            if not any(d.key == entry.key and d.due_ms == entry.due_ms for d in current):
                return NoCommit(None)
            if tx.header.terminal:
                tx.clear_due(entry.key)
                return tx.batch(), None
            if not rules.fire_timer(tx, entry):
                return NoCommit(None)
            return tx.batch(), None

        self._mutate(entry.arn, fn)

    def clear_due(self, arn: str, key: str, *more: str) -> None:
        """Remove due entries (e.g. once a dispatch or notification was handled), in one commit."""
        wanted = {key, *more}

        def fn(tx: Mutation) -> Any:
            present = [d.key for d in self.store.due(arn=arn) if d.key in wanted]
            if not present:
                return NoCommit(None)
            for k in present:
                tx.clear_due(k)
            return tx.batch(), None

        self._mutate(arn, fn)

    def defer_due(self, arn: str, key: str, due_ms: int) -> None:
        """Move one due entry (kept as it is otherwise) to ``due_ms``."""

        def fn(tx: Mutation) -> Any:
            entry = next((d for d in self.store.due(arn=arn) if d.key == key), None)
            if entry is None:
                return NoCommit(None)
            tx.set_due(key, entry.kind, due_ms, **entry.data)
            return tx.batch(), None

        self._mutate(arn, fn)

    # ------------------------------------------------------------------ callbacks

    def _callback_target(self, callback_id: str) -> tuple[str, str]:
        decoded = self.ids.callback_target(callback_id)
        if decoded is None:
            # the service's answer for an id it never issued; nothing about why
            raise NotFoundError(f"unknown callback id {callback_id[:80]!r}")
        self._require(decoded[0])
        return decoded

    def _on_callback(self, callback_id: str, change: Callable[[Mutation, str], Any]) -> None:
        arn, op_id = self._callback_target(callback_id)

        def fn(tx: Mutation) -> Any:
            if tx.header.terminal:
                raise NotFoundError(
                    f"execution {tx.arn} is {tx.header.status}; callback {op_id!r} is closed"
                )
            rules.require_waiting_callback(tx, op_id)
            return change(tx, op_id)

        self._mutate(arn, fn)

    def callback_success(self, callback_id: str, result: bytes | str | None) -> None:
        """SendDurableExecutionCallbackSuccess (the result is kept verbatim)."""
        text = (result.decode() if isinstance(result, bytes) else result) or None

        def change(tx: Mutation, op_id: str) -> Any:
            rules.complete_callback(tx, op_id, "SUCCEEDED", text, None)
            return tx.batch(), None

        self._on_callback(callback_id, change)

    def callback_failure(self, callback_id: str, error: Mapping[str, Any] | None) -> None:
        """SendDurableExecutionCallbackFailure."""
        err = {k: v for k, v in (error or {}).items() if v is not None}

        def change(tx: Mutation, op_id: str) -> Any:
            rules.complete_callback(tx, op_id, "FAILED", None, err)
            return tx.batch(), None

        self._on_callback(callback_id, change)

    def callback_heartbeat(self, callback_id: str) -> None:
        """SendDurableExecutionCallbackHeartbeat: push the heartbeat deadline out."""

        def change(tx: Mutation, op_id: str) -> Any:
            return (tx.batch(), None) if rules.heartbeat_callback(tx, op_id) else NoCommit(None)

        self._on_callback(callback_id, change)

    # ------------------------------------------------------------------ control plane

    def stop(self, arn: str, error: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """StopDurableExecution: idempotent; the caller's error is recorded."""
        self._require(arn)
        err = dict(error) if error else {"ErrorMessage": "Execution stopped by user request"}

        def fn(tx: Mutation) -> Any:
            if tx.header.terminal:
                return NoCommit(None)
            tx.evolve(closing=None)
            rules.close_execution(tx, ExecutionStatus.STOPPED, None, err)
            return tx.batch(), None

        self._mutate(arn, fn)
        return {"StopTimestamp": views.ms_to_dt(self.store.header(arn).end_ms)}

    def attributes(self, arn: str) -> dict[str, str]:
        """Return the ``attributes`` given at start."""
        return dict(EngineState.from_dict(self._require(arn).state).attributes)

    def describe(self, arn: str) -> dict[str, Any]:
        """GetDurableExecution."""
        h = self._require(arn)
        return views.describe(h, self.function_arn(h.function_name), EngineState.from_dict(h.state))

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
        try:
            mark = int(marker) if marker else None
        except ValueError:
            raise InvalidParameterValueError("Invalid marker") from None

        def read(after: int, limit: int | None, reverse: bool) -> list[HistoryEvent]:
            return self.store.events(arn, after=after, limit=limit, reverse=reverse)

        return views.history_page(
            read, h.event_count, include_data=include_execution_data,
            limit=int(max_items) if max_items else None, marker=mark, reverse=reverse_order,
        )

    def list_executions(
        self,
        *,
        function_name: str | None = None,
        status: str | None = None,
        max_items: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """ListDurableExecutionsByFunction."""
        listing = self.store.list_executions(
            function_name=function_name, status=status, limit=max_items, marker=marker
        )
        out: dict[str, Any] = {
            "DurableExecutions": [
                views.listing_item(h, self.function_arn(h.function_name))
                for h in listing.headers
            ]
        }
        if listing.next_marker:
            out["NextMarker"] = listing.next_marker
        return out
