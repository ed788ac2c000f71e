"""Handlers for the ``child`` cases (3-x)."""

from __future__ import annotations

import contextlib
from typing import Any

from aws_durable_execution_sdk_python.config import ChildConfig, Duration, StepConfig
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.exceptions import ChildContextError

from conformance import logsink
from conformance.handlers._common import (
    NO_RETRY,
    RawUpperSerDes,
    arn_of,
    constant,
    crash,
    fail,
    first_time,
    fixed_retry,
    wait_until_started,
)
from conformance.handlers._registry import case


@case("3-1")
def child_basic(event: Any, ctx: DurableContext) -> Any:
    return ctx.run_in_child_context(lambda c: c.step(constant(event), name="inner"), name="child")


@case("3-2")
def child_named(event: Any, ctx: DurableContext) -> Any:
    value = event["value"]
    return ctx.run_in_child_context(
        lambda c: c.step(constant(value), name="inner"), name=event["name"]
    )


@case("3-3")
def child_sequential(event: Any, ctx: DurableContext) -> Any:
    def body(c: DurableContext) -> Any:
        first = c.step(constant(event), name="first")
        return c.step(constant(first), name="second")

    return ctx.run_in_child_context(body, name="sequential")


@case("3-4")
def child_error(event: Any, ctx: DurableContext) -> Any:
    return ctx.run_in_child_context(
        lambda c: c.step(fail(), name="failing", config=StepConfig(retry_strategy=NO_RETRY)),
        name="failing_child",
    )


@case("3-5")
def child_error_caught(event: Any, ctx: DurableContext) -> Any:
    with contextlib.suppress(ChildContextError):
        ctx.run_in_child_context(
            lambda c: c.step(fail(), name="failing", config=StepConfig(retry_strategy=NO_RETRY)),
            name="failing_child",
        )
    return ctx.step(constant(event), name="recovery")


@case("3-6")
def child_nested(event: Any, ctx: DurableContext) -> Any:
    def inner(c: DurableContext) -> Any:
        return c.step(constant(event), name="inner_step")

    def outer(c: DurableContext) -> Any:
        c.step(constant(event), name="outer_step")
        return c.run_in_child_context(inner, name="inner")

    return ctx.run_in_child_context(outer, name="outer")


@case("3-7")
def child_step_retry(event: Any, ctx: DurableContext) -> Any:
    def flaky(step_ctx: Any) -> Any:
        if step_ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return event

    return ctx.run_in_child_context(
        lambda c: c.step(flaky, name="flaky", config=StepConfig(retry_strategy=fixed_retry(3))),
        name="retrying_child",
    )


@case("3-8")
def child_step_retry_exhausted(event: Any, ctx: DurableContext) -> Any:
    return ctx.run_in_child_context(
        lambda c: c.step(
            fail(), name="always_fails", config=StepConfig(retry_strategy=fixed_retry(2))
        ),
        name="exhausted_child",
    )


@case("3-9")
def child_replay_cached(event: Any, ctx: DurableContext) -> Any:
    result = ctx.run_in_child_context(
        lambda c: c.step(constant(event), name="inner"), name="cached_child"
    )
    ctx.wait(Duration.from_seconds(1))
    return result


@case("3-10")
def child_step_and_wait(event: Any, ctx: DurableContext) -> Any:
    def body(c: DurableContext) -> Any:
        value = c.step(constant(event), name="inner")
        c.wait(Duration.from_seconds(1))
        return value

    return ctx.run_in_child_context(body, name="step_and_wait")


@case("3-11")
def child_large_payload(event: Any, ctx: DurableContext) -> dict[str, Any]:
    def body(c: DurableContext) -> Any:
        # Replay logging on: the line is written on every run of the body, replays included.
        logsink.emit(f"[INFO] building large result for: {event}", arn_of(ctx))
        small = c.step(constant(event), name="small")
        # 300 KB: above the SDK's 256 KB checkpoint limit, so ReplayChildren is used.
        return small * (300 * 1024 // max(1, len(small)) + 1)

    large = ctx.run_in_child_context(body, name="large_child")
    ctx.wait(Duration.from_seconds(1))
    return {"length": len(large), "prefix": large[: len(event)]}


@case("3-12", isolation="process")
def child_interrupted(event: Any, ctx: DurableContext) -> Any:
    crash_now = first_time(ctx, "crash")

    def body(c: DurableContext) -> Any:
        def interruptible(_: Any) -> Any:
            if crash_now:
                wait_until_started(c, "interruptible")
                crash()
            return event

        return c.step(interruptible, name="interruptible")

    return ctx.run_in_child_context(body, name="interrupted_child")


@case("3-13")
def child_wait_only(event: Any, ctx: DurableContext) -> Any:
    def body(c: DurableContext) -> Any:
        c.wait(Duration.from_seconds(1))
        return event

    result = ctx.run_in_child_context(body, name="waiting_child")
    return ctx.step(constant(result), name="after")


@case("3-14")
def child_custom_serdes(event: Any, ctx: DurableContext) -> Any:
    return ctx.run_in_child_context(
        lambda c: c.step(constant(event), name="inner"),
        name="upper_child",
        config=ChildConfig(serdes=RawUpperSerDes()),
    )


@case("3-15")
def child_error_direct(event: Any, ctx: DurableContext) -> Any:
    def body(_: DurableContext) -> Any:
        raise RuntimeError("thrown directly in the child body")

    return ctx.run_in_child_context(body, name="throwing_child")


@case("3-16")
def child_null(event: Any, ctx: DurableContext) -> Any:
    return ctx.run_in_child_context(lambda c: None, name="null_child")


@case("3-17")
def child_logger_only(event: Any, ctx: DurableContext) -> Any:
    def body(c: DurableContext) -> Any:
        # Replay logging on: a second run of the body would write the line again.
        logsink.emit(f"[INFO] child body running for: {event}", arn_of(ctx))
        return event

    result = ctx.run_in_child_context(body, name="logging_child")
    ctx.wait(Duration.from_seconds(1))
    return result


@case("3-18")
def child_step_wait_then_more(event: Any, ctx: DurableContext) -> Any:
    def body(c: DurableContext) -> Any:
        value = c.step(constant(event), name="inner")
        c.wait(Duration.from_seconds(1))
        return value

    result = ctx.run_in_child_context(body, name="mixed_child")
    after = ctx.step(constant(result), name="after")
    ctx.wait(Duration.from_seconds(1))
    return after
