"""Runtime: drives registered handlers on a store with the service's semantics."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from durable_ext.backends import open_store
from durable_ext.backends.store import DueEntry, Store
from durable_ext.engine import DueKind, Engine, ParentLink, normalize_input
from durable_ext.errors import (
    ConfigError,
    ExecutionAlreadyStartedError,
    NotFoundError,
    StoreUnavailableError,
)
from durable_ext.runtime.clock import Clock, RealClock
from durable_ext.runtime.invoker import (
    LambdaContextStub,
    error_of,
    handler_path,
    handler_reference,
    invoke_in_process,
    invoke_in_subprocess,
    pid_alive,
)

__all__ = ["ExecutionAlreadyStartedError", "Runtime"]

#: Due entries a runtime or a fleet worker acts on (leases are only watched).
ACTIVE_KINDS = DueKind.ACTIVE
# Timers the runtime waits for (or jumps a VirtualClock to) when idle. Callback deadlines
# and the execution deadline are not among them: they bound waiting for outside input, so
# they fire when time reaches them, not as a way to become idle sooner.
_PROGRESS = DueKind.PROGRESS
_STORE_RETRY_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class _Function:
    name: str
    handler: Any
    durable: bool


def _open_checkpoint_store(backend: str | Store | None) -> Store:
    """Open ``backend`` and make sure it is a checkpoint store the engine can drive."""
    url = backend if isinstance(backend, str) else None
    if backend is None:
        url = os.environ.get("DURABLE_EXT_BACKEND")
    if url and url.split("://", 1)[0].lower() == "lambda":
        raise ConfigError(
            f"backend {url!r}: lambda:// is a control plane for functions deployed on AWS "
            "Lambda (durable_ext.backends.lambda_api.LambdaBackend), not a checkpoint store "
            "a Runtime can run handlers on; use LambdaBackend(url) to start and inspect "
            "those executions, or a store such as memory://, file://, redis:// or dynamodb://"
        )
    store = open_store(backend)
    if not hasattr(store, "commit"):
        raise ConfigError(
            f"backend {type(store).__name__} is not a checkpoint store (it has no commit); "
            "a Runtime needs a Store such as memory://, file://, redis:// or dynamodb://"
        )
    return store


def _declared_path(handler: Any) -> str | None:
    """Return the import path a handler wrapper declares (``.path``), e.g. for a worker."""
    path = getattr(handler, "path", None)
    return path if isinstance(path, str) and ":" in path else None


def function_of(arn: str) -> str:
    """Return the function name inside an execution ARN."""
    parts = arn.split(":")
    return parts[6] if len(parts) > 6 else ""


class Runtime:
    """Run ``@durable_execution`` handlers locally on a checkpoint store.

    Args:
        backend: A store URL (``memory://``, ``file://PATH``...), a Store, or None for
            ``$DURABLE_EXT_BACKEND`` or ``file://.durable``.
        clock: :class:`RealClock` (default) or :class:`VirtualClock` (waits are instant).
        isolation: ``"inline"`` runs invocations in this process; ``"process"`` runs each
            in a new process, so a crash ends only that invocation.
        invocation_timeout: Seconds an invocation may run (process isolation enforces it).
        max_invocation_failures: Consecutive failed invocations before the execution fails.
        invocation_retry_delay: Seconds before a failed invocation is retried.
        region: Region used in ARNs.
        account: Account id used in ARNs.

    Example:
        >>> rt = Runtime(backend="memory://", clock=VirtualClock())
        >>> rt.close()

    """

    def __init__(
        self,
        backend: str | Store | None = None,
        *,
        clock: Clock | None = None,
        isolation: Literal["inline", "process"] = "inline",
        invocation_timeout: float = 900.0,
        max_invocation_failures: int = 5,
        invocation_retry_delay: float = 0.0,
        region: str = "us-east-1",
        account: str = "123456789012",
    ) -> None:
        if isolation not in ("inline", "process"):
            raise ConfigError(f"isolation must be 'inline' or 'process', got {isolation!r}")
        self._owns_store = not hasattr(backend, "commit")
        self.store: Store = _open_checkpoint_store(backend)
        self.clock: Any = clock or RealClock()
        self.isolation = isolation
        self.invocation_timeout = invocation_timeout
        self.id = str(uuid.uuid4())
        self._host = socket.gethostname()
        self._functions: dict[str, _Function] = {}
        self._inflight: set[str] = set()
        self.last_store_error: StoreUnavailableError | None = None
        self.engine = Engine(
            self.store,
            now_ms=self.clock.now_ms,
            resolve_function=self._resolve,
            region=region,
            account=account,
            max_invocation_failures=max_invocation_failures,
            invocation_retry_ms=int(invocation_retry_delay * 1000),
            lease_ms=int(invocation_timeout * 1000) + 60_000,
        )

    # ------------------------------------------------------------------ registry

    def register(self, function_name: str, handler: Any, *, durable: bool = True) -> None:
        """Register a handler (an object, or ``"module:attr"``) under ``function_name``."""
        from durable_ext.engine import validate_name

        validate_name("function name", function_name)
        if self.isolation == "process" and durable:
            handler = handler_path(handler)
        elif isinstance(handler, str):
            from durable_ext.runtime.invoker import load_handler

            handler = load_handler(handler)
        self._functions[function_name] = _Function(function_name, handler, durable)

    def _resolve(self, name: str) -> str | None:
        fn = self._functions.get(name)
        if fn is None:
            return None
        return "durable" if fn.durable else "plain"

    def _function(self, name: str) -> _Function:
        try:
            return self._functions[name]
        except KeyError:
            raise ConfigError(
                f"function {name!r} is not registered; known: {sorted(self._functions)}"
            ) from None

    # ------------------------------------------------------------------ control plane

    def start(
        self,
        function_name: str,
        input: Any = None,
        name: str | None = None,
        execution_timeout: int | None = None,
    ) -> str:
        """Start an execution (idempotent by ``name``); returns its ARN."""
        fn = self._function(function_name)
        if not fn.durable:
            raise ConfigError(f"function {function_name!r} is not durable; it can only be invoked")
        ref = handler_reference(fn.handler) or _declared_path(fn.handler)
        attrs = {"handler": ref} if ref else {}
        arn, _created = self.engine.start(
            function_name,
            normalize_input(input),
            name=name,
            execution_timeout=execution_timeout,
            attributes=attrs,
        )
        return arn

    def run(
        self, function_name: str, input: Any = None, name: str | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        """Start, run until idle, and describe."""
        arn = self.start(function_name, input, name)
        self.run_until_idle(timeout)
        return self.describe(arn)

    def describe(self, arn: str) -> dict[str, Any]:
        """GetDurableExecution."""
        return self.engine.describe(arn)

    def history(
        self,
        arn: str,
        include_execution_data: bool = True,
        max_items: int | None = None,
        marker: str | None = None,
        reverse_order: bool = False,
    ) -> dict[str, Any]:
        """GetDurableExecutionHistory."""
        return self.engine.history(
            arn,
            include_execution_data=include_execution_data,
            max_items=max_items,
            marker=marker,
            reverse_order=reverse_order,
        )

    def list_executions(
        self,
        function_name: str | None = None,
        status: str | None = None,
        max_items: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """ListDurableExecutionsByFunction."""
        return self.engine.list_executions(
            function_name=function_name, status=status, max_items=max_items, marker=marker
        )

    def send_callback_success(self, callback_id: str, result: bytes | str | None = None) -> None:
        """SendDurableExecutionCallbackSuccess."""
        self.engine.callback_success(callback_id, result)

    def send_callback_failure(
        self, callback_id: str, error: Mapping[str, Any] | None = None
    ) -> None:
        """SendDurableExecutionCallbackFailure."""
        self.engine.callback_failure(callback_id, error)

    def send_callback_heartbeat(self, callback_id: str) -> None:
        """SendDurableExecutionCallbackHeartbeat."""
        self.engine.callback_heartbeat(callback_id)

    def stop(self, arn: str, error: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """StopDurableExecution."""
        return self.engine.stop(arn, error)

    # ------------------------------------------------------------------ driving

    def _mine(self, entry: DueEntry) -> bool:
        return function_of(entry.arn) in self._functions

    def run_until_idle(self, timeout: float = 60, *, max_advance: float | None = None) -> None:
        """Run invocations and timers until nothing can progress without outside input.

        With a :class:`VirtualClock` the clock jumps to the next due wait or retry; with
        the real clock the runtime sleeps until it (at most ``timeout`` real seconds in
        all). Callback timeouts, heartbeat timeouts and execution timeouts fire whenever
        the clock has reached them, but an unbounded call does not wait for them: they
        only bound how long outside input may take.

        Args:
            timeout: Real seconds this call may take.
            max_advance: Let time move by exactly this many seconds: every timer due in
                that window fires in order (callback and execution deadlines included),
                and the clock ends ``max_advance`` seconds after its value at the call.
                ``0`` runs only what is due now.

        """
        deadline = time.monotonic() + timeout
        limit = None
        if max_advance is not None:
            limit = self.clock.now_ms() + int(max_advance * 1000)
        kinds = _PROGRESS if limit is None else ACTIVE_KINDS
        recover = True
        while time.monotonic() < deadline:
            try:
                if recover:
                    self._recover_leases()
                    recover = False
                if self._run_due(deadline):
                    continue
                upcoming = [e for e in self.store.due(limit, kinds=kinds) if self._mine(e)]
            except StoreUnavailableError as exc:
                # A transient store outage: what was committed stays, a lost invocation
                # is recovered through its lease once the store answers again.
                self.last_store_error = exc
                time.sleep(min(_STORE_RETRY_SECONDS, max(0.0, deadline - time.monotonic())))
                recover = True
                continue
            remaining = max(0.0, deadline - time.monotonic())
            if upcoming:
                self.clock.sleep_until(upcoming[0].due_ms, remaining)
                continue
            if limit is not None and self.clock.now_ms() < limit:
                self.clock.sleep_until(limit, remaining)
                continue
            return

    def _run_due(self, deadline: float) -> bool:
        """Handle every entry due now; False when there was none."""
        due = self.store.due(self.clock.now_ms(), kinds=ACTIVE_KINDS)
        entries = [e for e in due if self._mine(e)]
        for entry in entries:
            self.handle(entry)
            if time.monotonic() >= deadline:
                break
        return bool(entries)

    def handle(self, entry: DueEntry) -> None:
        """Handle one due entry of a registered function: the per-entry step of a runner.

        An ``invoke`` entry runs an invocation (when none is running), a dispatch starts
        or calls a chained-invoke target, a notification reports a finished child to its
        caller, and every other timer fires in one commit. Several runtimes may handle the
        same entry at once: commits are compare-and-set, so it takes effect once.
        """
        if entry.kind == DueKind.INVOKE:
            self._invoke(entry.arn)
        elif entry.kind == DueKind.DISPATCH:
            self._dispatch(entry)
        elif entry.kind == DueKind.NOTIFY:
            self._notify(entry)
        else:
            self.engine.fire(entry)

    def _context(self, request_id: str, function_name: str) -> LambdaContextStub:
        return LambdaContextStub(
            aws_request_id=request_id,
            function_name=function_name,
            invoked_function_arn=self.engine.function_arn(function_name),
            deadline_ms=int(time.time() * 1000) + int(self.invocation_timeout * 1000),
        )

    def _invoke(self, arn: str) -> None:
        fn = self._functions[function_of(arn)]
        inv = self.engine.begin_invocation(arn, owner=self.id, pid=os.getpid(), host=self._host)
        if inv is None:
            return
        self._inflight.add(inv.invocation_id)
        try:
            ctx = self._context(inv.request_id, fn.name)
            if self.isolation == "process":
                output, error = invoke_in_subprocess(
                    handler_path(fn.handler), inv, self.engine, ctx, self.invocation_timeout
                )
            else:
                output, error = invoke_in_process(fn.handler, inv, self.engine, ctx)
            self.engine.finish_invocation(arn, inv.invocation_id, output, error)
        finally:
            self._inflight.discard(inv.invocation_id)

    def _dispatch(self, entry: DueEntry) -> None:
        d = entry.data
        target = self._functions.get(str(d.get("function")))
        if target is None:
            self.engine.complete_chained(
                entry.arn,
                d["op"],
                "FAILED",
                None,
                {
                    "ErrorType": "ResourceNotFoundException",
                    "ErrorMessage": f"Function not found: {d.get('function')}",
                },
            )
            self.engine.clear_due(entry.arn, entry.key)
            return
        if target.durable:
            # Idempotent by name: a dispatch repeated after a crash finds its child.
            with contextlib.suppress(ExecutionAlreadyStartedError):
                self.engine.start(
                    target.name,
                    normalize_input(d.get("payload")),
                    name=d["child_name"],
                    execution_id=d["child_id"],
                    parent=ParentLink(entry.arn, d["op"]),
                )
            self.engine.clear_due(entry.arn, entry.key)
            return
        payload = d.get("payload")
        try:
            event = json.loads(payload) if payload else {}
            handler: Callable[..., Any] = target.handler
            result = handler(event, self._context(str(uuid.uuid4()), target.name))
            self.engine.complete_chained(entry.arn, d["op"], "SUCCEEDED", json.dumps(result), None)
        except Exception as exc:
            err = error_of(exc)
            err.pop("StackTrace", None)
            self.engine.complete_chained(entry.arn, d["op"], "FAILED", None, err)
        self.engine.clear_due(entry.arn, entry.key)

    def _notify(self, entry: DueEntry) -> None:
        child = self.store.header(entry.arn)
        parent_arn = str(entry.data.get("arn"))
        with contextlib.suppress(NotFoundError):  # the caller's execution is gone
            self.engine.complete_chained(
                parent_arn, str(entry.data.get("op")), child.status, child.result, child.error
            )
        self.engine.clear_due(entry.arn, entry.key)

    def _recover_leases(self) -> None:
        """Re-invoke executions whose invocation was lost with a crashed runtime."""
        wall = int(time.time() * 1000)
        for entry in self.store.due(None, kinds=[DueKind.LEASE]):
            if not self._mine(entry):
                continue
            d = entry.data
            inv = str(d.get("invocation"))
            if inv in self._inflight:
                continue
            same_host = d.get("host") == self._host
            dead = (
                d.get("owner") == self.id
                or entry.due_ms <= wall
                or (
                    same_host
                    and d.get("pid") != os.getpid()
                    and not pid_alive(int(d.get("pid", 0)))
                )
            )
            if dead:
                self.engine.abandon_invocation(
                    entry.arn, inv, "Runtime exited without completing the invocation"
                )

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the store if this runtime opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
