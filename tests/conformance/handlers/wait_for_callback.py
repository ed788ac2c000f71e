"""Handlers for the ``wait_for_callback`` cases (7-x)."""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python.config import Duration, WaitForCallbackConfig
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.exceptions import CallbackError
from aws_durable_execution_sdk_python.serdes import JsonSerDes
from aws_durable_execution_sdk_python.types import WaitForCallbackContext

from conformance.handlers._common import constant, fixed_retry
from conformance.handlers._registry import case


def register_callback(callback_id: str, wfc_ctx: WaitForCallbackContext) -> None:
    """Submitter: would hand the id to an external system; nothing durable happens here."""


def _failing_submitter(callback_id: str, wfc_ctx: WaitForCallbackContext) -> None:
    raise RuntimeError("submitter could not reach the external system")


@case("7-1")
def wfcb_basic(event: Any, ctx: DurableContext) -> Any:
    return ctx.wait_for_callback(register_callback, name=event)


@case("7-2")
def wfcb_static_name(event: Any, ctx: DurableContext) -> Any:
    return ctx.wait_for_callback(register_callback, name="approval")


@case("7-3")
def wfcb_anonymous(event: Any, ctx: DurableContext) -> Any:
    # An inline lambda carries no name, so the operation has none.
    return ctx.wait_for_callback(lambda callback_id, wfc_ctx: None)


@case("7-4")
def wfcb_failure(event: Any, ctx: DurableContext) -> Any:
    return ctx.wait_for_callback(register_callback, name=event)


@case("7-5")
def wfcb_timeout(event: Any, ctx: DurableContext) -> Any:
    config = WaitForCallbackConfig(timeout=Duration.from_seconds(3))
    return ctx.wait_for_callback(register_callback, name=event, config=config)


@case("7-6")
def wfcb_failure_caught(event: Any, ctx: DurableContext) -> Any:
    try:
        return ctx.wait_for_callback(register_callback, name=event)
    except CallbackError:
        return "recovered"


@case("7-7")
def wfcb_submitter_fails(event: Any, ctx: DurableContext) -> Any:
    config = WaitForCallbackConfig(retry_strategy=fixed_retry(2))
    return ctx.wait_for_callback(_failing_submitter, name=event, config=config)


@case("7-8")
def wfcb_in_child(event: Any, ctx: DurableContext) -> Any:
    return ctx.run_in_child_context(
        lambda c: c.wait_for_callback(register_callback, name=event), name="wrapper"
    )


@case("7-9")
def wfcb_twice(event: Any, ctx: DurableContext) -> Any:
    ctx.wait_for_callback(register_callback, name="first")
    return ctx.wait_for_callback(register_callback, name="second")


@case("7-10")
def wfcb_after_wait_and_step(event: Any, ctx: DurableContext) -> Any:
    ctx.wait(Duration.from_seconds(1))
    ctx.step(constant({"fixed": "data"}), name="fixed_data")
    return ctx.wait_for_callback(register_callback, name=event)


@case("7-11")
def wfcb_json_result(event: Any, ctx: DurableContext) -> Any:
    config = WaitForCallbackConfig(serdes=JsonSerDes())
    result = ctx.wait_for_callback(register_callback, name=event, config=config)
    return result["status"]


@case("7-12")
def wfcb_heartbeat_timeout(event: Any, ctx: DurableContext) -> Any:
    config = WaitForCallbackConfig(heartbeat_timeout=Duration.from_seconds(5))
    return ctx.wait_for_callback(register_callback, name=event, config=config)


@case("7-13")
def wfcb_heartbeat_then_success(event: Any, ctx: DurableContext) -> Any:
    config = WaitForCallbackConfig(heartbeat_timeout=Duration.from_seconds(10))
    return ctx.wait_for_callback(register_callback, name=event, config=config)


@case("7-14")
def wfcb_timeout_caught(event: Any, ctx: DurableContext) -> Any:
    config = WaitForCallbackConfig(timeout=Duration.from_seconds(3))
    try:
        return ctx.wait_for_callback(register_callback, name=event, config=config)
    except CallbackError:
        return "timed-out-handled"


@case("7-15")
def wfcb_empty_success(event: Any, ctx: DurableContext) -> Any:
    return ctx.wait_for_callback(register_callback, name=event)
