"""Runtime: the one driver of durable executions on a checkpoint store.

A :class:`Runtime` holds the handler table, runs invocations (in this process, in a
process per invocation, or through a handler object that forwards them elsewhere),
fires durable timers, dispatches chained invokes, calls plain functions and recovers the
invocations of runtimes that died. Everything that drives executions is a Runtime plus a
loop: ``durable-ext run`` calls :meth:`Runtime.run_until_idle`, a fleet
:class:`~durable_ext.fleet.Worker` adds a claim loop and a lease renewer, and the HTTP
service adds a driver thread. It is also a
:class:`~durable_ext.runtime.control.ControlPlane`: start, describe, history, list,
stop, callbacks.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import Any, Literal

from durable_ext.backends import open_store
from durable_ext.backends.store import TERMINAL_STATUSES, DueEntry, Store
from durable_ext.engine import DueKind, Engine, InvocationInput, Lease, ParentLink
from durable_ext.engine.tokens import peek_callback_id
from durable_ext.engine.trace import TRACE_ATTRIBUTE, TraceHeader, execution_trace, parse_header
from durable_ext.engine.validation import normalize_input, validate_name
from durable_ext.errors import (
    ConfigError,
    ExecutionAlreadyStartedError,
    HandlerLoadError,
    NotFoundError,
    StoreUnavailableError,
)
from durable_ext.events.outbox import Outbox
from durable_ext.events.sinks import EventSink
from durable_ext.runtime.clock import Clock, RealClock
from durable_ext.runtime.handlers import HandlerRef, load_handler, reference_of
from durable_ext.runtime.invoker import (
    FencedEngine,
    LambdaContextStub,
    Running,
    error_of,
    invoke_in_process,
    invoke_in_subprocess,
)
from durable_ext.runtime.marks import WorkerMarks
from durable_ext.runtime.versions import (
    LATEST,
    FunctionTable,
    is_version,
    split_qualifier,
    version_of,
)

__all__ = ["PlainOutcome", "Runtime", "RuntimeStats", "function_of"]

_STORE_RETRY_SECONDS = 0.05
_EVENTS_FIRST_MS = 30_000
"""How long a deletion waits before looking again whether its execution's events are out."""


def function_of(arn: str) -> str:
    """Return the function name inside an execution ARN."""
    parts = arn.split(":")
    return parts[6] if len(parts) > 6 else ""


@dataclass(frozen=True, slots=True)
class _Function:
    name: str
    handler: Any
    durable: bool
    ref: HandlerRef | None
    version: str = LATEST


@dataclass
class RuntimeStats:
    """What a runtime did; every count only grows."""

    invocations: int = 0
    timers: int = 0
    takeovers: int = 0
    renewals: int = 0
    lost_leases: int = 0
    fenced: int = 0
    released: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increment counter ``name`` (thread-safe)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


@dataclass(frozen=True, slots=True)
class PlainOutcome:
    """What a plain (non-durable) function returned, or the error it raised."""

    result: Any = None
    error: dict[str, Any] | None = None


def _records_events(sinks: Sequence[EventSink], asked: bool | None) -> bool:
    if asked is not None:
        return asked
    return bool(sinks) or os.environ.get("DURABLE_EXT_STATUS_EVENTS", "") in ("1", "true")


def _open_checkpoint_store(backend: str | Store | None) -> Store:
    """Open ``backend`` and make sure it is a checkpoint store the engine can drive."""
    url = backend if isinstance(backend, str) else None
    if backend is None:
        url = os.environ.get("DURABLE_EXT_BACKEND")
    if url and url.split("://", 1)[0].lower() == "lambda":
        raise ConfigError(
            f"backend {url!r}: lambda:// is the control plane of functions deployed on AWS "
            "Lambda, not a checkpoint store a Runtime can run handlers on; open it with "
            "durable_ext.runtime.open_control_plane(url), or run handlers on a store such "
            "as memory://, file://, redis:// or dynamodb://"
        )
    store = open_store(backend)
    if not isinstance(store, Store):
        raise ConfigError(
            f"backend {type(store).__name__} is not a checkpoint store (see "
            "durable_ext.backends.store.Store); a Runtime needs one such as memory://, "
            "file://, redis:// or dynamodb://"
        )
    return store


