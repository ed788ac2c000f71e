"""Our serdes inside the SDK's own code: real handlers, first run and replay.

Handlers are driven by the official testing SDK's in-process runner, which calls the
SDK exactly as Lambda does; the checkpointed payloads it stores are inspected.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import (
    CallbackConfig,
    ChildConfig,
    Duration,
    MapConfig,
    ParallelConfig,
    StepConfig,
)
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext
from aws_durable_execution_sdk_python.waits import (
    WaitForConditionConfig,
    WaitForConditionDecision,
)
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

import durable_ext
from durable_ext.serializers.frames import is_armored, unarmor


@dataclass(frozen=True)
class Shipment:
    id: uuid.UUID
    eta: dt.datetime
    weight: Decimal


ORDER_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
ETA = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)


class Recording(SerDes[Any]):
    """Wraps a pipeline and records every call, to tell first run from replay."""

    def __init__(self, inner: SerDes[Any]) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def serialize(self, value: Any, ctx: SerDesContext) -> str:
        with self.lock:
            self.calls.append(("ser", ctx.operation_id))
        return self.inner.serialize(value, ctx)

    def deserialize(self, data: str, ctx: SerDesContext) -> Any:
        with self.lock:
            self.calls.append(("de", ctx.operation_id))
        return self.inner.deserialize(data, ctx)


def run(handler, callback_name: str | None = None, callback_payload: str = '"ok"'):
    with DurableFunctionTestRunner(handler=handler, poll_interval=0.05) as runner:
        arn = runner.run_async(input=json.dumps({"n": 3}), execution_timeout=60)
        if callback_name:
            cb = runner.wait_for_callback(arn, name=callback_name, timeout=30)
            runner.send_callback_success(cb, result=callback_payload.encode())
        result = runner.wait_for_result(arn, timeout=60)
        history = runner.get_execution_history(arn, include_execution_data=True)
    return result, history


def assert_ours(payload: str) -> None:
    assert is_armored(payload)  # base64 ("w...") or text armor ("\xc1...")
    assert unarmor(payload, "test")[0] == 0xC1


@pytest.mark.parametrize("spec", ["msgpack", "msgpack+zstd"])
def test_every_operation_kind_round_trips_typed_values(spec):
    serdes = Recording(durable_ext.serdes(spec, types=[Shipment]))
    seen: list[dict[str, Any]] = []

    def poll(state: tuple[int, Decimal], check_ctx) -> tuple[int, Decimal]:
        return (state[0] + 1, state[1] + Decimal("0.5"))

    def strategy(state: tuple[int, Decimal], attempt: int) -> WaitForConditionDecision:
        if state[0] < 2:
            return WaitForConditionDecision.continue_waiting(Duration.from_seconds(1))
        return WaitForConditionDecision.stop_polling()

    @durable_execution
    def handler(event: dict, ctx) -> dict:
        shipment = ctx.step(
            lambda _: Shipment(ORDER_ID, ETA, Decimal("12.50")),
            name="ship",
            config=StepConfig(serdes=serdes),
        )
        child = ctx.run_in_child_context(
            lambda c: c.step(
                lambda _: {(1, 2): {"a", "b"}}, name="inner", config=StepConfig(serdes=serdes)
            ),
            name="child",
            config=ChildConfig(serdes=serdes),
        )
        ctx.wait(Duration.from_seconds(2), name="nap")
        mapped = ctx.map(
            [1, 2, 3],
            lambda c, x, i, items: (x, Decimal(x) / 4),
            name="quarters",
            config=MapConfig(serdes=serdes),
        )
        par = ctx.parallel(
            [lambda c: frozenset({1}), lambda c: dt.date(2024, 2, 29)],
            name="par",
            config=ParallelConfig(serdes=serdes),
        )
        state = ctx.wait_for_condition(
            poll, WaitForConditionConfig(strategy, (0, Decimal("0")), serdes=serdes), name="poll"
        )
        approval = ctx.create_callback(
            name="approval", config=CallbackConfig(serdes=serdes)
        ).result()
        seen.append(
            {
                "shipment": shipment,
                "child": child,
                "mapped": mapped.get_results(),
                "par": par.get_results(),
                "state": state,
                "approval": approval,
            }
        )
        return {"ok": True}

    result, history = run(handler, "approval", json.dumps({"approved": True, "by": "ops"}))
    assert result.status.value == "SUCCEEDED", result.error
    final = seen[-1]
    assert final["shipment"] == Shipment(ORDER_ID, ETA, Decimal("12.50"))
    assert final["child"] == {(1, 2): {"a", "b"}}
    assert final["mapped"] == [(1, Decimal("0.25")), (2, Decimal("0.5")), (3, Decimal("0.75"))]
    assert final["par"] == [frozenset({1}), dt.date(2024, 2, 29)]
    assert final["state"] == (2, Decimal("1.0"))
    assert final["approval"] == {"approved": True, "by": "ops"}  # foreign JSON callback payload
    # the values seen on replays equal the first run's: replays read our checkpoints
    assert len(seen) == 1 or all(s == final for s in seen)

    ship = result.get_step("ship")
    assert_ours(ship.result)
    assert (
        durable_ext.serdes("msgpack", types=[Shipment]).deserialize(
            ship.result, SerDesContext(ship.operation_id, "")
        )
        == final["shipment"]
    )
    assert_ours(result.get_context("quarters").result)
    # replay: the ship step was serialized once (first run) and later only deserialized
    ship_calls = [kind for kind, op in serdes.calls if op == ship.operation_id]
    assert ship_calls[0] == "ser" and ship_calls.count("ser") == 1 and "de" in ship_calls[1:]
    assert sum(1 for e in history.events if e.event_type == "InvocationCompleted") >= 3


def test_default_serdes_covers_operations_that_name_none():
    seen: list[Any] = []

    @durable_execution
    @durable_ext.default_serdes("msgpack+zstd", types=[Shipment])
    def handler(event: dict, ctx) -> dict:
        s = ctx.step(lambda _: Shipment(ORDER_ID, ETA, Decimal("1")), name="ship")
        nested = ctx.run_in_child_context(
            lambda c: c.run_in_child_context(
                lambda cc: cc.step(lambda _: (1, {2}), name="deep"), name="inner"
            ),
            name="outer",
        )
        m = ctx.map(
            ["a", "b"],
            lambda c, x, i, items: c.step(lambda _: (x, i), name=f"item-{i}"),
            name="items",
        )
        ctx.wait(Duration.from_seconds(1), name="nap")
        seen.append((s, nested, m.get_results()))
        return {"done": True}

    result, _ = run(handler)
    assert result.status.value == "SUCCEEDED", result.error
    assert seen[-1] == (Shipment(ORDER_ID, ETA, Decimal("1")), (1, {2}), [("a", 0), ("b", 1)])
    assert_ours(result.get_step("ship").result)
    outer = result.get_context("outer")
    assert_ours(outer.result)
    assert_ours(outer.get_context("inner").get_step("deep").result)
    items = result.get_context("items")
    assert_ours(items.result)  # the BatchResult itself
    assert all(is_armored(op.result) for op in items.child_operations)


def test_unsupported_value_fails_the_step_with_a_named_serdes_error():
    class Opaque:
        pass

    @durable_execution
    def handler(event: dict, ctx) -> dict:
        ctx.step(lambda _: Opaque(), name="bad", config=StepConfig(serdes=durable_ext.serdes()))
        return {}

    result, _ = run(handler)
    assert result.status.value == "FAILED"
    assert "Opaque" in result.error.message
    assert result.get_step("bad").status.value == "FAILED"


def test_switching_from_the_sdk_default_keeps_in_flight_executions_readable():
    # A step checkpointed by the SDK's default serializer is read back by our pipeline.
    from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes

    old = ExtendedTypeSerDes().serialize({"at": ETA, "amount": Decimal("3")}, SerDesContext())
    assert durable_ext.serdes().deserialize(old, SerDesContext()) == {
        "at": ETA,
        "amount": Decimal("3"),
    }
