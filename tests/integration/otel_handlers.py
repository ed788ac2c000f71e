"""Handlers traced by the SDK's OpenTelemetry plugin, with every kind of operation.

The plugin sends spans to :data:`TRACES` (in memory) in this process; in a handler
process started with ``$OTEL_TEST_ENDPOINT`` set, to that OTLP/HTTP endpoint instead.
"""

from __future__ import annotations

import os
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import (
    Duration,
    StepConfig,
    WaitForCallbackConfig,
)
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy

from durable_ext.tracing import LocalTraces

ENDPOINT_ENV = "OTEL_TEST_ENDPOINT"
_endpoint = os.environ.get(ENDPOINT_ENV)
TRACES = LocalTraces(memory=_endpoint is None, otlp_endpoint=_endpoint,
                     service_name="durable-ext-tests")
PLUGIN = TRACES.plugin()

RETRY_ONCE = StepConfig(retry_strategy=create_retry_strategy(
    RetryStrategyConfig(max_attempts=3, initial_delay=Duration.from_seconds(1))))


def flaky(step_ctx: Any) -> int:
    if step_ctx.attempt < 2:
        raise ValueError("first attempt fails")
    return 2


@durable_execution(plugins=[PLUGIN])
def child(event: Any, ctx: DurableContext) -> int:
    value = ctx.step(lambda _: 40, name="child-step")
    ctx.wait(Duration.from_seconds(1), name="child-wait")
    return int(value)


@durable_execution(plugins=[PLUGIN])
def everything(event: Any, ctx: DurableContext) -> dict[str, Any]:
    one = ctx.step(lambda _: 1, name="one")
    two = ctx.step(flaky, name="flaky", config=RETRY_ONCE)
    ctx.wait(Duration.from_seconds(5), name="pause")
    approved = ctx.wait_for_callback(lambda callback_id, _: None, name="approval",
                                     config=WaitForCallbackConfig(timeout=Duration.from_hours(1)))
    fan = ctx.map([1, 2], lambda c, x, i, xs: c.step(lambda _: x * 10, name=f"item-{x}"),
                  name="fan").get_results()
    par = ctx.parallel([lambda c: c.step(lambda _: "a", name="left"),
                        lambda c: c.step(lambda _: "b", name="right")],
                       name="par").get_results()
    got = ctx.invoke("child", {}, name="call-child")
    return {"sum": one + two + got, "approved": approved, "fan": fan, "par": par}


@durable_execution(plugins=[PLUGIN])
def simple(event: Any, ctx: DurableContext) -> int:
    a = ctx.step(lambda _: 1, name="first")
    ctx.wait(Duration.from_seconds(1), name="nap")
    return int(a + ctx.step(lambda _: 1, name="second"))
