"""Runs the official conformance suite's cases on ``durable_ext.runtime.Runtime``.

For each case this module does what the suite's ``validate.py`` does against AWS, with the
suite's own code wherever it has any:

- ``PlaceholderContext`` resolves ``Variables`` and substitutes ``Input``;
- synchronous cases (no ``AsyncInvoke``) run to completion (a RequestResponse invoke of a
  durable function returns when the execution ends), then the history is fetched once;
- asynchronous cases run under the suite's ``PollingValidator`` itself: it polls the history,
  matches ``CallbackStarted`` events to ``CallbackActions`` with ``find_matching_action`` and
  sends them with ``CallbackSender``.  Its ``time`` is replaced by the runtime's virtual clock,
  so its 2 s polls and ``Delay`` sleeps advance virtual time instead of waiting;
- ``EventHistoryMatcher`` compares the history, ``_validate_execution_result`` the
  ``ExpectedResult``;
- ``ExpectedLogs`` are checked by the suite's ``CloudWatchLogValidator`` against the records the
  handlers wrote to the local log sink (the only stubbed part: retrieval from CloudWatch).

The Lambda API the suite calls (``get_durable_execution*``, ``send_durable_execution_callback*``)
is served by :class:`LambdaApiAdapter` on top of a :class:`Driver`.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aws_durable_execution_conformance_tests import validate
from aws_durable_execution_conformance_tests.callback import CallbackAction
from aws_durable_execution_conformance_tests.cloudwatch import CloudWatchLogValidator
from aws_durable_execution_conformance_tests.history import EventHistoryMatcher
from aws_durable_execution_conformance_tests.validate import (
    AsyncValidationConfig,
    PollingValidator,
    _validate_execution_result,
)
from aws_durable_execution_conformance_tests.variables import PlaceholderContext
from botocore.exceptions import ClientError

from conformance import logsink
from conformance.cases import Case
from conformance.handlers import REGISTRY, CaseHandler

# Where ``conformance`` is importable from, for invocations run in a fresh interpreter.
TESTS_DIR = Path(__file__).resolve().parent.parent


class Driver(Protocol):
    """The control-plane operations the harness needs from a runtime."""

    def start(self, function_name: str, payload: str) -> str:
        """Start an execution with a JSON ``payload``; return its ARN."""

    def run_to_completion(self) -> None:
        """Run until nothing is runnable without outside input, however long the waits."""

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of (virtual) time pass, running everything that falls due."""

    def history(self, arn: str) -> dict[str, Any]:
        """GetDurableExecutionHistory response, execution data included."""

    def describe(self, arn: str) -> dict[str, Any]:
        """GetDurableExecution response."""

    def send_callback_success(self, callback_id: str, result: bytes | None) -> None: ...

    def send_callback_failure(self, callback_id: str, error: dict[str, Any] | None) -> None: ...

    def send_callback_heartbeat(self, callback_id: str) -> None: ...

    def close(self) -> None: ...


DriverFactory = Callable[[CaseHandler, Path], Driver]


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class RuntimeDriver:
    """A :class:`Driver` over ``durable_ext.runtime.Runtime`` with a virtual clock."""

    def __init__(self, backend: str, handler: CaseHandler) -> None:
        from durable_ext.runtime import Runtime, VirtualClock

        options: dict[str, Any] = {"backend": backend, "clock": VirtualClock()}
        if handler.isolation == "process":
            options["isolation"] = "process"
        self.runtime = Runtime(**options)
        by_path = handler.isolation == "process"
        self.runtime.register(
            handler.function_name, handler.handler if by_path else _resolve(handler.handler)
        )
        for tgt in handler.targets:
            self.runtime.register(
                tgt.function_name,
                tgt.handler if by_path else _resolve(tgt.handler),
                durable=tgt.durable,
            )

    def start(self, function_name: str, payload: str) -> str:
        return str(self.runtime.start(function_name, input=payload))

    def run_to_completion(self) -> None:
        self.runtime.run_until_idle()

    def advance(self, seconds: float) -> None:
        # Every timer due within ``seconds`` fires in order (callback timeouts included), and
        # the clock ends exactly ``seconds`` later: input sent next lands at that moment.
        self.runtime.run_until_idle(max_advance=seconds)

    def history(self, arn: str) -> dict[str, Any]:
        return dict(self.runtime.history(arn, include_execution_data=True))

    def describe(self, arn: str) -> dict[str, Any]:
        return dict(self.runtime.describe(arn))

    def send_callback_success(self, callback_id: str, result: bytes | None) -> None:
        self.runtime.send_callback_success(callback_id, result)

    def send_callback_failure(self, callback_id: str, error: dict[str, Any] | None) -> None:
        self.runtime.send_callback_failure(callback_id, error)

    def send_callback_heartbeat(self, callback_id: str) -> None:
        self.runtime.send_callback_heartbeat(callback_id)

    def close(self) -> None:
        self.runtime.close()


