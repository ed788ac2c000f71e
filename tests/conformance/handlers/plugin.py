"""Handlers for the ``plugin`` cases (10-x) and the instrumentation plugins they register."""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.plugin import (
    DurableInstrumentationPlugin,
    InvocationEndInfo,
    InvocationStartInfo,
    OperationEndInfo,
    OperationStartInfo,
    OperationType,
    UserFunctionEndInfo,
    UserFunctionStartInfo,
)
from aws_durable_execution_sdk_python.types import StepContext

from conformance import logsink
from conformance.handlers._common import NO_RETRY, arn_of, fail, fixed_retry, greet
from conformance.handlers._registry import case


class RecordingPlugin(DurableInstrumentationPlugin):
    """Writes one JSON record per hook, stamped with the execution ARN, like the suite's."""

    def __init__(self, label: str, hooks: frozenset[str], *, faulty: bool = False) -> None:
        self._label = label
        self._hooks = hooks
        self._faulty = faulty
        self._arn: str | None = None

    def _log(self, hook: str, **fields: Any) -> None:
        if hook not in self._hooks:
            return
        arn = self._arn or "unknown-execution"
        record = {"plugin": self._label, "hook": hook, **fields, "durableExecutionArn": arn}
        logsink.emit_json(record, arn)
        if self._faulty:
            raise RuntimeError(f"{self._label} fails in {hook}")

    def on_invocation_start(self, info: InvocationStartInfo) -> None:
        self._arn = info.execution_arn
        self._log("invocation-start", first=info.is_first_invocation)

    def on_invocation_end(self, info: InvocationEndInfo) -> None:
        self._log("invocation-end", status=info.status.value)

    def on_operation_start(self, info: OperationStartInfo) -> None:
        if info.operation_type is OperationType.STEP:
            self._log("operation-start", op=info.operation_id)

    def on_operation_end(self, info: OperationEndInfo) -> None:
        if info.operation_type is OperationType.STEP:
            self._log("operation-end", op=info.operation_id, status=info.status.value)

    def on_user_function_start(self, info: UserFunctionStartInfo) -> None:
        if info.operation_type is OperationType.STEP:
            self._log("attempt-start", n=info.attempt, op=info.operation_id)

    def on_user_function_end(self, info: UserFunctionEndInfo) -> None:
        if info.operation_type is OperationType.STEP:
            self._log(
                "attempt-end", n=info.attempt, outcome=info.outcome.value, op=info.operation_id
            )


class RecordingPluginFactory:
    """Creates a fresh :class:`RecordingPlugin` for every invocation."""

    def __init__(self, label: str, *hooks: str, faulty: bool = False) -> None:
        self._label = label
        self._hooks = frozenset(hooks)
        self._faulty = faulty

    def create_plugin(self, info: InvocationStartInfo, /) -> DurableInstrumentationPlugin:
        return RecordingPlugin(self._label, self._hooks, faulty=self._faulty)


INVOCATION_HOOKS = ("invocation-start", "invocation-end")
ALL_HOOKS = (
    *INVOCATION_HOOKS,
    "operation-start",
    "operation-end",
    "attempt-start",
    "attempt-end",
)


def _greeting(event: Any, ctx: DurableContext) -> str:
    def greet_step(_: StepContext) -> str:
        logsink.emit(f"Greeting step running for: {event}", arn_of(ctx))
        return greet(event)

    return ctx.step(greet_step)


@case("10-1", plugins=[RecordingPluginFactory("CONFPLUGIN", *INVOCATION_HOOKS)])
def plugin_invocation_hooks(event: Any, ctx: DurableContext) -> str:
    return _greeting(event, ctx)


@case("10-2", plugins=[RecordingPluginFactory("CONFPLUGIN", "operation-start", "operation-end")])
def plugin_operation_hooks(event: Any, ctx: DurableContext) -> str:
    return _greeting(event, ctx)


@case("10-3", plugins=[RecordingPluginFactory("CONFPLUGIN", "attempt-start", "attempt-end")])
def plugin_attempt_hooks(event: Any, ctx: DurableContext) -> str:
    def unreliable(step_ctx: StepContext) -> str:
        if step_ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "Operation succeeded"

    return ctx.step(unreliable, name="unreliable", config=StepConfig(retry_strategy=fixed_retry(3)))


@case("10-4", plugins=[RecordingPluginFactory("CONFPLUGIN-FAULTY", *ALL_HOOKS, faulty=True)])
def plugin_faulty(event: Any, ctx: DurableContext) -> str:
    return _greeting(event, ctx)


@case(
    "10-5",
    plugins=[
        RecordingPluginFactory("CONFPLUGIN-A", *INVOCATION_HOOKS),
        RecordingPluginFactory("CONFPLUGIN-B", *INVOCATION_HOOKS),
    ],
)
def plugin_two_plugins(event: Any, ctx: DurableContext) -> str:
    return _greeting(event, ctx)


@case("10-6", plugins=[RecordingPluginFactory("CONFPLUGIN", *INVOCATION_HOOKS)])
def plugin_first_invocation(event: Any, ctx: DurableContext) -> None:
    ctx.wait(Duration.from_seconds(2))


@case("10-7", plugins=[RecordingPluginFactory("CONFPLUGIN", *INVOCATION_HOOKS)])
def plugin_failed_status(event: Any, ctx: DurableContext) -> Any:
    return ctx.step(fail(), name="failing_func", config=StepConfig(retry_strategy=NO_RETRY))
