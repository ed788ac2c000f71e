"""Fleet workers honour a pause: at the next checkpoint and between invocations."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig, StepSemantics
from test_pause_resume import store_url

from durable_ext.fleet import Worker
from durable_ext.runtime import Runtime

pytestmark = pytest.mark.integration

RELEASE = threading.Event()
ENTERED = threading.Event()
RAN: list[str] = []
AT_MOST_ONCE = StepConfig(step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY)
WAIT_S = 30.0


def first(_: StepContext) -> str:
    ENTERED.set()
    RELEASE.wait(WAIT_S)
    RAN.append("first")
    return "first"


@durable_execution
def gated(event: Any, ctx: DurableContext) -> Any:
    a = ctx.step(first, name="first", config=AT_MOST_ONCE)
    ctx.wait(Duration.from_seconds(int(event.get("gap", 1))), name="gap")
    b = ctx.step(lambda _: RAN.append("second") or "second", name="second")
    return [a, b]


@pytest.fixture(params=["redis", "dynamodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> str:
    return store_url(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
def worker(backend: str) -> Iterator[Worker]:
    RELEASE.clear()
    ENTERED.clear()
    RAN.clear()
    w = Worker(backend, lease_seconds=10, skew_margin=1, poll_interval=0.05)
    w.register("gated", gated)
    thread = threading.Thread(target=w.run, kwargs={"max_seconds": 90}, daemon=True)
    thread.start()
    yield w
    w.stop()
    thread.join(30)
    w.close()


def until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_a_worker_stops_at_the_next_checkpoint_and_runs_nothing_while_paused(
    worker: Worker, backend: str
) -> None:
    with Runtime(backend) as control:
        control.register("gated", gated)
        arn = control.start("gated", {})
        assert ENTERED.wait(WAIT_S)
        control.pause(arn, reason="downstream outage")
        assert control.describe(arn)["Status"] == "PAUSING"  # the step is still running
        RELEASE.set()
        until(lambda: control.describe(arn)["Status"] == "PAUSED")

        def kinds() -> list[str]:
            return [e["EventType"] for e in control.history(arn)["Events"]]

        until(lambda: "InvocationCompleted" in kinds())
        assert kinds()[-3:] == ["StepSucceeded", "ExecutionPaused", "InvocationCompleted"]
        assert RAN == ["first"]
        # nothing is due to invoke while paused: the worker claims nothing of it
        time.sleep(0.5)
        assert kinds().count("InvocationCompleted") == 1
        control.resume(arn)
        until(lambda: control.describe(arn)["Status"] == "SUCCEEDED")
        assert RAN == ["first", "second"]


def test_a_wait_ends_while_paused_and_the_worker_invokes_only_after_resume(
    worker: Worker, backend: str
) -> None:
    RELEASE.set()
    with Runtime(backend) as control:
        control.register("gated", gated)
        arn = control.start("gated", {"gap": 3})  # room to pause before the wait ends

        def kinds() -> list[str]:
            return [e["EventType"] for e in control.history(arn)["Events"]]

        until(lambda: "WaitStarted" in kinds() and "InvocationCompleted" in kinds())
        control.pause(arn)
        until(lambda: "WaitSucceeded" in kinds())  # the worker fires timers while paused
        time.sleep(0.5)
        assert control.describe(arn)["Status"] == "PAUSED"
        assert RAN == ["first"]
        assert kinds().count("InvocationCompleted") == 1
        control.resume(arn)
        until(lambda: control.describe(arn)["Status"] == "SUCCEEDED")
        assert RAN == ["first", "second"]
