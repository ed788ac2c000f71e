"""Handlers that report the ``_X_AMZN_TRACE_ID`` each invocation and each branch runs with.

A step body's result is checkpointed by the invocation that ran it, so the results of
steps run in different invocations show what each invocation saw; the output adds what
the last invocation saw at its end.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration
from aws_durable_execution_sdk_python.plugin import (
    DurableInstrumentationPlugin,
    InvocationStartInfo,
    PropagationInput,
    PropagationMetadata,
)

TRACE = "_X_AMZN_TRACE_ID"

#: what :class:`RecordingPlugin` saw at each invocation start, in order
SEEN_AT_START: list[str | None] = []
FORWARDED_PARENT = "0af7651916cd43dd"
FORWARDED_ROOT = "1-5759e988-0af7651916cd43dd8448eb21"


def trace_now(_: Any = None) -> str | None:
    return os.environ.get(TRACE)


class RecordingPlugin(DurableInstrumentationPlugin):
    """Notes the header at invocation start, as the OTel plugin reads it."""

    def on_invocation_start(self, info: InvocationStartInfo) -> None:
        SEEN_AT_START.append(os.environ.get(TRACE))


class RecordingFactory:
    def create_plugin(self, info: InvocationStartInfo) -> DurableInstrumentationPlugin:
        return RecordingPlugin()


class ForwardingPlugin(DurableInstrumentationPlugin):
    """Hands a chained invoke a trace header of its own choosing, as the OTel plugin does."""

    def provide_propagation_metadata(self, info: PropagationInput) -> PropagationMetadata:
        return PropagationMetadata(
            x_amzn_trace_id=f"Root={FORWARDED_ROOT};Parent={FORWARDED_PARENT};Sampled=0")


class ForwardingFactory:
    def create_plugin(self, info: InvocationStartInfo) -> DurableInstrumentationPlugin:
        return ForwardingPlugin()


def _across_a_wait(ctx: DurableContext) -> dict[str, Any]:
    first = ctx.step(trace_now, name="first")
    ctx.wait(Duration.from_seconds(5), name="pause")
    second = ctx.step(trace_now, name="second")
    branches = ctx.map([1, 2], lambda c, item, i, items: c.step(trace_now, name=f"b{item}"),
                       name="fan").get_results()
    return {"first": first, "second": second, "branches": branches, "final": trace_now()}


@durable_execution
def plain(event: Any, ctx: DurableContext) -> dict[str, Any]:
    return _across_a_wait(ctx)


@durable_execution(plugins=[RecordingFactory()])
def with_plugin(event: Any, ctx: DurableContext) -> dict[str, Any]:
    return _across_a_wait(ctx)


@durable_execution
def child(event: Any, ctx: DurableContext) -> dict[str, Any]:
    return {"child": ctx.step(trace_now, name="child-step")}


@durable_execution
def caller(event: Any, ctx: DurableContext) -> dict[str, Any]:
    own = ctx.step(trace_now, name="own")
    result = ctx.invoke("child", {}, name="call-child")
    return {"own": own, "child": result}


@durable_execution(plugins=[ForwardingFactory()])
def forwarding_caller(event: Any, ctx: DurableContext) -> dict[str, Any]:
    own = ctx.step(trace_now, name="own")
    result = ctx.invoke("child", {}, name="call-child")
    return {"own": own, "child": result}


#: two executions meet here, so both invocations are in flight at once
MEET = threading.Barrier(2, timeout=20)


@durable_execution(plugins=[RecordingFactory()])
def concurrent(event: Any, ctx: DurableContext) -> dict[str, Any]:
    def body(_: Any) -> str | None:
        before = trace_now()
        MEET.wait()
        after = trace_now()
        return before if before == after else f"changed: {before} -> {after}"

    return {"seen": ctx.step(body, name="meet")}