class Runtime:
    """Run ``@durable_execution`` handlers on a checkpoint store.

    Args:
        backend: A store URL (``memory://``, ``file://PATH``...), a Store, or None for
            ``$DURABLE_EXT_BACKEND`` or ``file://.durable``.
        clock: :class:`RealClock` (default) or :class:`VirtualClock` (waits are instant).
        isolation: ``"inline"`` runs invocations in this process; ``"process"`` runs each
            in a new process, so a crash ends only that invocation.
        invocation_timeout: Seconds an invocation may run (process isolation enforces it).
        max_invocation_failures: Consecutive failed invocations before the execution fails.
        invocation_retry_delay: Seconds before a failed invocation is retried.
        lease_seconds: How long an invocation's lease lasts before others may take it
            over (default: the invocation timeout plus a minute; a fleet worker renews
            shorter ones while the invocation runs).
        wall_clock: The clock leases are stamped and judged on (default: real time,
            whatever ``clock`` is, so a runtime that died is noticed under a virtual clock).
        name: A name for this runtime in leases and logs; its owner id in leases is
            ``NAME#INSTANCE`` (or the instance id alone), unique per process.
        host: The host name recorded in leases (for people only).
        region: Region used in ARNs.
        account: Account id used in ARNs.
        event_sinks: Where status-change events go (:mod:`durable_ext.events`): this
            runtime delivers the outbox of the executions of its functions.
        status_events: Record status changes in the store's outbox (default: when
            ``event_sinks`` are given or ``$DURABLE_EXT_STATUS_EVENTS`` is ``1``). A
            process that changes executions without delivering (the CLI pausing one, an
            HTTP API) needs it so its changes are delivered by another: set the variable
            for every process sharing the store.

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
        lease_seconds: float | None = None,
        wall_clock: Clock | None = None,
        name: str | None = None,
        host: str | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        event_sinks: Sequence[EventSink] = (),
        status_events: bool | None = None,
    ) -> None:
        if isolation not in ("inline", "process"):
            raise ConfigError(f"isolation must be 'inline' or 'process', got {isolation!r}")
        self._owns_store = isinstance(backend, str) or backend is None
        self.store: Store = _open_checkpoint_store(backend)
        self.clock: Any = clock or RealClock()
        self.wall_clock: Clock = wall_clock or RealClock()
        self.isolation = isolation
        self.invocation_timeout = invocation_timeout
        self.instance_id = uuid.uuid4().hex
        self.name = name or self.instance_id
        self.owner = f"{name}#{self.instance_id}" if name else self.instance_id
        self.host = host or socket.gethostname()
        self.pid = os.getpid()
        self.marks = WorkerMarks()
        self.stats = RuntimeStats()
        self.last_store_error: StoreUnavailableError | None = None
        self._functions: dict[str, _Function] = {}
        self._versions: FunctionTable[_Function] = FunctionTable()
        self._running: dict[str, Running] = {}
        self._invoking: dict[str, int] = {}
        self._running_lock = threading.Lock()
        self.engine = Engine(
            self.store,
            now_ms=self.clock.now_ms,
            wall_ms=self.wall_clock.now_ms,
            resolve_function=self._resolve,
            resolve_version=self.resolve_version,
            region=region,
            account=account,
            max_invocation_failures=max_invocation_failures,
            invocation_retry_ms=int(invocation_retry_delay * 1000),
            lease_ms=int((lease_seconds or invocation_timeout + 60) * 1000),
            status_events=_records_events(event_sinks, status_events),
        )
        self.outbox = Outbox(self.engine, event_sinks) if event_sinks else None

    # ------------------------------------------------------------------ handlers

    def register(
        self, function_name: str, handler: Any, *, durable: bool = True,
        ref: HandlerRef | None = None,
    ) -> None:
        """Serve ``handler`` (an object, or a target ``"module:attr"``) as ``function_name``.

        ``function_name`` may name a version: ``orders:2`` (plain ``orders`` is
        ``orders:$LATEST``; see :mod:`durable_ext.runtime.versions`). ``ref`` says where
        other processes can load it (found from the object when not given). Registering
        the same handler again is a no-op; another handler under a taken name and
        version is an error.
        """
        function_name, qualifier = split_qualifier(function_name)
        version = qualifier or LATEST
        validate_name("function name", function_name)
        if isinstance(handler, str):
            ref, handler = load_handler(handler)
        ref = ref or reference_of(handler)
        if self.isolation == "process" and durable and ref is None:
            raise ConfigError(
                f"handler {handler!r} of {function_name!r} is not importable by reference; "
                "register it as 'module:attr' to run it with isolation='process'"
            )
        if not is_version(version):
            raise ConfigError(
                f"{function_name}:{version}: register a version ($LATEST or a number) and "
                "point an alias at it with alias()"
            )
        known = self._versions.get(function_name, version)
        if known is not None:
            if known.handler is handler or (known.ref is not None and known.ref == ref):
                return
            shown = function_name if version == LATEST else f"{function_name}:{version}"
            raise ConfigError(
                f"function name {shown!r} is taken by {known.ref or known.handler!r}; "
                f"name {ref or handler!r} otherwise (NAME=MODULE:HANDLER)"
            )
        fn = _Function(function_name, handler, durable, ref, version)
        self._versions.add(function_name, version, fn)
        self._functions.setdefault(function_name, fn)

    def alias(self, function_name: str, alias: str, version: str) -> None:
        """Point ``function_name:alias`` at ``version`` (e.g. ``alias("orders", "live", "2")``).

        Executions started on the alias from here run that version from then on; moving
        the alias later changes only executions started afterwards.
        """
        self._versions.alias(function_name, alias, version)

    def versions(self, function_name: str) -> list[str]:
        """Return the versions of ``function_name`` this runtime serves."""
        return self._versions.versions(function_name)

    def resolve_version(self, function_name: str) -> str | None:
        """Return the version ``fn[:qualifier]`` means here (None: an unknown alias)."""
        name, qualifier = split_qualifier(function_name)
        return self._versions.resolve(name, qualifier)

    def functions(self) -> list[str]:
        """Names of the registered functions, in registration order."""
        return list(self._functions)

    def is_plain(self, function_name: str) -> bool:
        """Whether ``function_name`` is registered as a plain (non-durable) function."""
        fn = self._functions.get(function_name)
        return fn is not None and not fn.durable

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

    def ensure_handler(self, arn: str) -> None:
        """Register the handler an execution recorded, for running it (or a re-run) here.

        Raises:
            HandlerLoadError: it recorded none, or that one cannot be imported.

        """
        name, version = function_of(arn), version_of(arn)
        if self._versions.get(name, version) is not None:
            return
        ref = HandlerRef.from_attributes(self.engine.attributes(arn))
        if ref is None:
            raise HandlerLoadError(
                f"execution {arn} records no handler reference (its handler was not "
                "importable when it started); register function "
                f"{name!r} to run it on"
            )
        try:
            handler = ref.load()
        except HandlerLoadError as exc:
            raise HandlerLoadError(f"cannot run execution {arn} on: {exc}") from None
        self.register(name if version == LATEST else f"{name}:{version}", handler, ref=ref)

    # ------------------------------------------------------------------ control plane

    def start(
        self,
        function_name: str,
        input: Any = None,
        name: str | None = None,
        execution_timeout: int | None = None,
        trace: str | None = None,
    ) -> str:
        """Start an execution (idempotent by ``name``); returns its ARN.

        ``function_name`` may carry a qualifier (``orders:2``, ``orders:live``); the
        version it resolves to is recorded in the ARN and runs every invocation.
        ``trace`` is the caller's X-Ray header (``X-Amzn-Trace-Id``): the execution
        continues that trace instead of starting its own.
        """
        base, qualifier = split_qualifier(function_name)
        fn = self._function(base)
        if not fn.durable:
            raise ConfigError(f"function {function_name!r} is not durable; it can only be invoked")
        version = self._versions.resolve(base, qualifier)
        if version is None:
            raise ConfigError(f"function {base!r} has no version or alias {qualifier!r} here; "
                              f"versions: {self._versions.versions(base)}")
        served = self._versions.get(base, version)
        arn, _created = self.engine.start(
            base,
            normalize_input(input),
            name=name,
            execution_timeout=execution_timeout,
            attributes=self._attributes(served.ref if served else None, trace),
            version=version,
        )
        return arn

    @staticmethod
    def _attributes(ref: HandlerRef | None, trace: str | None) -> dict[str, str] | None:
        attrs = ref.attributes() if ref else {}
        if parse_header(trace) is not None:
            attrs = {**attrs, TRACE_ATTRIBUTE: str(trace)}
        return attrs or None

    def _caller_trace(self, entry: DueEntry) -> str:
        """Return the header a chained invoke hands its child: the caller's own, else its Root."""
        given = entry.data.get("trace")
        if isinstance(given, str) and parse_header(given) is not None:
            return given
        header = self.store.header(entry.arn)
        own = execution_trace(entry.arn, header.start_ms, self.engine.attributes(entry.arn))
        return TraceHeader(own.root, None, own.sampled).render()

    def run(
        self, function_name: str, input: Any = None, name: str | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        """Start, run until idle, and describe."""
        arn = self.start(function_name, input, name)
        self.run_until_idle(timeout)
        return self.describe(arn)

    def settle(self, arn: str, timeout: float = 60) -> dict[str, Any]:
        """Run the execution on until it waits for outside input or ends; describe it.

        Its handler is loaded from the reference it recorded when it is not registered
        here (:class:`~durable_ext.errors.HandlerLoadError` says why when it cannot be).
        """
        if self.describe(arn)["Status"] not in TERMINAL_STATUSES:
            self.ensure_handler(arn)
            self.run_until_idle(timeout)
        return self.describe(arn)

    def execution_of_callback(self, callback_id: str) -> str | None:
        """Return the execution a callback id names (None when it is not one of ours)."""
        target = peek_callback_id(callback_id)
        return target[0] if target else None

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
            arn, include_execution_data=include_execution_data, max_items=max_items,
            marker=marker, reverse_order=reverse_order,
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

    def pause(
        self,
        arn: str,
        reason: str | None = None,
        client_token: str | None = None,
        execution_timeout_paused: bool = True,
    ) -> None:
        """PauseDurableExecution (see :meth:`Engine.pause <durable_ext.engine.Engine.pause>`)."""
        self.engine.pause(arn, reason=reason, client_token=client_token,
                          execution_timeout_paused=execution_timeout_paused)

    def resume(
        self, arn: str, reason: str | None = None, client_token: str | None = None
    ) -> None:
        """ResumeDurableExecution."""
        self.engine.resume(arn, reason=reason, client_token=client_token)

    def delete(self, arn: str) -> dict[str, Any]:
        """DeleteDurableExecution: only of an ended execution; its records go with it.

        While status events are recorded the deletion is finished by a runtime's loop
        once the execution's events (DELETING included) are delivered.
        """
        return self.engine.delete(arn, finish=self.engine.stamp is None)

    def deliver_events(self) -> int:
        """Deliver the outbox of this runtime's functions; how many events went out."""
        if self.outbox is None:
            return 0
        return self.outbox.deliver(accept=self.mine)

    def _finish_deletion(self, entry: DueEntry) -> None:
        if self.outbox is not None:
            self.outbox.deliver(arn=entry.arn)
        pending = self.store.due(arn=entry.arn, kinds=[DueKind.EMIT])
        if pending and (self.outbox is not None or self.engine.stamp is not None):
            # the events go first (here, or by a process that delivers them)
            self.engine.defer_due(entry.arn, entry.key, self.clock.now_ms() + _EVENTS_FIRST_MS)
            return
        self.engine.finish_deletion(entry.arn)

    # ------------------------------------------------------------------ driving

    def mine(self, entry: DueEntry) -> bool:
        """Whether ``entry`` belongs to a function registered here."""
        # the version too: an execution runs only the code it started on
        return self._versions.get(function_of(entry.arn), version_of(entry.arn)) is not None

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
        kinds = DueKind.PROGRESS if limit is None else DueKind.ACTIVE
        recover = True
        while time.monotonic() < deadline:
            try:
                if recover:
                    self.recover_leases()
                    recover = False
                if self._run_due(deadline):
                    continue
                upcoming = [e for e in self.store.due(limit, kinds=kinds) if self.mine(e)]
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
        """Handle every entry due now (and deliver events); False when there was none."""
        self.deliver_events()
        entries = [e for e in self.store.due(self.clock.now_ms(), kinds=DueKind.ACTIVE)
                   if self.mine(e)]
        for entry in entries:
            self.handle(entry)
            if time.monotonic() >= deadline:
                break
        return bool(entries)

    def handle(self, entry: DueEntry) -> None:
        """Handle one due entry of a registered function: the step every driver repeats.

        An ``invoke`` entry runs an invocation (when none is running), a dispatch starts
        or calls a chained-invoke target, a notification reports a finished child to its
        caller, and every other timer fires in one commit. Several runtimes may handle the
        same entry at once: commits are compare-and-set, so it takes effect once.
        """
        if entry.kind == DueKind.INVOKE:
            self._invoke(entry.arn)
            return
        if entry.kind == DueKind.DISPATCH:
            self._dispatch(entry)
        elif entry.kind == DueKind.NOTIFY:
            self._notify(entry)
        elif entry.kind == DueKind.DELETE:
            self._finish_deletion(entry)
        else:
            self.engine.fire(entry)
        self.stats.add("timers")

    def running(self) -> list[Running]:
        """Return the invocations this runtime runs now."""
        with self._running_lock:
            return list(self._running.values())

    def _context(self, request_id: str, function_name: str) -> LambdaContextStub:
        return LambdaContextStub(
            aws_request_id=request_id,
            function_name=function_name,
            invoked_function_arn=self.engine.function_arn(function_name),
            deadline_ms=int(time.time() * 1000) + int(self.invocation_timeout * 1000),
        )

    def _invoke(self, arn: str) -> None:
        fn = self._versions.get(function_of(arn), version_of(arn))
        assert fn is not None, f"no handler for {arn}"  # mine() said so
        self.marks.hold(self.owner)
        with self._running_lock:
            self._invoking[arn] = self._invoking.get(arn, 0) + 1
        try:
            inv = self.engine.begin_invocation(
                arn, owner=self.owner, pid=self.pid, host=self.host
            )
            if inv is not None:
                self._run_invocation(fn, arn, inv)
        finally:
            with self._running_lock:
                self._invoking[arn] -= 1
                if not self._invoking[arn]:
                    del self._invoking[arn]

    def _run_invocation(self, fn: _Function, arn: str, inv: InvocationInput) -> None:
        running = Running(arn, inv.invocation_id)
        with self._running_lock:
            self._running[inv.invocation_id] = running
        try:
            output, error = self._call(fn, inv, running)
            if running.lost.is_set():
                self.stats.add("lost_leases")
                return  # taken over: the new owner decides; finishing here would be refused
            self.engine.finish_invocation(arn, inv.invocation_id, output, error)
            self.stats.add("invocations")
        finally:
            with self._running_lock:
                self._running.pop(inv.invocation_id, None)

    def _call(self, fn: _Function, inv: InvocationInput, running: Running) -> tuple[Any, Any]:
        view: Any = FencedEngine(self.engine, running, self.stats.add)
        ctx = self._context(inv.request_id, fn.name)
        if self.isolation == "process" and fn.ref is not None:
            return invoke_in_subprocess(fn.ref, inv, view, ctx, self.invocation_timeout)
        return invoke_in_process(fn.handler, inv, view, ctx)

    def call_plain(self, function_name: str, event: Any) -> PlainOutcome:
        """Call a plain (non-durable) function once with ``event``."""
        fn = self._function(function_name)
        try:
            result = fn.handler(event, self._context(str(uuid.uuid4()), function_name))
        except Exception as exc:
            err = error_of(exc)
            err.pop("StackTrace", None)
            return PlainOutcome(error=err)
        return PlainOutcome(result=result)

    def _dispatch(self, entry: DueEntry) -> None:
        d = entry.data
        target = self._functions.get(str(d.get("function")))
        if target is None:
            self.engine.complete_chained(entry.arn, d["op"], "FAILED", None, {
                "ErrorType": "ResourceNotFoundException",
                "ErrorMessage": f"Function not found: {d.get('function')}",
            })
        elif target.durable:
            # the version the caller's checkpoint resolved (and recorded in the child's ARN)
            version = str(d.get("version") or LATEST)
            served = self._versions.get(target.name, version)
            # Idempotent by name: a dispatch repeated after a crash finds its child.
            with contextlib.suppress(ExecutionAlreadyStartedError):
                self.engine.start(
                    target.name,
                    normalize_input(d.get("payload")),
                    name=d["child_name"],
                    execution_id=d["child_id"],
                    parent=ParentLink(entry.arn, d["op"]),
                    attributes=self._attributes(served.ref if served else None,
                                                self._caller_trace(entry)),
                    version=version,
                )
        else:
            payload = d.get("payload")
            try:
                out = self.call_plain(target.name, json.loads(payload) if payload else {})
            except ValueError as exc:  # the caller's payload is not JSON
                out = PlainOutcome(error={k: v for k, v in error_of(exc).items()
                                          if k != "StackTrace"})
            if out.error is None:
                self.engine.complete_chained(entry.arn, d["op"], "SUCCEEDED",
                                             json.dumps(out.result), None)
            else:
                self.engine.complete_chained(entry.arn, d["op"], "FAILED", None, out.error)
        self.engine.clear_due(entry.arn, entry.key)

    def _notify(self, entry: DueEntry) -> None:
        try:
            child = self.store.header(entry.arn)
        except NotFoundError:
            return  # deleted meanwhile (a deletion delivers the outcome first)
        parent_arn = str(entry.data.get("arn"))
        with contextlib.suppress(NotFoundError):  # the caller's execution is gone
            self.engine.complete_chained(
                parent_arn, str(entry.data.get("op")), child.status, child.result, child.error
            )
        self.engine.clear_due(entry.arn, entry.key)

    def recover_leases(self, margin_ms: int = 0) -> int:
        """Take over the invocations of runtimes that are gone; how many were taken.

        An invocation's lease is taken over when it is this runtime's own but nothing
        here runs it (a previous life of this process), when it expired more than
        ``margin_ms`` ago (the tolerated clock skew between hosts), or when its owner is
        proven gone on this host (its mark is unlocked). Host names and pids prove
        nothing. Only the lease judged here is taken: the index may lag (DynamoDB's
        does) and its owner may renew it meanwhile; the engine checks both in the commit.
        """
        wall = self.wall_clock.now_ms()
        with self._running_lock:
            mine = set(self._running)
        taken = 0
        for entry in self.store.due(None, kinds=[DueKind.LEASE]):
            if not self.mine(entry):
                continue
            lease = Lease.of(entry)
            if lease.invocation_id in mine or not self._gone(lease, wall, margin_ms):
                continue
            if self.engine.abandon_invocation(
                lease.arn,
                lease.invocation_id,
                f"Runtime {lease.owner} on {lease.host} lost its lease; invocation taken over",
                lease_due_ms=lease.due_ms,
            ):
                taken += 1
                self.stats.add("takeovers")
        return taken

    def _gone(self, lease: Lease, wall_ms: int, margin_ms: int) -> bool:
        if lease.owner == self.owner:
            # Ours and not running: left by an invocation that ended abnormally, unless
            # it is being opened right now (its lease is written before it is running).
            with self._running_lock:
                return lease.arn not in self._invoking
        return lease.expired(wall_ms, margin_ms) or (
            lease.host == self.host and self.marks.ended(lease.owner)
        )

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Release this runtime's mark, and close the store if this runtime opened it."""
        self.marks.release(self.owner)
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
