"""Handlers for the ``invoke`` cases (5-x) and the functions they invoke."""

from __future__ import annotations

import json
from typing import Any

from aws_durable_execution_sdk_python.config import Duration, InvokeConfig
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.exceptions import InvokeError
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext

from conformance.handlers._common import constant
from conformance.handlers._registry import Target, case, target

ECHO = "conformance-echo"
ECHO_2 = "conformance-echo-2"
FAILING = "conformance-failing"
MEASURE = "conformance-measure"


@target
def echo(event: Any, ctx: DurableContext) -> Any:
    """Returns its input unchanged."""
    return event


@target
def failing(event: Any, ctx: DurableContext) -> Any:
    """Always fails."""
    raise RuntimeError("invoked function failed")


@target
def measure(event: Any, ctx: DurableContext) -> Any:
    """Receives a large payload and reports its size."""
    return {"length": len(event["data"])}


def _t(name: str, attr: str) -> Target:
    return Target(function_name=name, handler=f"{__name__}:{attr}")


ECHO_T = _t(ECHO, "echo")
FAILING_T = _t(FAILING, "failing")


class UpperPayloadSerDes(SerDes[Any]):
    """Upper-cases the outgoing payload's strings (JSON text upper-cased)."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps(value).upper()

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        return json.loads(data)


class UpperResultSerDes(SerDes[Any]):
    """Upper-cases the raw result text it reads (``"hello"`` -> ``"HELLO"``, quotes kept)."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps(value)

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        return data.upper()


@case("5-1", targets=(ECHO_T,))
def invoke_basic(event: Any, ctx: DurableContext) -> Any:
    return ctx.invoke(ECHO, event)


@case("5-2", targets=(ECHO_T,))
def invoke_named(event: Any, ctx: DurableContext) -> Any:
    return ctx.invoke(ECHO, event["payload"], name=event["name"])


@case("5-3", targets=(ECHO_T,))
def invoke_complex(event: Any, ctx: DurableContext) -> Any:
    return ctx.invoke(ECHO, event)


@case("5-4", targets=(ECHO_T,))
def invoke_null(event: Any, ctx: DurableContext) -> Any:
    return ctx.invoke(ECHO, None)


@case("5-5", targets=(FAILING_T,))
def invoke_fails(event: Any, ctx: DurableContext) -> Any:
    return ctx.invoke(FAILING, None)


@case("5-6", targets=(FAILING_T,))
def invoke_fails_caught(event: Any, ctx: DurableContext) -> Any:
    try:
        return ctx.invoke(FAILING, None)
    except InvokeError:
        return "fallback"


@case("5-7", targets=(_t(MEASURE, "measure"),))
def invoke_large(event: Any, ctx: DurableContext) -> Any:
    # ~200 KB: close to the 256 KB asynchronous-invoke and checkpoint payload limits.
    return ctx.invoke(MEASURE, {"data": "x" * (200 * 1024)})


@case("5-8", targets=(ECHO_T,))
def invoke_tenant(event: Any, ctx: DurableContext) -> Any:
    return ctx.invoke(ECHO, event["payload"], config=InvokeConfig(tenant_id=event["tenantId"]))


@case("5-9", targets=(ECHO_T,))
def invoke_then_wait(event: Any, ctx: DurableContext) -> Any:
    result: Any = ctx.invoke(ECHO, "cached")
    ctx.wait(Duration.from_seconds(1))
    return result


@case("5-10", targets=(FAILING_T,))
def invoke_fails_then_wait(event: Any, ctx: DurableContext) -> Any:
    result: Any
    try:
        result = ctx.invoke(FAILING, None)
    except InvokeError as exc:
        result = f"caught: {exc}"
    ctx.wait(Duration.from_seconds(1))
    return result


@case("5-11", targets=(ECHO_T,))
def step_then_invoke(event: Any, ctx: DurableContext) -> Any:
    value = ctx.step(constant("from-step"), name="produce")
    return ctx.invoke(ECHO, value)


@case("5-12", targets=(ECHO_T,))
def invoke_then_step(event: Any, ctx: DurableContext) -> Any:
    value: Any = ctx.invoke(ECHO, "from-invoke")
    return ctx.step(constant(f"processed {value}"), name="process")


@case("5-13", targets=(ECHO_T,))
def invoke_in_child(event: Any, ctx: DurableContext) -> Any:
    return ctx.run_in_child_context(lambda c: c.invoke(ECHO, "in-child"), name="invoking_child")


@case("5-14", targets=(ECHO_T, _t(ECHO_2, "echo")))
def invoke_twice(event: Any, ctx: DurableContext) -> Any:
    first: Any = ctx.invoke(ECHO, "first")
    second: Any = ctx.invoke(ECHO_2, "second")
    return [first, second]


@case("5-15", targets=(ECHO_T,))
def invoke_payload_serdes(event: Any, ctx: DurableContext) -> Any:
    return ctx.invoke(ECHO, event, config=InvokeConfig(serdes_payload=UpperPayloadSerDes()))


@case("5-16", targets=(ECHO_T,))
def invoke_result_serdes(event: Any, ctx: DurableContext) -> Any:
    return ctx.invoke(ECHO, event, config=InvokeConfig(serdes_result=UpperResultSerDes()))
