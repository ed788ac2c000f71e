"""pytest plugin of durable_ext (registered through the ``pytest11`` entry point).

Installing durable_ext gives every test suite a ``durable_runtime`` fixture: the local
runtime on an in-memory (or file) store with a virtual clock, so a durable handler is
tested in three lines::

    def test_order(durable_runtime):
        run = durable_runtime.run(order_handler, {"order": 7})   # waits take no time
        run.succeed_callback("approval", {"ok": True})           # resumes and runs on
        assert run.result == {"order": 7, "approved": True}
        assert run.operation("charge").value == 7

Choose the store and clock per test with a marker, or for the whole run with options::

    @pytest.mark.durable(backend="file", clock="real")
    def test_on_disk(durable_runtime): ...

    pytest --durable-backend=file

Fixtures: ``durable_runtime`` (a :class:`DurableTestRuntime`), ``durable_clock`` (its
clock), ``durable_backend`` (the store URL in use).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from durable_ext.runtime import Runtime

__all__ = ["DurableTestRuntime", "ExecutionRun", "OperationView", "Responders"]

_BACKENDS = ("memory", "file")
_CLOCKS = ("virtual", "real")
_MARKER = "durable"
_EVENT = re.compile(r"^(Execution|Step|Wait|Callback|ChainedInvoke|Context)([A-Z][A-Za-z]*)$")
_STATUS = {
    "Started": "STARTED", "Succeeded": "SUCCEEDED", "Failed": "FAILED", "TimedOut": "TIMED_OUT",
    "Stopped": "STOPPED", "Cancelled": "CANCELLED",
}


# -- the view of one operation ----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationView:
    """One operation of an execution, as its history tells it (latest event wins)."""

    id: str
    name: str | None
    type: str
    sub_type: str | None
    parent_id: str | None
    status: str
    result: str | None = None
    error: Mapping[str, Any] | None = None
    attempt: int | None = None
    callback_id: str | None = None
    execution_arn: str = field(default="", repr=False)
    serdes: Any = field(default=None, repr=False, compare=False)
    #: the fallback for operations whose own serdes was not seen (see ``value``)
    decoder: Any = field(default=None, repr=False, compare=False)

    @property
    def value(self) -> Any:
        """The result decoded as the handler reads it back.

        With the serdes (and so the types) the operation was configured with, when it
        ran in this test; else with the handler's ``default_serdes``, else with the
        ``types=``/``serdes=`` the runtime was given (:meth:`DurableTestRuntime.decode_with`
        or the marker), else as the SDK's default reads it (any durable_ext pipeline's
        frames too).

        Raises:
            durable_ext.errors.SerializationError: the payload cannot be decoded here
                (an object of a class none of these was given, a key not at hand).

        """
        if self.result is None:
            return None
        if self.serdes is not None:
            from aws_durable_execution_sdk_python.serdes import deserialize

            return deserialize(self.serdes, self.result, self.id, self.execution_arn)
        if self.decoder is not None:
            return self.decoder.value(self.result, operation_id=self.id,
                                      execution_arn=self.execution_arn)
        from aws_durable_execution_sdk_python.serdes import SerDesContext

        from durable_ext.serializers.pipeline import build_pipeline

        ctx = SerDesContext(operation_id=self.id, durable_execution_arn=self.execution_arn)
        return build_pipeline("json").deserialize(self.result, ctx)

    @property
    def view(self) -> dict[str, Any] | None:
        """The result as readable JSON (``{"Value": ..., "Encoding": ..., "Chars": ...}``).

        What ``durable-ext executions history --serdes`` shows: objects as their fields
        with a ``"$type"``, and a payload that cannot be opened as what it is, not an error.
        """
        from durable_ext.serializers.readable import Decoder

        if self.serdes is not None:
            decoder = Decoder(self.serdes)
        else:
            decoder = self.decoder if self.decoder is not None else Decoder()
        return decoder.payload(self.result, operation_id=self.id,
                               execution_arn=self.execution_arn)


def _operations(arn: str, events: Sequence[Mapping[str, Any]],
                serdes: Mapping[tuple[str, str], Any] | None = None,
                decoder: Any = None) -> list[OperationView]:
    ops: dict[str, dict[str, Any]] = {}
    for event in events:
        m = _EVENT.match(str(event.get("EventType", "")))
        if m is None or m.group(1) == "Execution":
            continue
        kind, what = m.groups()
        op_id = str(event.get("Id"))
        op = ops.setdefault(op_id, {
            "id": op_id, "name": event.get("Name"), "type": kind, "sub_type": event.get("SubType"),
            "parent_id": event.get("ParentId"), "status": "STARTED", "execution_arn": arn,
        })
        details: Mapping[str, Any] = event.get(f"{kind}{what}Details") or {}
        if what in _STATUS:
            op["status"] = _STATUS[what]
        if what != "Started":
            # the latest outcome replaces earlier ones: a retried step that succeeded
            # carries no error, a failed one no result
            op["result"] = (details.get("Result") or {}).get("Payload")
            op["error"] = (details.get("Error") or {}).get("Payload")
        attempt = (details.get("RetryDetails") or {}).get("CurrentAttempt")
        if attempt is not None:
            op["attempt"] = attempt
        if details.get("CallbackId"):
            op["callback_id"] = details["CallbackId"]
    known = serdes or {}
    return [OperationView(**op, serdes=known.get((arn, op["id"])), decoder=decoder)
            for op in ops.values()]


# -- one execution ----------------------------------------------------------------------


class ExecutionRun:
    """One execution under test: its status, result, operations, and its callbacks."""

    def __init__(self, harness: DurableTestRuntime, arn: str) -> None:
        self._harness = harness
        self.arn = arn

    def __repr__(self) -> str:
        return f"ExecutionRun({self.arn!r}, status={self.status!r})"

    def describe(self) -> dict[str, Any]:
        """Return the GetDurableExecution response."""
        return self._harness.runtime.describe(self.arn)

    @property
    def status(self) -> str:
        """The status: ``RUNNING``, ``PAUSING``, ``PAUSED``, ``SUCCEEDED``, ``FAILED``...."""
        return str(self.describe()["Status"])

    @property
    def result(self) -> Any:
        """The handler's return value (JSON-decoded); ``None`` while unfinished."""
        raw = self.describe().get("Result")
        return None if raw is None else json.loads(raw)

    @property
    def error(self) -> Mapping[str, Any] | None:
        """The execution's error (``ErrorType``, ``ErrorMessage``...), if it failed."""
        err: Mapping[str, Any] | None = self.describe().get("Error")
        return err

    def history(self) -> list[dict[str, Any]]:
        """Every history event, oldest first (all pages)."""
        events: list[dict[str, Any]] = []
        marker = None
        for _ in range(10_000):  # bounded: a page per call
            page = self._harness.runtime.history(self.arn, marker=marker)
            events.extend(page.get("Events", []))
            marker = page.get("NextMarker")
            if not marker:
                break
        return events

    def recording(self) -> Any:
        """Return this execution as a :class:`~durable_ext.testing.recording.Recording`."""
        from durable_ext.testing.recording import Recording

        return Recording.from_execution(self._harness.runtime, self.arn)

    @property
    def operations(self) -> list[OperationView]:
        """The operations in the order they started."""
        return _operations(self.arn, self.history(), self._harness.serdes_seen(),
                           self._harness.decoder_for(self.arn))

    def operation(self, name: str) -> OperationView:
        """Return the one operation called ``name``.

        Raises:
            LookupError: No operation, or several, has that name; the message lists
                the names there are.

        """
        ops = self.operations
        found = [op for op in ops if op.name == name]
        if len(found) == 1:
            return found[0]
        names = sorted({str(op.name) for op in ops})
        if not found:
            raise LookupError(f"no operation named {name!r} in {self.arn}; there are: {names}")
        raise LookupError(f"{len(found)} operations are named {name!r}; use .operations")

    def operation_status(self, op_id: str) -> str | None:
        """Return the status of operation ``op_id`` (None when it has none yet)."""
        return next((op.status for op in self.operations if op.id == op_id), None)

    def callback_id(self, name: str | None = None) -> str:
        """Return the id of the pending callback ``name`` (or of the only pending one).

        Raises:
            LookupError: No such pending callback, or several when no name is given.

        """
        pending = [op for op in self.operations
                   if op.type == "Callback" and op.status == "STARTED" and op.callback_id]
        if name is not None:
            pending = [op for op in pending
                       if op.name == name or (op.name or "").startswith(f"{name} ")]
        if len(pending) == 1:
            assert pending[0].callback_id is not None
            return pending[0].callback_id
        names = [op.name for op in pending]
        what = f"named {name!r}" if name is not None else "at all"
        if not pending:
            raise LookupError(f"no pending callback {what} in {self.arn} (status {self.status})")
        raise LookupError(f"{len(pending)} pending callbacks {what}: {names}; name one")

    def succeed_callback(self, name: str | None = None, result: Any = None) -> ExecutionRun:
        """Complete a pending callback with ``result`` (JSON-encoded unless str/bytes), run on."""
        plain = isinstance(result, str | bytes) or result is None
        payload = result if plain else json.dumps(result)
        self._harness.runtime.send_callback_success(self.callback_id(name), payload)
        return self._settle()

    def fail_callback(self, name: str | None = None, *, message: str = "failed",
                      error_type: str = "CallbackFailed") -> ExecutionRun:
        """Fail a pending callback, then run on."""
        self._harness.runtime.send_callback_failure(
            self.callback_id(name), {"ErrorMessage": message, "ErrorType": error_type}
        )
        return self._settle()

    def heartbeat_callback(self, name: str | None = None) -> ExecutionRun:
        """Send a heartbeat for a pending callback."""
        self._harness.runtime.send_callback_heartbeat(self.callback_id(name))
        return self

    def pause(self, reason: str | None = None, *,
              execution_timeout_paused: bool = True) -> ExecutionRun:
        """Pause the execution (PAUSING while an invocation runs, then PAUSED)."""
        self._harness.runtime.pause(self.arn, reason,
                                    execution_timeout_paused=execution_timeout_paused)
        return self

    def resume(self, reason: str | None = None) -> ExecutionRun:
        """Resume the execution, then run it on until it waits again."""
        self._harness.runtime.resume(self.arn, reason)
        return self._settle()

    def delete(self) -> None:
        """Delete the (ended) execution and its records."""
        self._harness.runtime.delete(self.arn)

    def _settle(self) -> ExecutionRun:
        self._harness.run_until_idle()
        return self


