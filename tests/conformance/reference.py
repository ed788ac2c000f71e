"""A :class:`~conformance.harness.Driver` over the official testing SDK's runner.

Used to check the handlers independently of durable_ext's runtime (``report.py --reference``).
The testing SDK skips timers instantly and has known history gaps (service-semantics.md §7.7:
no ``RetryDetails`` on retried successes, no ``Timeout``/``HeartbeatTimeout`` on
``CallbackStarted``, no ``ExecutedVersion`` on ``ChainedInvokeStarted``...), so some cases
fail here for reasons that are not the handlers'.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python.lambda_service import ErrorObject
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

from conformance.handlers import CaseHandler
from conformance.harness import Driver, _resolve

# Real seconds slept per "advance": the runner works in background threads with skipped time.
_SETTLE = 0.05


class ReferenceDriver:
    """Runs a case's handler in ``DurableFunctionTestRunner`` (in-process, skipped time)."""

    def __init__(self, handler: CaseHandler) -> None:
        self._runner = DurableFunctionTestRunner(
            handler=_resolve(handler.handler), poll_interval=0.02, skip_time=True
        )
        for tgt in handler.targets:
            if tgt.durable:
                self._runner.register_durable_function(tgt.function_name, _resolve(tgt.handler))
            else:
                self._runner.register_function(tgt.function_name, _resolve(tgt.handler))

    def start(self, function_name: str, payload: str) -> str:
        self._arn = self._runner.run_async(
            input=payload, function_name=function_name, execution_timeout=60
        )
        return self._arn

    def run_to_completion(self) -> None:
        self._runner._executor.wait_until_complete(self._arn, 30)

    def advance(self, seconds: float) -> None:
        time.sleep(_SETTLE)

    def history(self, arn: str) -> dict[str, Any]:
        response = self._runner.get_execution_history(arn, include_execution_data=True)
        events = [event.to_dict() for event in response.events]
        for event in events:
            # Known testing-SDK gap (§7.7): it drops InvocationCompletedDetails from the
            # history; the service always sends it.  Restored so the check is about handlers.
            if event.get("EventType") == "InvocationCompleted":
                event.setdefault("InvocationCompletedDetails", {})
        return {"Events": events}

    def describe(self, arn: str) -> dict[str, Any]:
        return self._runner._executor.get_execution_details(arn).to_dict()

    def send_callback_success(self, callback_id: str, result: bytes | None) -> None:
        self._runner.send_callback_success(callback_id, result)

    def send_callback_failure(self, callback_id: str, error: dict[str, Any] | None) -> None:
        error = error or {}
        self._runner.send_callback_failure(
            callback_id,
            ErrorObject(
                message=error.get("ErrorMessage"),
                type=error.get("ErrorType"),
                data=error.get("ErrorData"),
                stack_trace=error.get("StackTrace"),
            ),
        )

    def send_callback_heartbeat(self, callback_id: str) -> None:
        self._runner.send_callback_heartbeat(callback_id)

    def close(self) -> None:
        self._runner.close()  # type: ignore[no-untyped-call]


def reference_driver(handler: CaseHandler, workdir: Path) -> Driver:
    """:data:`~conformance.harness.DriverFactory` for :class:`ReferenceDriver`."""
    return ReferenceDriver(handler)
