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

__all__ = ["DurableTestRuntime", "ExecutionRun", "OperationView"]

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

    @property
    def value(self) -> Any:
        """The result decoded the way the SDK reads it back (any durable_ext pipeline too).

        Raises:
            durable_ext.errors.SerializationError: the payload cannot be decoded here.

        """
        if self.result is None:
            return None
        from aws_durable_execution_sdk_python.serdes import SerDesContext

        from durable_ext.serializers.pipeline import build_pipeline

        ctx = SerDesContext(operation_id=self.id, durable_execution_arn=self.execution_arn)
        return build_pipeline("json").deserialize(self.result, ctx)


def _operations(arn: str, events: Sequence[Mapping[str, Any]]) -> list[OperationView]:
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
    return [OperationView(**op) for op in ops.values()]


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

    @property
    def operations(self) -> list[OperationView]:
        """The operations in the order they started."""
        return _operations(self.arn, self.history())

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
    """

    def __init__(self, runtime: Runtime, *, timeout: float = 30.0) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self._names: dict[int, str] = {}
        self._seq = itertools.count(1)

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
        self.runtime.register(name, handler, durable=durable)
        return name

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
        """Run everything runnable, jumping a virtual clock over waits and retry delays."""
        self.runtime.run_until_idle(self.timeout)

    def advance(self, seconds: float = 0, *, minutes: float = 0, hours: float = 0,
                days: float = 0) -> None:
        """Let exactly this much time pass, running everything that falls due in it."""
        total = seconds + 60 * minutes + 3600 * hours + 86400 * days
        if total < 0:
            raise ValueError("time cannot go backwards")
        self.runtime.run_until_idle(self.timeout, max_advance=total)


# -- pytest hooks and fixtures ------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--durable-backend`` and ``--durable-clock`` (also as ini options)."""
    group = parser.getgroup("durable_ext", "durable_ext test runtime")
    group.addoption("--durable-backend", choices=_BACKENDS, default=None,
                    help="store for the durable_runtime fixture (default: memory)")
    group.addoption("--durable-clock", choices=_CLOCKS, default=None,
                    help="clock for the durable_runtime fixture (default: virtual)")
    parser.addini("durable_backend", "store for durable_runtime: memory or file", default="memory")
    parser.addini("durable_clock", "clock for durable_runtime: virtual or real", default="virtual")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``durable`` marker."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(backend='memory'|'file', clock='virtual'|'real', timeout=30): "
        "settings of the durable_runtime fixture for this test",
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
    with Runtime(backend=durable_backend, clock=durable_clock) as runtime:
        yield DurableTestRuntime(runtime, timeout=timeout)

