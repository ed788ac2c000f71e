"""Pause, resume and delete through the Runtime, on every store (memory, file, Redis, DynamoDB)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import (
    DurableContext,
    StepContext,
    durable_execution,
    durable_step,
)
from aws_durable_execution_sdk_python.config import (
    CallbackConfig,
    Duration,
    StepConfig,
    StepSemantics,
)

from durable_ext.backends._dynamodb_schema import create_table
from durable_ext.engine import DueKind
from durable_ext.errors import InvalidParameterValueError, NotFoundError, ResourceConflictError
from durable_ext.runtime import Runtime, VirtualClock

pytestmark = pytest.mark.integration

HOOKS: dict[str, Callable[[], None]] = {}
RAN: list[str] = []


@durable_step
def hooked(_: StepContext, label: str) -> str:
    hook = HOOKS.pop(label, None)
    if hook is not None:
        hook()
    RAN.append(label)
    return label


# Its START is checkpointed before the body runs, so a pause requested in the body takes
# effect at the step's SUCCEED: the next checkpoint is known.
AT_MOST_ONCE = StepConfig(step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY)


@durable_execution
def two_steps(event: Any, ctx: DurableContext) -> Any:
    a = ctx.step(hooked("one"), name="one", config=AT_MOST_ONCE)
    b = ctx.step(hooked("two"), name="two")
    return [a, b]


@durable_execution
def approval(event: Any, ctx: DurableContext) -> Any:
    cb = ctx.create_callback(
        name="approve", config=CallbackConfig(timeout=Duration.from_seconds(86400))
    )
    RAN.append("before-result")
    return {"answer": json.loads(cb.result())}


@durable_execution
def long_wait(event: Any, ctx: DurableContext) -> Any:
    ctx.wait(Duration.from_hours(1), name="an-hour")
    RAN.append("after-wait")
    return "woke"


def store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh store of ``kind``: memory, file, or on the session's Redis / moto / PostgreSQL."""
    if kind == "memory":
        return "memory://"
    if kind == "file":
        return f"file://{tmp_path / 'store'}"
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        return f"{server.url}?prefix=pr{uuid.uuid4().hex[:8]}:"
    if kind == "postgres":
        server = request.getfixturevalue("postgres_server")
        return f"{server.url}?schema=pr{uuid.uuid4().hex[:10]}&init=true"
    moto = request.getfixturevalue("moto_serial_server")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    table = moto.unique("pr")
    create_table(moto.client("dynamodb"), table)
    return f"dynamodb://{table}?region=us-east-1&endpoint_url={moto.endpoint_url}"


