"""Durable handlers served by the HTTP API in the test_http* and test_lambda_backend* tests.

Importable by module path, so worker processes (``isolation="http"``) can load them. This
module holds no tests.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration
from aws_durable_execution_sdk_python.lambda_service import LambdaClient


@durable_execution
def adder(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """Two steps around a one-second wait."""
    a = context.step(lambda _: event["a"] + 1, name="inc")
    context.wait(Duration.from_seconds(1))
    b = context.step(lambda _: a * 2, name="double")
    return {"b": b}


@durable_execution
def approval(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """Wait for an outside answer through a callback."""
    answer = context.wait_for_callback(lambda _cid, _ctx: None, name="approve")
    return {"answer": answer}


@durable_execution
def failing(event: dict[str, Any], context: DurableContext) -> None:
    """End the execution with an error."""
    raise ValueError(f"refused: {event.get('why', 'no reason')}")


@durable_execution
def steps(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """``n`` steps, then report where it ran and which endpoint its SDK client used."""
    total = 0
    for i in range(int(event.get("n", 3))):
        total += context.step(lambda _, i=i: i, name=f"s{i}")
    client = LambdaClient._cached_boto_client
    return {
        "total": total,
        "pid": os.getpid(),
        "endpoint": client.meta.endpoint_url if client is not None else None,
        "durable_ext_env": sorted(k for k in os.environ if k.startswith("DURABLE_EXT_")),
        "path_head": sys.path[:3],
    }


@durable_execution
def crash_once(event: dict[str, Any], context: DurableContext) -> str:
    """Kill the worker process the first time (a marker file says it happened)."""
    context.step(lambda _: "before", name="before")
    marker = Path(event["marker"])
    if not marker.exists():
        marker.write_text("crashed")
        os._exit(17)
    return context.step(lambda _: "after", name="after")


@durable_execution
def callback_then_steps(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """A child context, a callback from outside, then a step (a longer history)."""
    first = context.run_in_child_context(
        lambda child: child.step(lambda _: "child-ok", name="inner"), name="child")
    answer = context.wait_for_callback(lambda _cid, _ctx: None, name="ask")
    last = context.step(lambda _: "done", name="last")
    return {"first": first, "answer": answer, "last": last}


@durable_execution
def sleeper(event: dict[str, Any], context: DurableContext) -> str:
    """Wait ``seconds`` (default one hour), then finish."""
    context.wait(Duration.from_seconds(int(event.get("seconds", 3600))))
    return "woke"


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A plain (non-durable) Lambda handler."""
    if event.get("fail"):
        raise KeyError("asked to fail")
    return {"echo": event}
