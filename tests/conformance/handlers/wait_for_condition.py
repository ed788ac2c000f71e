"""Handlers for the ``wait_for_condition`` cases (6-x)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from aws_durable_execution_sdk_python.config import Duration, JitterStrategy
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.exceptions import WaitForConditionError
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext
from aws_durable_execution_sdk_python.waits import (
    WaitForConditionConfig,
    WaitForConditionDecision,
    WaitStrategyConfig,
    create_wait_strategy,
)

from conformance.handlers._common import constant
from conformance.handlers._registry import case


def _poll_while(keep_polling: Callable[[Any], bool], delay: int = 1) -> Any:
    """Wait strategy: poll again after ``delay`` seconds while ``keep_polling(state)``."""

    def strategy(state: Any, attempts: int) -> WaitForConditionDecision:
        if keep_polling(state):
            return WaitForConditionDecision.continue_waiting(Duration.from_seconds(delay))
        return WaitForConditionDecision.stop_polling()

    return strategy


def _increment(state: int, _: Any) -> int:
    return state + 1


def _count_to(ctx: DurableContext, start: int, threshold: int, name: str | None = None) -> Any:
    config = WaitForConditionConfig(
        wait_strategy=_poll_while(lambda s: s < threshold), initial_state=start
    )
    return ctx.wait_for_condition(_increment, config=config, name=name)


class EncodedStateSerDes(SerDes[Any]):
    """Stores the string state base64-encoded behind a tag; decodes it on resume."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return "b64:" + base64.b64encode(value.encode()).decode()

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        if not data.startswith("b64:"):
            msg = f"state was not written by this serdes: {data!r}"
            raise ValueError(msg)
        return base64.b64decode(data[4:]).decode()


@case("6-1")
def wfc_basic(event: Any, ctx: DurableContext) -> Any:
    return _count_to(ctx, 0, event)


@case("6-2")
def wfc_immediate(event: Any, ctx: DurableContext) -> Any:
    config = WaitForConditionConfig(wait_strategy=_poll_while(lambda s: s < event), initial_state=5)
    return ctx.wait_for_condition(lambda state, _: state, config=config)


@case("6-3")
def wfc_named(event: Any, ctx: DurableContext) -> Any:
    return _count_to(ctx, 0, event, name="poll-status")


@case("6-4")
def wfc_initial_state(event: Any, ctx: DurableContext) -> Any:
    return _count_to(ctx, 5, event)


@case("6-5")
def wfc_fixed_delay(event: Any, ctx: DurableContext) -> Any:
    strategy: Any = create_wait_strategy(
        WaitStrategyConfig(
            should_continue_polling=lambda s: s < event,
            initial_delay=Duration.from_seconds(2),
            backoff_rate=1,
            jitter_strategy=JitterStrategy.NONE,
        )
    )
    config = WaitForConditionConfig(wait_strategy=strategy, initial_state=0)
    return ctx.wait_for_condition(_increment, config=config)


@case("6-6")
def wfc_exhausted(event: Any, ctx: DurableContext) -> Any:
    strategy: Any = create_wait_strategy(
        WaitStrategyConfig(
            should_continue_polling=lambda s: True,
            max_attempts=3,
            initial_delay=Duration.from_seconds(1),
            backoff_rate=1,
            jitter_strategy=JitterStrategy.NONE,
        )
    )
    config = WaitForConditionConfig(wait_strategy=strategy, initial_state=event or 0)
    return ctx.wait_for_condition(_increment, config=config)


def _raising_check(state: Any, _: Any) -> Any:
    raise RuntimeError("condition check failed")


@case("6-7")
def wfc_check_raises(event: Any, ctx: DurableContext) -> Any:
    config = WaitForConditionConfig(wait_strategy=_poll_while(lambda s: True), initial_state=0)
    return ctx.wait_for_condition(_raising_check, config=config)


@case("6-8")
def wfc_check_raises_caught(event: Any, ctx: DurableContext) -> Any:
    config = WaitForConditionConfig(wait_strategy=_poll_while(lambda s: True), initial_state=0)
    try:
        return ctx.wait_for_condition(_raising_check, config=config)
    except WaitForConditionError:
        return "recovered"


@case("6-9")
def wfc_object_state(event: Any, ctx: DurableContext) -> Any:
    def check(state: dict[str, Any], _: Any) -> dict[str, Any]:
        attempts = state["attempts"] + 1
        return {"status": "DONE" if attempts >= 2 else "PENDING", "attempts": attempts}

    config = WaitForConditionConfig(
        wait_strategy=_poll_while(lambda s: s["status"] == "PENDING"),
        initial_state={"status": "PENDING", "attempts": 0},
    )
    return ctx.wait_for_condition(check, config=config)


@case("6-10")
def wfc_null_state(event: Any, ctx: DurableContext) -> Any:
    config = WaitForConditionConfig(
        wait_strategy=_poll_while(lambda s: s is not None), initial_state=0
    )

    def null_check(state: Any, _: Any) -> Any:
        return None

    return ctx.wait_for_condition(null_check, config=config)


@case("6-11")
def wfc_custom_serdes(event: Any, ctx: DurableContext) -> Any:
    config = WaitForConditionConfig(
        wait_strategy=_poll_while(lambda s: len(s) < 2),
        initial_state="",
        serdes=EncodedStateSerDes(),
    )
    return ctx.wait_for_condition(lambda state, _: state + "x", config=config)


@case("6-12")
def wfc_then_step(event: Any, ctx: DurableContext) -> Any:
    final = _count_to(ctx, 0, event)
    return ctx.step(constant(final * 10), name="multiply")


@case("6-13")
def wfc_twice(event: Any, ctx: DurableContext) -> Any:
    first = _count_to(ctx, 0, 2)
    return _count_to(ctx, first, 4)
