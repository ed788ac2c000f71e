"""Handlers the fleet tests run in worker processes; every step body writes to a ledger.

The ledger (``$DURABLE_FLEET_LEDGER``) gets one line per run of a step body:
``<execution id> <step> <attempt> <pid>``, appended with O_APPEND so lines of concurrent
processes never interleave. The tests read it to prove which bodies ran how often.
"""

from __future__ import annotations

import os
import time
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig, StepSemantics
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryStrategyConfig,
    create_retry_strategy,
)

LEDGER_ENV = "DURABLE_FLEET_LEDGER"

AT_MOST_ONCE = StepConfig(
    step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY,
    retry_strategy=create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=30,
            initial_delay=Duration.from_seconds(1),
            max_delay=Duration.from_seconds(1),
            jitter_strategy=JitterStrategy.NONE,
        )
    ),
)


def note(exec_id: str, step: str, attempt: int) -> None:
    """Append one ledger line (a no-op when no ledger is configured)."""
    path = os.environ.get(LEDGER_ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{exec_id} {step} {attempt} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def read_ledger(path: str) -> list[tuple[str, str, int, int]]:
    """The ledger's lines as ``(execution id, step, attempt, pid)``."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as fh:
        for line in fh:
            exec_id, step, attempt, pid = line.split()
            out.append((exec_id, step, int(attempt), int(pid)))
    return out


def _body(exec_id: str, step: str, value: int, pause: float = 0.0) -> Any:
    def run(ctx: Any) -> int:
        note(exec_id, step, ctx.attempt)
        if pause:
            time.sleep(pause)
        return value

    return run


@durable_execution
def chain(event: dict[str, Any], ctx: DurableContext) -> dict[str, Any]:
    """Three steps around a durable wait; ``b`` runs at most once per attempt."""
    eid, pause = str(event["id"]), float(event.get("pause", 0.05))
    a = ctx.step(_body(eid, "a", 1, pause), name="a")
    ctx.wait(Duration.from_seconds(int(event.get("wait", 1))))
    b = ctx.step(_body(eid, "b", 10, pause), name="b", config=AT_MOST_ONCE)
    c = ctx.step(_body(eid, "c", 100, pause), name="c")
    return {"id": eid, "sum": a + b + c}


@durable_execution
def short(event: dict[str, Any], ctx: DurableContext) -> int:
    """One small step: the unit of the throughput benchmark."""
    return int(ctx.step(lambda _: int(event.get("n", 0)) * 2, name="double"))


@durable_execution
def slow(event: dict[str, Any], ctx: DurableContext) -> dict[str, Any]:
    """Steps longer than a lease: the invocation lives only if its lease is renewed."""
    eid, pause = str(event["id"]), float(event.get("pause", 2.0))
    a = ctx.step(_body(eid, "a", 1, pause), name="a", config=AT_MOST_ONCE)
    b = ctx.step(_body(eid, "b", 10, pause), name="b", config=AT_MOST_ONCE)
    return {"id": eid, "sum": a + b}


@durable_execution
def timers(event: dict[str, Any], ctx: DurableContext) -> dict[str, Any]:
    """A durable wait, a step retry delay, a callback timeout and a heartbeat timeout."""
    from aws_durable_execution_sdk_python.config import CallbackConfig
    from aws_durable_execution_sdk_python.exceptions import CallbackError

    eid = str(event["id"])
    ctx.wait(Duration.from_seconds(1), name="nap")

    def flaky(sctx: Any) -> int:
        note(eid, "flaky", sctx.attempt)
        if sctx.attempt < 2:
            raise RuntimeError("first attempt fails")
        return 5

    value = ctx.step(flaky, name="flaky", config=AT_MOST_ONCE)
    outcomes = []
    for name, cfg in (
        ("cb", CallbackConfig(timeout=Duration.from_seconds(1))),
        (
            "hb",
            CallbackConfig(
                timeout=Duration.from_seconds(30), heartbeat_timeout=Duration.from_seconds(1)
            ),
        ),
    ):
        cb = ctx.create_callback(name=name, config=cfg)
        try:
            cb.result()
            outcomes.append("answered")
        except CallbackError as exc:
            outcomes.append(type(exc).__name__)
    return {"id": eid, "value": value, "callbacks": outcomes}


@durable_execution
def forever(event: dict[str, Any], ctx: DurableContext) -> None:
    """Waits far longer than its execution timeout."""
    ctx.wait(Duration.from_seconds(3600), name="long")
