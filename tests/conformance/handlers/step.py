"""Handlers for the ``step`` cases (1-x)."""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python.config import (
    Duration,
    JitterStrategy,
    StepConfig,
    StepSemantics,
)
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.exceptions import StepError
from aws_durable_execution_sdk_python.retries import (
    RetryDecision,
    RetryPresets,
    RetryStrategyConfig,
    create_retry_strategy,
)
from aws_durable_execution_sdk_python.types import StepContext

from conformance import logsink
from conformance.handlers._common import (
    NO_RETRY,
    UpperSerDes,
    constant,
    crash,
    fail,
    fixed_retry,
    greet,
)
from conformance.handlers._registry import case


class TransientError(Exception):
    """The error 1-15 retries and 1-16 does not."""


def _greet_step(name: Any) -> Any:
    def greet_step(_: StepContext) -> str:
        return greet(name)

    return greet_step


@case("1-1")
def step_basic(event: Any, ctx: DurableContext) -> Any:
    return ctx.step(_greet_step(event))


@case("1-2")
def step_named(event: Any, ctx: DurableContext) -> Any:
    return ctx.step(_greet_step(event), name="custom_step_name")


@case("1-3")
def step_sequential(event: Any, ctx: DurableContext) -> str:
    first = ctx.step(constant("first"), name="step_one")
    return ctx.step(lambda _: f"{first}_second", name="step_two")


@case("1-4")
def step_complex(event: Any, ctx: DurableContext) -> Any:
    def build_response(_: StepContext) -> dict[str, Any]:
        return {
            "user": {"name": event["name"], "tags": list(event["tags"])},
            "count": len(event["tags"]),
        }

    return ctx.step(build_response, name="build_response")


@case("1-5")
def step_null(event: Any, ctx: DurableContext) -> Any:
    return ctx.step(constant(None), name="do_nothing")


@case("1-6")
def step_custom_serdes(event: Any, ctx: DurableContext) -> Any:
    return ctx.step(constant(event), name="return_input", config=StepConfig(serdes=UpperSerDes()))


@case("1-7")
def step_logger(event: Any, ctx: DurableContext) -> str:
    ctx.set_logger(logsink.sink_logger())

    def greet_step(step_ctx: StepContext) -> str:
        step_ctx.logger.info(f"Greeting step started for: {event}")
        result = greet(event)
        step_ctx.logger.info(f"Greeting step completed with: {result}")
        return result

    return ctx.step(greet_step)


@case("1-8")
def step_then_wait(event: Any, ctx: DurableContext) -> Any:
    result = ctx.step(constant("computed"), name="compute")
    ctx.wait(Duration.from_seconds(2))
    return result


@case("1-9")
def step_replay_skips(event: Any, ctx: DurableContext) -> Any:
    ctx.set_logger(logsink.sink_logger())

    def cached(step_ctx: StepContext) -> str:
        step_ctx.logger.info("step executed")
        return "cached_value"

    result = ctx.step(cached, name="cached")
    ctx.wait(Duration.from_seconds(1))
    return result


@case("1-10")
def step_replay_rethrows(event: Any, ctx: DurableContext) -> Any:
    ctx.set_logger(logsink.sink_logger())

    def failing(step_ctx: StepContext) -> str:
        step_ctx.logger.info("step executed")
        raise RuntimeError("permanent failure")

    caught = None
    try:
        ctx.step(failing, name="failing", config=StepConfig(retry_strategy=NO_RETRY))
    except StepError as exc:
        caught = str(exc)
    ctx.wait(Duration.from_seconds(1))
    return {"caught": caught}


def _fails_until(succeed_on: int, result: str, error: type[Exception] = RuntimeError) -> Any:
    def unreliable(step_ctx: StepContext) -> str:
        if step_ctx.attempt < succeed_on:
            raise error(f"attempt {step_ctx.attempt} failed")
        return result

    return unreliable