def runtime_driver(backend: str) -> DriverFactory:
    """Factory of :class:`RuntimeDriver` on ``backend`` (``memory://``, ``file://PATH``...)."""

    def make(handler: CaseHandler, workdir: Path) -> Driver:
        url = backend
        if backend.rstrip("/") in ("file:", "file://"):
            url = f"file://{workdir / 'store'}"
        return RuntimeDriver(url, handler)

    return make


class LambdaApiAdapter:
    """The boto3 Lambda client methods the suite calls, served by a :class:`Driver`.

    Runtime errors become ``ClientError`` so the suite reports them as it would a service
    error instead of aborting.
    """

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    @staticmethod
    @contextlib.contextmanager
    def _as_client_error(operation: str) -> Iterator[None]:
        try:
            yield
        except ClientError:
            raise
        except Exception as exc:
            error = {"Error": {"Code": type(exc).__name__, "Message": str(exc)}}
            raise ClientError(error, operation) from exc

    def get_durable_execution_history(
        self, *, DurableExecutionArn: str, IncludeExecutionData: bool = False
    ) -> dict[str, Any]:
        with self._as_client_error("GetDurableExecutionHistory"):
            return self._driver.history(DurableExecutionArn)

    def get_durable_execution(self, *, DurableExecutionArn: str) -> dict[str, Any]:
        with self._as_client_error("GetDurableExecution"):
            return self._driver.describe(DurableExecutionArn)

    def send_durable_execution_callback_success(
        self, *, CallbackId: str, Result: bytes | None = None
    ) -> dict[str, Any]:
        with self._as_client_error("SendDurableExecutionCallbackSuccess"):
            self._driver.send_callback_success(CallbackId, Result)
        return {}

    def send_durable_execution_callback_failure(
        self, *, CallbackId: str, Error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        with self._as_client_error("SendDurableExecutionCallbackFailure"):
            self._driver.send_callback_failure(CallbackId, Error)
        return {}

    def send_durable_execution_callback_heartbeat(self, *, CallbackId: str) -> dict[str, Any]:
        with self._as_client_error("SendDurableExecutionCallbackHeartbeat"):
            self._driver.send_callback_heartbeat(CallbackId)
        return {}


class VirtualTime:
    """Stands in for the ``time`` module inside the suite's ``validate``: sleeping advances
    the driver's virtual clock instead of the wall clock."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self._now += seconds
        self._driver.advance(seconds)


@contextlib.contextmanager
def _virtual_time(driver: Driver) -> Iterator[None]:
    saved = validate.time
    validate.time = VirtualTime(driver)
    try:
        yield
    finally:
        validate.time = saved


def ensure_session() -> None:
    """Make ``conformance`` importable by worker interpreters started from now on.

    Workers that are forked from a server inherit its ``sys.path`` instead; pytest has put
    the tests directory there before any case runs.
    """
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(TESTS_DIR) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), *paths])


@dataclass
class CaseResult:
    """Outcome of one case: ``passed`` and, if not, the suite's error messages."""

    case_id: str
    category: str
    passed: bool
    errors: list[str] = field(default_factory=list)
    history: dict[str, Any] | None = None
    execution: dict[str, Any] | None = None


def _validate_logs(case: Case, arn: str, context: PlaceholderContext) -> list[str]:
    expected = case.data.get("ExpectedLogs")
    if not expected:
        return []
    events = logsink.read(arn)
    result = CloudWatchLogValidator().validate(expected, events, context=context)
    return [f"logs: {e}" for e in result.errors]


def _run_sync(case: Case, driver: Driver, arn: str, context: PlaceholderContext) -> list[str]:
    driver.run_to_completion()
    history = driver.history(arn)
    expected_events = case.data.get("ExpectedExecutionHistory") or []
    match = EventHistoryMatcher(context=context).match(expected_events, history.get("Events", []))
    if not match.success:
        return list(match.errors)
    expected_result = case.data.get("ExpectedResult")
    if expected_result:
        errors: list[str] = _validate_execution_result(
            execution_arn=arn,
            expected_result=expected_result,
            lambda_client=LambdaApiAdapter(driver),
            context=context,
        )
        return errors
    return []


def _run_async(case: Case, driver: Driver, arn: str, context: PlaceholderContext) -> list[str]:
    actions = [CallbackAction.from_dict(raw) for raw in case.data.get("CallbackActions", [])]
    validator = PollingValidator(
        lambda_client=LambdaApiAdapter(driver),
        config=AsyncValidationConfig.from_dict(case.data.get("AsyncConfig", {})),
        context=context,
    )
    with _virtual_time(driver), contextlib.redirect_stdout(_Discard()):
        outcome = validator.validate(
            execution_arn=arn,
            expected_events=case.data.get("ExpectedExecutionHistory", []),
            expected_result=case.data.get("ExpectedResult"),
            callback_actions=actions,
        )
    return list(outcome.errors)


class _Discard:
    """A text sink for the validator's progress prints."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def run_case(case: Case, make_driver: DriverFactory, *, keep_history: bool = True) -> CaseResult:
    """Run ``case`` on a fresh driver and judge it with the suite's own rules."""
    ensure_session()
    handler = REGISTRY[case.case_id]
    context = PlaceholderContext()
    context.resolve_variables(case.data.get("Variables"))
    payload = json.dumps(context.substitute(case.data.get("Input")))
    result = CaseResult(case_id=case.case_id, category=case.category, passed=False)
    arn: str | None = None
    with tempfile.TemporaryDirectory(prefix=f"conformance-{case.case_id}-") as tmp:
        driver = make_driver(handler, Path(tmp))
        try:
            arn = driver.start(handler.function_name, payload)
            run = _run_async if case.is_async else _run_sync
            result.errors = run(case, driver, arn, context)
            if not result.errors:
                result.errors = _validate_logs(case, arn, context)
            if keep_history:
                result.history = driver.history(arn)
                result.execution = driver.describe(arn)
        except Exception as exc:  # a runtime error is a failed case, reported with its trace
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-6)
            result.errors = [f"harness: {type(exc).__name__}: {exc}", "".join(tb)]
        finally:
            driver.close()
            if arn is not None:
                logsink.discard(arn)
    result.passed = not result.errors
    return result


def summarize(result: CaseResult) -> str:
    """The failure text shown for a case: its errors plus the actual history, compactly."""
    lines = [f"case {result.case_id} failed:"]
    lines += [f"  - {e}" for e in result.errors]
    if result.history is not None:
        lines.append("  actual history:")
        for event in result.history.get("Events", []):
            detail = {
                k: v
                for k, v in event.items()
                if k.endswith("Details") or k in ("Id", "Name", "ParentId", "SubType")
            }
            compact = json.dumps(detail, default=str)
            lines.append(f"    {event.get('EventId')} {event.get('EventType')} {compact}")
    if result.execution is not None:
        status = result.execution.get("Status")
        lines.append(f"  execution: Status={status} Result={result.execution.get('Result')!r}")
    return "\n".join(lines)
