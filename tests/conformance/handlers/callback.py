"""Handlers for the ``callback`` cases (4-x)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aws_durable_execution_sdk_python.config import CallbackConfig, Duration
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.exceptions import CallbackError
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext

from conformance.handlers._common import constant
from conformance.handlers._registry import case


class ReceivedSerDes(SerDes[Any]):
    """Parses the JSON payload into a record whose ISO timestamp becomes epoch seconds."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        raw = json.loads(data)
        stamp = datetime.fromisoformat(raw["timestamp"].replace("Z", "+00:00"))
        return {"id": raw["id"], "message": raw["message"], "timestamp": int(stamp.timestamp())}


class NumberSerDes(SerDes[Any]):
    """Parses the callback payload into a number."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        return float(json.loads(data)) if "." in data else int(json.loads(data))


def _seconds(value: int) -> Duration:
    return Duration.from_seconds(value)


@case("4-1")
def callback_basic(event: Any, ctx: DurableContext) -> Any:
    return ctx.create_callback(name=event).result()


@case("4-2")
def callback_named(event: Any, ctx: DurableContext) -> Any:
    return ctx.create_callback(name="approval").result()


@case("4-3")
def callback_timeout(event: Any, ctx: DurableContext) -> Any:
    return ctx.create_callback(name=event, config=CallbackConfig(timeout=_seconds(5))).result()


@case("4-4")
def callback_heartbeat_timeout(event: Any, ctx: DurableContext) -> Any:
    config = CallbackConfig(heartbeat_timeout=_seconds(5))
    return ctx.create_callback(name=event, config=config).result()


@case("4-5")
def callback_heartbeat_then_success(event: Any, ctx: DurableContext) -> Any:
    config = CallbackConfig(heartbeat_timeout=_seconds(10))
    return ctx.create_callback(name=event, config=config).result()


@case("4-6")
def callback_failure(event: Any, ctx: DurableContext) -> Any:
    return ctx.create_callback(name=event).result()


@case("4-7")
def callback_step_then_failure(event: Any, ctx: DurableContext) -> Any:
    callback = ctx.create_callback(name=event)
    ctx.step(constant("between"), name="between")
    return callback.result()


@case("4-8")
def callback_step_then_timeout(event: Any, ctx: DurableContext) -> Any:
    callback = ctx.create_callback(name=event, config=CallbackConfig(timeout=_seconds(5)))
    ctx.step(constant("between"), name="between")
    return callback.result()


@case("4-9")
def callback_wait_then_result(event: Any, ctx: DurableContext) -> Any:
    callback = ctx.create_callback(name=event)
    ctx.wait(_seconds(5))
    return callback.result()


@case("4-10")
def callback_failure_during_wait(event: Any, ctx: DurableContext) -> Any:
    callback = ctx.create_callback(name=event)
    ctx.wait(_seconds(5))
    return callback.result()


@case("4-11")
def callback_timeout_during_wait(event: Any, ctx: DurableContext) -> Any:
    callback = ctx.create_callback(name=event, config=CallbackConfig(timeout=_seconds(3)))
    ctx.wait(_seconds(6))
    return callback.result()


@case("4-12")
def callback_then_wait(event: Any, ctx: DurableContext) -> Any:
    result = ctx.create_callback(name=event).result()
    ctx.wait(_seconds(2))
    return result


@case("4-13")
def callback_failure_caught_then_wait(event: Any, ctx: DurableContext) -> Any:
    try:
        message = ctx.create_callback(name=event).result()
    except CallbackError as exc:
        message = f"callback failed: {exc}"
    ctx.wait(_seconds(2))
    return message


@case("4-14")
def callback_timeout_caught_then_wait(event: Any, ctx: DurableContext) -> Any:
    try:
        message = ctx.create_callback(
            name=event, config=CallbackConfig(timeout=_seconds(3))
        ).result()
    except CallbackError as exc:
        message = f"callback timed out: {exc}"
    ctx.wait(_seconds(2))
    return message


@case("4-15")
def callback_typed_serdes(event: Any, ctx: DurableContext) -> Any:
    received = ctx.create_callback(
        name=event, config=CallbackConfig(serdes=ReceivedSerDes())
    ).result()
    return {"received": received}


@case("4-16")
def callback_number_serdes(event: Any, ctx: DurableContext) -> Any:
    count: Any = ctx.create_callback(
        name=event, config=CallbackConfig(serdes=NumberSerDes())
    ).result()
    return {"count": count, "doubled": count * 2}


@case("4-17")
def callback_a_then_b(event: Any, ctx: DurableContext) -> Any:
    a = ctx.create_callback(name=event[0]).result()
    b = ctx.create_callback(name=event[1]).result()
    return [a, b]


@case("4-18")
def callback_both_then_a_b(event: Any, ctx: DurableContext) -> Any:
    cb_a = ctx.create_callback(name=event[0])
    cb_b = ctx.create_callback(name=event[1])
    return [cb_a.result(), cb_b.result()]


@case("4-19")
def callback_both_then_b_a(event: Any, ctx: DurableContext) -> Any:
    cb_a = ctx.create_callback(name=event[0])
    cb_b = ctx.create_callback(name=event[1])
    b = cb_b.result()
    return [cb_a.result(), b]
