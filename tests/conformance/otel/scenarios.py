"""Handlers for the OpenTelemetry conformance suite's scenarios, one per view.

The suite (``aws-durable-execution-conformance-tests-otel``) names each case's scenario in
its input (``{"scenario": "retry"}``) and checks the history those operations produce and
the trace the plugin exports. One handler per view (the ``execution`` and ``invocation``
plugins are mutually exclusive) runs every scenario; chained invokes go to a target of
the same view. Spans go to :data:`TRACES`, which the ``durable-ext`` backend reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import (
    ChildConfig,
    Duration,
    MapConfig,
    ParallelBranch,
    ParallelConfig,
    StepConfig,
    WaitForCallbackConfig,
)
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy
from aws_durable_execution_sdk_python.waits import (
    WaitForConditionConfig,
    WaitForConditionDecision,
)

from durable_ext.tracing import LocalTraces

TRACES = LocalTraces(service_name="durable-execution-conformance")

# the suite's histories number the branches' events one branch after the other
ONE_AT_A_TIME = ParallelConfig(max_concurrency=1)
NO_RETRY = StepConfig(retry_strategy=create_retry_strategy(RetryStrategyConfig(max_attempts=1)))


def _retry(delay: int) -> StepConfig:
    return StepConfig(retry_strategy=create_retry_strategy(
        RetryStrategyConfig(max_attempts=2, initial_delay=Duration.from_seconds(delay))))


def _fails_first(message: str) -> Callable[[Any], str]:
    def body(step_ctx: Any) -> str:
        if step_ctx.attempt < 2:
            raise RuntimeError(message)
        return "recovered"
    return body


def _raise(message: str) -> Any:
    raise RuntimeError(message)


def _condition(stop_at: int) -> WaitForConditionConfig[int]:
    def strategy(state: int, attempt: int) -> WaitForConditionDecision:
        if state >= stop_at:
            return WaitForConditionDecision.stop_polling()
        return WaitForConditionDecision.continue_waiting(Duration.from_seconds(1))
    return WaitForConditionConfig(initial_state=0, wait_strategy=strategy)


def run_scenario(view: str, event: dict[str, Any], ctx: DurableContext) -> Any:
    scenario = event.get("scenario")
    delay = int(event.get("delay_seconds") or 1)
    target, failing = f"otel-{view}-target", f"otel-{view}-failing-target"
    if scenario == "success":
        return ctx.step(lambda _: "success", name="otel-success")
    if scenario == "wait-resume":
        ctx.wait(Duration.from_seconds(1), name="otel-wait")
        return ctx.step(lambda _: "resumed", name="otel-after-resume")
    if scenario == "retry":
        return ctx.step(_fails_first("first attempt fails"), name="otel-retry", config=_retry(1))
    if scenario == "terminal-failure":
        return ctx.step(lambda _: _raise("terminal failure"), name="otel-terminal-failure",
                        config=NO_RETRY)
    if scenario == "child-context":
        return ctx.run_in_child_context(
            lambda c: c.step(lambda _: "child", name="otel-child-step"), name="otel-child-context")
    if scenario == "parallel-hierarchy":
        return ctx.parallel([
            ParallelBranch(lambda c: c.step(lambda _: "a", name="otel-parallel-step-a"),
                           name="otel-parallel-branch-a"),
            ParallelBranch(lambda c: c.step(lambda _: "b", name="otel-parallel-step-b"),
                           name="otel-parallel-branch-b"),
        ], name="otel-parallel", config=ONE_AT_A_TIME).get_results()
    if scenario == "map-hierarchy":
        return ctx.map([0, 1], lambda c, x, i, xs: c.step(lambda _: x, name=f"otel-map-step-{x}"),
                       name="otel-map",
                       config=MapConfig(max_concurrency=1,
                                        item_namer=lambda x, i: f"otel-map-iteration-{i}"),
                       ).get_results()
    if scenario == "handled-failure":
        with contextlib.suppress(Exception):  # the scenario: a failure the handler survives
            ctx.step(lambda _: _raise("handled"), name="otel-handled-failure", config=NO_RETRY)
        return ctx.step(lambda _: "recovered", name="otel-recovery-step")
    if scenario == "wait-for-condition":
        return ctx.wait_for_condition(lambda state, _: state + 1, _condition(2),
                                      name="otel-condition")
    if scenario == "wait-for-condition-failure":
        return ctx.wait_for_condition(lambda state, _: _raise("condition failed"),
                                      _condition(2), name="otel-failed-condition")
    if scenario in ("wait-for-callback", "wait-for-callback-failure", "long-callback"):
        name = {"wait-for-callback": "otel-callback", "long-callback": "otel-long-callback",
                "wait-for-callback-failure": "otel-failed-callback"}[scenario]
        return ctx.wait_for_callback(lambda callback_id, _: None, name=name,
                                     config=WaitForCallbackConfig(timeout=Duration.from_hours(1)))
    if scenario == "chained-invoke":
        return ctx.invoke(target, {}, name="otel-invoke")
    if scenario == "chained-invoke-failure":
        return ctx.invoke(failing, {}, name="otel-failed-invoke")
    if scenario == "long-chained-invoke":
        return ctx.invoke(target, {"delay_seconds": delay}, name="otel-long-invoke")
    if scenario == "child-context-failure":
        return ctx.run_in_child_context(lambda c: _raise("child failed"),
                                        name="otel-failed-child-context")
    if scenario == "parallel-failure":
        result = ctx.parallel([ParallelBranch(lambda c: _raise("branch failed"),
                                              name="otel-failed-parallel-branch")],
                              name="otel-failed-parallel")
        result.throw_if_error()
        return result.get_results()
    if scenario == "map-failure":
        result = ctx.map([0], lambda c, x, i, xs: _raise("iteration failed"),
                         name="otel-failed-map",
                         config=MapConfig(item_namer=lambda x, i: f"otel-failed-map-iteration-{i}"))
        result.throw_if_error()
        return result.get_results()
    if scenario == "wait-interrupted":
        # longer than the function's execution timeout: the execution times out mid-wait
        ctx.wait(Duration.from_hours(2), name="otel-interrupted-wait")
        return "never"
    if scenario == "execution-failure":
        raise RuntimeError("execution failed")
    if scenario == "virtual-context":
        return ctx.run_in_child_context(lambda c: "virtual-complete", name="otel-virtual-context",
                                        config=ChildConfig(is_virtual=True))
    if scenario == "long-wait":
        ctx.wait(Duration.from_seconds(delay), name="otel-long-wait")
        return ctx.step(lambda _: "done", name="otel-after-long-wait")
    if scenario == "long-retry":
        return ctx.step(_fails_first("first attempt fails"), name="otel-long-retry",
                        config=_retry(delay))
    raise ValueError(f"unknown scenario {scenario!r}")


def _target(event: dict[str, Any], ctx: DurableContext) -> str:
    if event.get("delay_seconds"):
        ctx.wait(Duration.from_seconds(int(event["delay_seconds"])),
                 name="otel-long-invoke-target-wait")
    return "target-complete"


def _failing_target(event: dict[str, Any], ctx: DurableContext) -> str:
    raise RuntimeError("target failed")


def _view(view: str) -> dict[str, Any]:
    plugin = TRACES.plugin(view)  # type: ignore[arg-type]
    return {
        f"otel-{view}": durable_execution(plugins=[plugin])(
            lambda event, ctx: run_scenario(view, event, ctx)),
        f"otel-{view}-target": durable_execution(plugins=[plugin])(_target),
        f"otel-{view}-failing-target": durable_execution(plugins=[plugin])(_failing_target),
    }


#: function name -> handler, for both views
FUNCTIONS: dict[str, Any] = {**_view("execution"), **_view("invocation")}