@pytest.fixture(params=["memory", "file", "redis", "dynamodb", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> str:
    return store_url(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
def rt(backend: str) -> Iterator[Runtime]:
    HOOKS.clear()
    RAN.clear()
    with Runtime(backend=backend, clock=VirtualClock()) as runtime:
        runtime.register("two-steps", two_steps)
        runtime.register("approval", approval)
        runtime.register("long-wait", long_wait)
        yield runtime


def types(rt: Runtime, arn: str) -> list[str]:
    return [e["EventType"] for e in rt.history(arn)["Events"]]


def invocations(rt: Runtime, arn: str) -> int:
    return types(rt, arn).count("InvocationCompleted")


def callback_id(rt: Runtime, arn: str) -> str:
    started = [e for e in rt.history(arn)["Events"] if e["EventType"] == "CallbackStarted"]
    return str(started[-1]["CallbackStartedDetails"]["CallbackId"])


# ---------------------------------------------------------------- pause


def test_pause_during_an_invocation_is_pausing_until_its_next_checkpoint(rt: Runtime) -> None:
    arn = rt.start("two-steps", {})
    seen: list[str] = []

    def pause_now() -> None:
        rt.pause(arn, reason="dependency degraded")
        seen.append(rt.describe(arn)["Status"])

    HOOKS["one"] = pause_now
    rt.run_until_idle(30)
    assert seen == ["PAUSING"]
    desc = rt.describe(arn)
    assert desc["Status"] == "PAUSED"
    assert desc["PauseDetails"]["Reason"] == "dependency degraded"
    assert desc["PauseDetails"]["ExecutionTimeoutPaused"] is True
    assert RAN == ["one"]  # the step that checkpointed is kept; nothing ran after it
    assert types(rt, arn) == ["ExecutionStarted", "StepStarted", "StepSucceeded",
                              "ExecutionPaused", "InvocationCompleted"]
    paused = rt.history(arn)["Events"][3]["ExecutionPausedDetails"]
    assert paused["Reason"]["Payload"] == "dependency degraded"
    assert paused["ExecutionTimeoutPaused"] is True
    assert rt.list_executions("two-steps", status="PAUSED")["DurableExecutions"][0][
        "DurableExecutionArn"] == arn

    rt.run_until_idle(5)  # nothing starts while paused
    assert RAN == ["one"] and invocations(rt, arn) == 1

    rt.resume(arn, reason="healthy again")
    rt.run_until_idle(30)
    desc = rt.describe(arn)
    assert desc["Status"] == "SUCCEEDED", desc
    assert json.loads(desc["Result"]) == ["one", "two"]
    assert RAN == ["one", "two"]  # step one was not run again
    events = types(rt, arn)
    assert events[5] == "ExecutionResumed"
    resumed = rt.history(arn)["Events"][5]["ExecutionResumedDetails"]
    assert resumed["Reason"]["Payload"] == "healthy again"
    assert "PauseDetails" not in desc


def test_resume_of_a_pausing_execution_calls_the_pause_off(rt: Runtime) -> None:
    arn = rt.start("two-steps", {})

    def pause_and_resume() -> None:
        rt.pause(arn)
        rt.resume(arn)
        assert rt.describe(arn)["Status"] == "RUNNING"

    HOOKS["one"] = pause_and_resume
    rt.run_until_idle(30)
    assert rt.describe(arn)["Status"] == "SUCCEEDED"
    assert RAN == ["one", "two"]
    assert invocations(rt, arn) == 1
    assert "ExecutionPaused" not in types(rt, arn)


def test_callbacks_complete_while_paused_and_resume_invokes(rt: Runtime) -> None:
    arn = rt.start("approval", {})
    rt.run_until_idle(30)
    assert rt.describe(arn)["Status"] == "RUNNING"
    before = invocations(rt, arn)
    rt.pause(arn)
    assert rt.describe(arn)["Status"] == "PAUSED"  # no invocation in flight: at once
    rt.send_callback_success(callback_id(rt, arn), json.dumps("yes"))
    rt.run_until_idle(5)
    assert rt.describe(arn)["Status"] == "PAUSED"
    assert "CallbackSucceeded" in types(rt, arn)
    assert invocations(rt, arn) == before  # completed, but nothing was invoked
    rt.resume(arn)
    rt.run_until_idle(30)
    desc = rt.describe(arn)
    assert desc["Status"] == "SUCCEEDED"
    assert json.loads(desc["Result"]) == {"answer": "yes"}


def test_waits_complete_while_paused(rt: Runtime) -> None:
    arn = rt.start("long-wait", {})
    rt.run_until_idle(30, max_advance=0)
    rt.pause(arn)
    rt.run_until_idle(30)  # the virtual clock jumps over the hour: the wait still ends
    assert rt.describe(arn)["Status"] == "PAUSED"
    assert "WaitSucceeded" in types(rt, arn)
    assert "after-wait" not in RAN
    rt.resume(arn)
    rt.run_until_idle(30)
    assert rt.describe(arn)["Status"] == "SUCCEEDED"
    assert types(rt, arn).index("WaitSucceeded") < types(rt, arn).index("ExecutionResumed")


def test_resume_with_nothing_completed_keeps_waiting(rt: Runtime) -> None:
    arn = rt.start("approval", {})
    rt.run_until_idle(30)
    before = invocations(rt, arn)
    rt.pause(arn)
    rt.resume(arn)
    rt.run_until_idle(5)
    assert rt.describe(arn)["Status"] == "RUNNING"
    assert invocations(rt, arn) == before
    assert types(rt, arn)[-2:] == ["ExecutionPaused", "ExecutionResumed"]
    rt.send_callback_success(callback_id(rt, arn), '"later"')
    rt.run_until_idle(30)
    assert rt.describe(arn)["Status"] == "SUCCEEDED"


def test_a_paused_timeout_is_extended_by_the_time_spent_paused(rt: Runtime) -> None:
    arn = rt.start("approval", {}, execution_timeout=60)
    rt.run_until_idle(30, max_advance=10)
    start = rt.describe(arn)["StartTimestamp"]
    rt.pause(arn)
    desc = rt.describe(arn)
    assert (desc["ExpectedExecutionTimeoutTimestamp"] - start).days == 366
    rt.run_until_idle(30, max_advance=120)
    assert rt.describe(arn)["Status"] == "PAUSED"  # past its 60 s, but its timeout is paused
    rt.resume(arn)
    desc = rt.describe(arn)
    # 60 s plus the 120 s spent paused
    assert (desc["ExpectedExecutionTimeoutTimestamp"] - start).total_seconds() == 180
    rt.run_until_idle(30, max_advance=49)
    assert rt.describe(arn)["Status"] == "RUNNING"
    rt.run_until_idle(30, max_advance=2)
    desc = rt.describe(arn)
    assert desc["Status"] == "TIMED_OUT"
    assert desc["Error"]["ErrorMessage"] == "Execution timed out after 60 seconds."


def test_a_pause_without_its_timeout_paused_times_out_while_paused(rt: Runtime) -> None:
    arn = rt.start("approval", {}, execution_timeout=60)
    rt.run_until_idle(30, max_advance=0)
    rt.pause(arn, execution_timeout_paused=False)
    assert rt.describe(arn)["PauseDetails"]["ExecutionTimeoutPaused"] is False
    rt.run_until_idle(30, max_advance=61)
    desc = rt.describe(arn)
    assert desc["Status"] == "TIMED_OUT"
    assert "PauseDetails" not in desc
    assert types(rt, arn)[-1] == "ExecutionTimedOut"


def test_requests_the_status_refuses_are_resource_conflicts(rt: Runtime) -> None:
    arn = rt.start("approval", {})
    rt.run_until_idle(30)
    with pytest.raises(ResourceConflictError, match="RUNNING"):
        rt.resume(arn)
    rt.pause(arn)
    with pytest.raises(ResourceConflictError, match="PAUSED"):
        rt.pause(arn)
    rt.stop(arn)  # a paused execution can be stopped
    assert rt.describe(arn)["Status"] == "STOPPED"
    with pytest.raises(ResourceConflictError, match="STOPPED"):
        rt.pause(arn)
    with pytest.raises(ResourceConflictError, match="STOPPED"):
        rt.resume(arn)
    with pytest.raises(NotFoundError):
        rt.pause(arn.rsplit("/", 1)[0] + "/nope")


def test_client_tokens_make_repeats_no_ops(rt: Runtime) -> None:
    arn = rt.start("approval", {})
    rt.run_until_idle(30)
    rt.pause(arn, reason="r", client_token="tok-1")
    rt.pause(arn, reason="r", client_token="tok-1")  # a repeat: no error, nothing new
    assert types(rt, arn).count("ExecutionPaused") == 1
    with pytest.raises(InvalidParameterValueError, match="different parameters"):
        rt.pause(arn, reason="other", client_token="tok-1")
    with pytest.raises(ResourceConflictError):
        rt.pause(arn, reason="r", client_token="tok-2")
    rt.resume(arn, client_token="tok-3")
    rt.resume(arn, client_token="tok-3")
    assert types(rt, arn).count("ExecutionResumed") == 1
    with pytest.raises(InvalidParameterValueError, match="ClientToken"):
        rt.pause(arn, client_token="bad token with spaces")
    with pytest.raises(InvalidParameterValueError, match="1024"):
        rt.pause(arn, reason="x" * 1025)


def test_an_invocation_that_crashes_while_paused_runs_again_after_the_resume(
    rt: Runtime,
) -> None:
    arn = rt.start("two-steps", {})

    def pause_then_crash() -> None:
        rt.pause(arn)
        raise SystemExit("the runtime went away")  # not an error of the step

    HOOKS["one"] = pause_then_crash
    with pytest.raises(SystemExit):
        rt.run_until_idle(30)
    # the invocation is lost; its lease is this runtime's own, so it is recovered now
    rt.run_until_idle(30)
    assert rt.describe(arn)["Status"] == "PAUSED"
    assert RAN == []
    rt.resume(arn)
    rt.run_until_idle(30)
    assert rt.describe(arn)["Status"] == "SUCCEEDED"
    assert RAN == ["one", "two"]


# ---------------------------------------------------------------- delete


def test_delete_only_of_ended_executions_then_everything_is_gone(rt: Runtime) -> None:
    arn = rt.start("approval", {}, name="order-7")
    rt.run_until_idle(30)
    with pytest.raises(ResourceConflictError, match="RUNNING"):
        rt.delete(arn)
    rt.pause(arn)
    with pytest.raises(ResourceConflictError, match="PAUSED"):
        rt.delete(arn)
    rt.resume(arn)
    rt.send_callback_success(callback_id(rt, arn), '"ok"')
    rt.run_until_idle(30)
    assert rt.describe(arn)["Status"] == "SUCCEEDED"

    out = rt.delete(arn)
    assert out["DeletionRequestTimestamp"].tzinfo is not None
    for read in (rt.describe, rt.history):
        with pytest.raises(NotFoundError):
            read(arn)
    assert arn not in [e["DurableExecutionArn"]
                       for e in rt.list_executions("approval")["DurableExecutions"]]
    assert not [d for d in rt.store.due(None) if d.arn == arn]
    with pytest.raises(NotFoundError):
        rt.delete(arn)
    # the name is free again: a new execution, not the deleted one
    again = rt.start("approval", {}, name="order-7")
    assert again != arn
    assert rt.describe(again)["Status"] == "RUNNING"


def test_a_deletion_cut_short_is_finished_by_any_runtime(rt: Runtime, backend: str) -> None:
    arn = rt.start("two-steps", {})
    rt.run_until_idle(30)
    real_delete = rt.store.delete
    calls: list[str] = []

    def dies(target: str) -> bool:
        calls.append(target)
        raise KeyboardInterrupt("the process died before the store removed it")

    rt.store.delete = dies  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        rt.delete(arn)
    rt.store.delete = real_delete  # type: ignore[method-assign]
    assert calls == [arn]
    assert rt.describe(arn)["Status"] == "DELETING"
    with pytest.raises(ResourceConflictError):
        rt.pause(arn)
    assert [d.kind for d in rt.store.due(None) if d.arn == arn] == [DueKind.DELETE]
    with Runtime(backend=rt.store, clock=VirtualClock()) as other:
        other.register("two-steps", two_steps)
        other.run_until_idle(30)
    with pytest.raises(NotFoundError):
        rt.describe(arn)