# -- the fixture's object ---------------------------------------------------------------


class DurableTestRuntime:
    """A :class:`durable_ext.runtime.Runtime` with helpers for tests.

    ``run`` registers the handler, starts an execution and drives it until it needs
    outside input; with the virtual clock (the default) waits and retry delays take no
    real time. ``advance`` moves the clock by an exact amount, firing what falls due
    (callback and heartbeat timeouts included).

    ``types``, ``serdes`` and ``options`` (as for :func:`durable_ext.serdes`) decode the
    results of operations whose serdes the test did not see run, such as those of
    executions started on :attr:`runtime` directly (see :attr:`OperationView.value`).
    """

    def __init__(self, runtime: Runtime, *, timeout: float = 30.0,
                 always_replay: bool = False, types: Sequence[type] | None = None,
                 serdes: Any = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self.always_replay = always_replay
        self._decoder: Any = None
        self._function_serdes: dict[str, Any] = {}
        if types or serdes is not None or options:
            self.decode_with(serdes, types=types, options=options)
        self._names: dict[int, str] = {}
        self._seq = itertools.count(1)
        self._mocks: dict[str, Callable[..., Any]] = {}
        self._sessions: dict[int, Any] = {}
        self._wrapped: dict[int, Callable[..., Any]] = {}
        self._responders = Responders(self)

    @property
    def clock(self) -> Any:
        """The runtime's clock (a ``VirtualClock`` unless the test asked for real time)."""
        return self.runtime.clock

    def register(self, handler: Callable[..., Any] | str, name: str | None = None, *,
                 durable: bool = True) -> str:
        """Register ``handler`` (e.g. a chained-invoke target); returns its function name."""
        key = id(handler)
        if name is None:
            name = self._names.get(key)
        if name is None:
            base = re.sub(r"[^A-Za-z0-9_-]", "-", getattr(handler, "__name__", "handler"))[:48]
            name = f"{base or 'handler'}-{next(self._seq)}"
        self._names[key] = name
        watched = self._watched(handler) if durable else handler
        from durable_ext.serializers.defaults import handler_serdes

        own = handler_serdes(watched)
        if own is not None:
            self._function_serdes[name] = own
        self.runtime.register(name, watched, durable=durable)
        return name

    def decode_with(self, serdes: Any = None, *, types: Sequence[type] | None = None,
                    options: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> DurableTestRuntime:
        """Decode results the test did not see encoded with these types, serdes, options.

        ``serdes`` is a spec string (default ``"msgpack"``, which reads every
        self-contained stage) or an SDK ``SerDes``; ``types`` and ``options`` go with a
        spec, as for :func:`durable_ext.serdes`. Returns the runtime, for chaining.
        """
        from durable_ext.serializers.readable import Decoder

        if serdes is not None and not isinstance(serdes, str):
            self._decoder = Decoder(serdes, types=types, options=options)
        else:
            # Decoder keeps objects of unknown classes as tagged fields, for views; here a
            # value stands for what the handler reads, so a missing class stays an error.
            opts = {k: dict(v) for k, v in (options or {}).items()}
            opts.setdefault("msgpack", {}).setdefault("unregistered", "error")
            self._decoder = Decoder(serdes, types=types, options=opts)
        return self

    def decoder_for(self, arn: str) -> Any:
        """Return the decoder of results of execution ``arn`` whose serdes was not seen.

        The handler's own ``default_serdes`` when it has one, else what
        :meth:`decode_with` configured, else None (the SDK's default reading).
        """
        from durable_ext.runtime.runtime import function_of

        own = self._function_serdes.get(function_of(arn))
        if own is not None:
            from durable_ext.serializers.readable import Decoder

            return Decoder(own)
        return self._decoder

    def _watched(self, handler: Callable[..., Any] | str) -> Callable[..., Any]:
        """Return the handler under a session of this test (mocks, always-replay, findings)."""
        key = id(handler)
        if key not in self._wrapped:
            from durable_ext.testing.session import TestSession, wrap_handler

            target = handler
            if isinstance(handler, str):
                from durable_ext.runtime.handlers import load_handler

                target = load_handler(handler)[1]
            session = TestSession(always_replay=self.always_replay, mocks=self._mocks)
            self._sessions[key] = session
            self._wrapped[key] = wrap_handler(target, session)  # type: ignore[arg-type]
        return self._wrapped[key]

    # -- step mocks and callback responders -------------------------------------------

    def mock_step(self, name: str, body: Callable[..., Any] | None = None, *,
                  value: Any = None, raises: BaseException | None = None) -> None:
        """Run ``body`` (a ``(step_context) -> result`` function) for every step ``name``.

        Without ``body``, the step returns ``value``, or raises ``raises``. The handler
        is not touched: its step keeps its name, config, retries and serdes.
        """
        if body is None:
            def body(_step_context: Any) -> Any:
                if raises is not None:
                    raise raises
                return value

        self._mocks[name] = body

    def respond(self, name: str, value: Any = None, *, error: str | None = None,
                error_type: str = "CallbackFailed", timeout: bool = False,
                after: float = 0, times: int | None = None) -> None:
        """Answer callbacks named ``name`` as they open, while the test runs them.

        Succeed with ``value`` (JSON-encoded unless str/bytes), fail with ``error``
        (and ``error_type``), or let the callback time out (``timeout=True``: the clock
        moves to its timeout); ``after`` seconds of (virtual) time pass first. Each
        callback is answered once, every one with that name (``times`` bounds how many).
        """
        self._responders.add(name, value=value, error=error, error_type=error_type,
                             timeout=timeout, after=after, times=times)

    @property
    def findings(self) -> list[str]:
        """What the sessions found so far (replay mismatches, culprits), as text."""
        return [p for s in self._sessions.values() for p in s.problems()]

    def check(self) -> None:
        """Raise :class:`~durable_ext.errors.ReplayDivergenceError` on any finding."""
        for session in self._sessions.values():
            session.check()

    def serdes_seen(self) -> dict[tuple[str, str], Any]:
        """Return ``(execution ARN, operation id) -> serdes`` of the operations run here."""
        out: dict[tuple[str, str], Any] = {}
        for session in self._sessions.values():
            out.update(session.serdes)
        return out

    def start(self, handler: Callable[..., Any] | str, input: Any = None, *,
              name: str | None = None, execution_timeout: int | None = None) -> ExecutionRun:
        """Start an execution without running it (``execution_timeout`` in seconds)."""
        function_name = self.register(handler)
        return ExecutionRun(
            self, self.runtime.start(function_name, input, name, execution_timeout)
        )

    def run(self, handler: Callable[..., Any] | str, input: Any = None, *,
            name: str | None = None, execution_timeout: int | None = None) -> ExecutionRun:
        """Start an execution and run it until it finishes or waits for outside input."""
        run = self.start(handler, input, name=name, execution_timeout=execution_timeout)
        self.run_until_idle()
        return run

    def run_until_idle(self) -> None:
        """Run everything runnable, jumping a virtual clock over waits and retry delays.

        Callbacks with a responder are answered as they open. Raises
        :class:`~durable_ext.errors.ReplayDivergenceError` when a replay diverged (or,
        with always-replay, code outside steps read the clock, randomness, uuids or the
        environment).
        """
        for _ in range(10_000):  # bounded: each round answers at least one callback
            self.runtime.run_until_idle(self.timeout)
            if not self._responders.answer_one():
                break
        self.check()

    def advance(self, seconds: float = 0, *, minutes: float = 0, hours: float = 0,
                days: float = 0) -> None:
        """Let exactly this much time pass, running everything that falls due in it."""
        total = seconds + 60 * minutes + 3600 * hours + 86400 * days
        if total < 0:
            raise ValueError("time cannot go backwards")
        self.runtime.run_until_idle(self.timeout, max_advance=total)
        self.check()

    def executions(self) -> list[str]:
        """ARNs of every execution in this test's store, oldest first."""
        arns: list[str] = []
        marker = None
        for _ in range(10_000):
            page = self.runtime.list_executions(max_items=1000, marker=marker)
            arns += [str(i["DurableExecutionArn"]) for i in page["DurableExecutions"]]
            marker = page.get("NextMarker")
            if not marker:
                break
        return list(reversed(arns))


class _Responder:
    def __init__(self, name: str, *, value: Any, error: str | None, error_type: str,
                 timeout: bool, after: float, times: int | None) -> None:
        if after < 0:
            raise ValueError("after cannot be negative")
        if timeout and error is not None:
            raise ValueError("a callback either fails or times out: give error or timeout")
        self.name, self.value, self.error, self.error_type = name, value, error, error_type
        self.timeout, self.after, self.left = timeout, after, times

    def matches(self, op: OperationView) -> bool:
        return self.left != 0 and (op.name == self.name
                                   or (op.name or "").startswith(f"{self.name} "))


class Responders:
    """The declared answers to callbacks, applied between runs of the runtime."""

    def __init__(self, harness: DurableTestRuntime) -> None:
        self._harness = harness
        self._declared: list[_Responder] = []
        self._answered: set[str] = set()

    def add(self, name: str, **how: Any) -> None:
        """Declare how callbacks named ``name`` are answered (see ``respond``)."""
        self._declared.append(_Responder(name, **how))

    def answer_one(self) -> bool:
        """Answer the first open callback that has a responder; False when there is none."""
        if not self._declared:
            return False
        h = self._harness
        for arn in h.executions():
            run = ExecutionRun(h, arn)
            for op in run.operations:
                if op.type != "Callback" or op.status != "STARTED" or not op.callback_id \
                        or op.callback_id in self._answered:
                    continue
                responder = next((r for r in self._declared if r.matches(op)), None)
                if responder is None:
                    continue
                self._answered.add(op.callback_id)
                if responder.left is not None:
                    responder.left -= 1
                self._send(responder, run, op)
                return True
        return False

    def _send(self, r: _Responder, run: ExecutionRun, op: OperationView) -> None:
        rt = self._harness.runtime
        if r.after:
            rt.run_until_idle(self._harness.timeout, max_advance=r.after)
            if ExecutionRun(self._harness, run.arn).operation_status(op.id) != "STARTED":
                return  # it timed out (or the execution ended) while time passed
        if r.timeout:
            seconds = _callback_timeout(run, op.id)
            if seconds is None:
                raise LookupError(f"callback {op.name!r} has no timeout: it cannot time out")
            rt.run_until_idle(self._harness.timeout, max_advance=seconds)
        elif r.error is not None:
            rt.send_callback_failure(op.callback_id or "",
                                     {"ErrorMessage": r.error, "ErrorType": r.error_type})
        else:
            plain = isinstance(r.value, str | bytes) or r.value is None
            rt.send_callback_success(op.callback_id or "",
                                     r.value if plain else json.dumps(r.value))


def _callback_timeout(run: ExecutionRun, op_id: str) -> float | None:
    for event in run.history():
        if event.get("EventType") == "CallbackStarted" and event.get("Id") == op_id:
            timeout = (event.get("CallbackStartedDetails") or {}).get("Timeout")
            return float(timeout) if timeout else None
    return None


# -- pytest hooks and fixtures ------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--durable-backend`` and ``--durable-clock`` (also as ini options)."""
    group = parser.getgroup("durable_ext", "durable_ext test runtime")
    group.addoption("--durable-backend", choices=_BACKENDS, default=None,
                    help="store for the durable_runtime fixture (default: memory)")
    group.addoption("--durable-clock", choices=_CLOCKS, default=None,
                    help="clock for the durable_runtime fixture (default: virtual)")
    group.addoption("--durable-always-replay", action="store_true", default=None,
                    help="durable_runtime suspends after every operation and replays from "
                    "the top, and fails on reads of time, randomness, uuids or the "
                    "environment outside steps")
    parser.addini("durable_backend", "store for durable_runtime: memory or file", default="memory")
    parser.addini("durable_always_replay", "durable_runtime replays after every operation",
                  type="bool", default=False)
    parser.addini("durable_clock", "clock for durable_runtime: virtual or real", default="virtual")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``durable`` marker."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(backend='memory'|'file', clock='virtual'|'real', timeout=30, "
        "always_replay=False, types=[...], serdes='msgpack', options={...}): "
        "settings of the durable_runtime fixture for this test (types, serdes and options "
        "decode results the test did not see encoded)",
    )


def _setting(request: pytest.FixtureRequest, key: str, allowed: tuple[str, ...]) -> str:
    marker = request.node.get_closest_marker(_MARKER)
    value = marker.kwargs.get(key) if marker else None
    if value is None:
        value = request.config.getoption(f"--durable-{key}") or request.config.getini(
            f"durable_{key}")
    if value not in allowed:
        raise pytest.UsageError(
            f"durable_runtime: {key}={value!r} is not one of {list(allowed)} "
            f"(from the @pytest.mark.{_MARKER} marker, --durable-{key} or durable_{key})"
        )
    return str(value)


@pytest.fixture
def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Give the store URL of ``durable_runtime``: ``memory://`` or a file store in tmp_path."""
    kind = _setting(request, "backend", _BACKENDS)
    return "memory://" if kind == "memory" else f"file://{tmp_path / 'durable'}"


@pytest.fixture
def durable_clock(request: pytest.FixtureRequest) -> Any:
    """Give the clock of ``durable_runtime``: a ``VirtualClock`` unless real time was asked."""
    from durable_ext.runtime import RealClock, VirtualClock

    return VirtualClock() if _setting(request, "clock", _CLOCKS) == "virtual" else RealClock()


@pytest.fixture
def durable_runtime(request: pytest.FixtureRequest, durable_backend: str,
                    durable_clock: Any) -> Iterator[DurableTestRuntime]:
    """Give a local durable runtime for this test, closed after it."""
    from durable_ext.runtime import Runtime

    marker = request.node.get_closest_marker(_MARKER)
    timeout = float(marker.kwargs.get("timeout", 30.0)) if marker else 30.0
    always = marker.kwargs.get("always_replay") if marker else None
    if always is None:
        always = request.config.getoption("--durable-always-replay") or request.config.getini(
            "durable_always_replay")
    decoding = {k: marker.kwargs[k] for k in ("types", "serdes", "options")
                if marker and k in marker.kwargs}
    with Runtime(backend=durable_backend, clock=durable_clock) as runtime:
        yield DurableTestRuntime(runtime, timeout=timeout, always_replay=bool(always),
                                 **decoding)