@case("1-11")
def step_retry(event: Any, ctx: DurableContext) -> Any:
    return ctx.step(
        _fails_until(2, "Operation succeeded"),
        name="unreliable",
        config=StepConfig(retry_strategy=fixed_retry(3)),
    )


@case("1-12")
def step_retry_exhausted(event: Any, ctx: DurableContext) -> Any:
    return ctx.step(
        fail("always fails"), name="always_fail", config=StepConfig(retry_strategy=fixed_retry(4))
    )


@case("1-13")
def step_default_retry(event: Any, ctx: DurableContext) -> Any:
    # No StepConfig: the SDK's default strategy (6 attempts, 5 s, x2, full jitter).
    return ctx.step(_fails_until(3, "succeeded on third attempt"), name="unreliable")


@case("1-14")
def step_custom_backoff(event: Any, ctx: DurableContext) -> Any:
    strategy = create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=5,
            initial_delay=Duration.from_seconds(2),
            backoff_rate=3,
            jitter_strategy=JitterStrategy.NONE,
        )
    )
    # The attempt number comes from the step context (the suite's handler keeps it in DynamoDB).
    return ctx.step(
        _fails_until(3, "succeeded on third attempt"),
        name="backoff",
        config=StepConfig(retry_strategy=strategy),
    )


@case("1-15")
def step_retry_specific(event: Any, ctx: DurableContext) -> Any:
    def retry_on_transient(error: Exception, attempts: int) -> RetryDecision:
        if isinstance(error, TransientError) and attempts < 3:
            return RetryDecision.retry(Duration.from_seconds(1))
        return RetryDecision.no_retry()

    return ctx.step(
        _fails_until(2, "recovered", TransientError),
        name="transient",
        config=StepConfig(retry_strategy=retry_on_transient),
    )


@case("1-16")
def step_no_retry_specific(event: Any, ctx: DurableContext) -> Any:
    def no_retry_on_transient(error: Exception, attempts: int) -> RetryDecision:
        if isinstance(error, TransientError):
            return RetryDecision.no_retry()
        return RetryDecision.retry(Duration.from_seconds(1))

    return ctx.step(
        _fails_until(99, "unreachable", TransientError),
        name="transient",
        config=StepConfig(retry_strategy=no_retry_on_transient),
    )


@case("1-17", isolation="process")
def step_at_most_once_crash(event: Any, ctx: DurableContext) -> Any:
    ctx.set_logger(logsink.sink_logger())

    def at_most_once_flaky_step(step_ctx: StepContext) -> str:
        step_ctx.logger.info(f"at most once step running for: {event}")
        crash()
        return "unreachable"

    return ctx.step(
        at_most_once_flaky_step,
        name="at_most_once_flaky_step",
        config=StepConfig(
            step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY, retry_strategy=NO_RETRY
        ),
    )


@case("1-18", isolation="process")
def step_at_most_once_retry(event: Any, ctx: DurableContext) -> Any:
    ctx.set_logger(logsink.sink_logger())

    def at_most_once_step(step_ctx: StepContext) -> str:
        step_ctx.logger.info(f"at most once step attempt {step_ctx.attempt} for: {event}")
        if step_ctx.attempt == 1:
            crash()
        return "succeeded on second attempt"

    return ctx.step(
        at_most_once_step,
        name="at_most_once_step",
        config=StepConfig(
            step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY, retry_strategy=fixed_retry(2)
        ),
    )


@case("1-19")
def step_fails(event: Any, ctx: DurableContext) -> Any:
    return ctx.step(
        fail("permanent failure"),
        name="failing_func",
        config=StepConfig(retry_strategy=RetryPresets.none()),
    )


@case("1-20")
def step_error_caught(event: Any, ctx: DurableContext) -> Any:
    try:
        return ctx.step(fail(), name="failing_func", config=StepConfig(retry_strategy=NO_RETRY))
    except StepError:
        fallback = "fallback_result"
    return ctx.step(constant(fallback), name="fallback")
