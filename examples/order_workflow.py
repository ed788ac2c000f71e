"""An order workflow: the durable_ext demo.

Run it on the embedded file backend (``.durable`` in the current directory)::

    python examples/order_workflow.py                  # approval auto-completed
    python examples/order_workflow.py --manual         # approve it from the CLI

or through the CLI, which shows a live view of the operations::

    durable-ext run examples/order_workflow.py:handler --input '{"order_id": "o-1"}' --name o-1
    durable-ext callback succeed <CALLBACK_ID> '{"approved": true}'
    durable-ext executions history o-1

What it shows: steps whose results are stored with msgpack
(``durable_ext.serdes("msgpack")``), a payment step that fails once and is retried, a
short durable wait, an approval callback, and a map over the order lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from typing import Any

from aws_durable_execution_sdk_python import (
    DurableContext,
    StepContext,
    durable_execution,
    durable_step,
)
from aws_durable_execution_sdk_python.config import (
    CallbackConfig,
    Duration,
    MapConfig,
    StepConfig,
)
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryStrategyConfig,
    create_retry_strategy,
)

import durable_ext

MSGPACK = durable_ext.serdes("msgpack")
PRICES = {"book": 12.5, "pen": 1.25, "lamp": 30.0}


@durable_step
def validate_order(_: StepContext, event: dict[str, Any]) -> dict[str, Any]:
    lines = event.get("lines") or [{"sku": "book", "qty": 2}, {"sku": "pen", "qty": 3}]
    return {"order_id": event.get("order_id", "o-1"), "lines": lines}


@durable_step
def price_line(_: StepContext, line: dict[str, Any]) -> float:
    return round(PRICES.get(line["sku"], 0.0) * int(line["qty"]), 2)


@durable_step
def charge_card(step: StepContext, order_id: str, amount: float) -> dict[str, Any]:
    if step.attempt == 1:
        # The payment provider times out the first time; the step is retried durably.
        raise ConnectionError("payment provider timed out")
    return {"order_id": order_id, "charged": amount, "attempt": step.attempt}


@durable_step
def ship(_: StepContext, order_id: str) -> str:
    return f"shipment-{order_id}"


@durable_execution
def handler(event: dict[str, Any], ctx: DurableContext) -> dict[str, Any]:
    order = ctx.step(validate_order(event), name="validate", config=StepConfig(serdes=MSGPACK))
    prices = ctx.map(
        order["lines"],
        lambda c, line, _i, _all: c.step(price_line(line), config=StepConfig(serdes=MSGPACK)),
        name="price-lines",
        config=MapConfig(max_concurrency=4),
    ).get_results()
    total = round(sum(prices), 2)
    retry = create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=3,
            initial_delay=Duration.from_seconds(1),
            jitter_strategy=JitterStrategy.NONE,
        )
    )
    payment = ctx.step(
        charge_card(order["order_id"], total),
        name="charge",
        config=StepConfig(retry_strategy=retry, serdes=MSGPACK),
    )
    ctx.wait(Duration.from_seconds(2), name="fraud-cool-off")
    approval = ctx.create_callback(
        name="manager-approval", config=CallbackConfig(timeout=Duration.from_hours(24))
    )
    decision = json.loads(approval.result() or "{}")
    if not decision.get("approved"):
        return {"order_id": order["order_id"], "status": "rejected", "total": total}
    shipment = ctx.step(ship(order["order_id"]), name="ship", config=StepConfig(serdes=MSGPACK))
    return {
        "order_id": order["order_id"],
        "status": "shipped",
        "total": total,
        "payment_attempts": payment["attempt"],
        "shipment": shipment,
    }


def _waiting_callback(rt: Any, arn: str) -> str | None:
    callback = None
    for ev in rt.history(arn)["Events"]:
        if ev["EventType"] == "CallbackStarted":
            callback = ev["CallbackStartedDetails"]["CallbackId"]
        elif ev["EventType"] in ("CallbackSucceeded", "CallbackFailed", "CallbackTimedOut"):
            callback = None
    return callback


def main(argv: list[str] | None = None) -> int:
    from durable_ext.runtime import Runtime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="file://.durable")
    parser.add_argument("--name", default=f"order-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--manual", action="store_true", help="approve from the CLI instead")
    args = parser.parse_args(argv)
    # The SDK logs the first, failing payment attempt with its traceback; the history
    # below shows it as StepFailed, which is all the demo needs.
    logging.getLogger("aws_durable_execution_sdk_python").setLevel(logging.CRITICAL)

    with Runtime(backend=args.backend) as rt:
        rt.register("order-workflow", handler)
        arn = rt.start("order-workflow", {"order_id": args.name}, name=args.name)
        rt.run_until_idle(timeout=60)
        callback = _waiting_callback(rt, arn)
        if callback is not None and args.manual:
            print(
                "waiting for approval; approve it with:\n"
                f"  durable-ext callback succeed {callback} '{{\"approved\": true}}' "
                f"--backend {args.backend}"
            )
            return 3
        if callback is not None:
            rt.send_callback_success(callback, json.dumps({"approved": True}))
            rt.run_until_idle(timeout=60)
        desc = rt.describe(arn)
        print(f"{args.name}: {desc['Status']} -> {desc.get('Result') or desc.get('Error')}")
        for ev in rt.history(arn)["Events"]:
            print(f"  {ev['EventId']:>3} {ev['EventType']:<22} {ev.get('Name') or ''}")
        return 0 if desc["Status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
