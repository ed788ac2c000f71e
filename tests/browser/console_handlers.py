"""Durable handlers the console's browser tests drive."""

from __future__ import annotations

import json
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration, StepConfig
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryStrategyConfig,
    create_retry_strategy,
)

import durable_ext

PACKED = durable_ext.serdes("msgpack+zstd")
RETRY = create_retry_strategy(RetryStrategyConfig(
    max_attempts=3, initial_delay=Duration.from_seconds(2), jitter_strategy=JitterStrategy.NONE))


def _charge(step: StepContext) -> str:
    if step.attempt == 1:
        raise ConnectionError("payment provider timed out")
    return "charged"


@durable_execution
def approval(event: dict[str, Any], ctx: DurableContext) -> dict[str, Any]:
    """Load an order (msgpack+zstd), price its lines in a map, wait, ask for approval."""
    order = ctx.step(lambda _: {"order_id": event.get("order_id", "o-1"),
                                "note": "keep this order " * 60,
                                "lines": [{"sku": f"sku-{i}", "qty": i} for i in range(8)]},
                     name="load-order", config=StepConfig(serdes=PACKED))
    prices = ctx.map(order["lines"][:2], lambda c, line, _i, _all: c.step(
        lambda _: line["qty"] * 2.5, name="price"), name="price-lines").get_results()
    ctx.step(_charge, name="charge", config=StepConfig(retry_strategy=RETRY))
    ctx.wait(Duration.from_seconds(3), name="cool-off")
    callback = ctx.create_callback(name="manager-approval",
                                   config=CallbackConfig(timeout=Duration.from_hours(1)))
    decision = json.loads(callback.result() or "{}")
    return {"order_id": order["order_id"], "approved": bool(decision.get("approved")),
            "total": sum(prices)}


@durable_execution
def quick(event: Any, ctx: DurableContext) -> str:
    """End at once."""
    return str(ctx.step(lambda _: "done", name="only-step"))
