"""Handlers for the ``wait`` cases (2-x)."""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python.config import Duration
from aws_durable_execution_sdk_python.context import DurableContext

from conformance.handlers._registry import case


@case("2-1")
def wait_basic(event: Any, ctx: DurableContext) -> None:
    ctx.wait(Duration.from_seconds(2))


@case("2-2")
def wait_named(event: Any, ctx: DurableContext) -> None:
    ctx.wait(Duration.from_seconds(2), name="custom_wait_name")


@case("2-3")
def wait_sequential(event: Any, ctx: DurableContext) -> dict[str, int]:
    ctx.wait(Duration.from_seconds(2), name="wait-1")
    ctx.wait(Duration.from_seconds(2), name="wait-2")
    return {"completedWaits": 2}


@case("2-4")
def wait_minutes(event: Any, ctx: DurableContext) -> None:
    ctx.wait(Duration.from_minutes(1))


@case("2-5")
def wait_hours(event: Any, ctx: DurableContext) -> None:
    ctx.wait(Duration.from_hours(1))
