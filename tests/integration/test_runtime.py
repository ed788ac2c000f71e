"""The runtime driving real SDK handlers on memory and file stores."""

from __future__ import annotations

import json
import os
import random
import time
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
    WaitForCallbackConfig,
)
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryStrategyConfig,
    create_retry_strategy,
)
from aws_durable_execution_sdk_python.waits import (
    WaitForConditionConfig,
    WaitForConditionDecision,
)

import durable_ext
from durable_ext.backends.memory import MemoryStore
from durable_ext.errors import ConfigError, StoreUnavailableError
from durable_ext.runtime import ExecutionAlreadyStartedError, Runtime, VirtualClock

NO_JITTER_RETRY = create_retry_strategy(
    RetryStrategyConfig(
        max_attempts=3, initial_delay=Duration.from_seconds(30), jitter_strategy=JitterStrategy.NONE
    )
)


@durable_step
def add(_: StepContext, a: int, b: int) -> int:
    return a + b


@durable_step
def fail_first(step: StepContext, label: str) -> str:
    if step.attempt < 2:
        raise RuntimeError(f"{label} attempt {step.attempt} fails")
    return f"{label} ok on {step.attempt}"


@durable_step
def always_fail(_: StepContext) -> str:
    raise ValueError("nope")


@durable_execution
def steps_handler(event: dict[str, Any], ctx: DurableContext) -> dict[str, Any]:
    a = ctx.step(add(event["a"], 1), name="first")
    b = ctx.step(add(a, 10), name="second", config=StepConfig(serdes=durable_ext.serdes("msgpack")))
    r = ctx.step(fail_first("pay"), name="retry", config=StepConfig(retry_strategy=NO_JITTER_RETRY))
    ctx.wait(Duration.from_hours(1), name="an-hour")
    return {"a": a, "b": b, "r": r}


@durable_execution
def failing_handler(event: Any, ctx: DurableContext) -> str:
    return ctx.step(
        always_fail(),
        name="bad",
        config=StepConfig(
            retry_strategy=create_retry_strategy(
                RetryStrategyConfig(max_attempts=2, jitter_strategy=JitterStrategy.NONE)
            )
        ),
    )


@durable_execution
def callback_handler(event: Any, ctx: DurableContext) -> Any:
    cb = ctx.create_callback(
        name="approve",
        config=CallbackConfig(
            timeout=Duration.from_seconds(600), heartbeat_timeout=Duration.from_seconds(60)
        ),
    )
    return {"answer": json.loads(cb.result())}


@durable_execution
def wait_for_callback_handler(event: Any, ctx: DurableContext) -> Any:
    def submit(callback_id: str, _ctx: Any) -> None:
        Path(event["drop"]).write_text(callback_id)

    return ctx.wait_for_callback(
        submit, name="external", config=WaitForCallbackConfig(timeout=Duration.from_seconds(300))
    )


@durable_execution
def echo_child(event: Any, ctx: DurableContext) -> Any:
    ctx.wait(Duration.from_seconds(5), name="child-wait")
    return {"echo": event}


def plain_target(event: Any, context: Any) -> Any:
    if event.get("fail"):
        raise KeyError("missing thing")
    return {"plain": event["v"] * 2}


@durable_execution
def invoke_handler(event: Any, ctx: DurableContext) -> Any:
    d = ctx.invoke("echo", {"x": 1}, name="durable-target")
    p = ctx.invoke("plain", {"v": 21}, name="plain-target")
    try:
        ctx.invoke("plain", {"fail": True}, name="failing-target")
        failed = None
    except Exception as exc:  # the SDK raises InvokeError
        failed = type(exc).__name__
    return {"durable": d, "plain": p, "failed": failed}


@durable_execution
def fanout_handler(event: Any, ctx: DurableContext) -> Any:
    def item(c: DurableContext, x: int, _i: int, _all: Any) -> int:
        c.wait(Duration.from_seconds(x), name=f"w{x}")
        return c.step(add(x, 100))

    mapped = ctx.map(event["items"], item, name="map").get_results()
    par = ctx.parallel(
        [lambda c: c.step(add(1, 1)), lambda c: c.step(add(2, 2))], name="par"
    ).get_results()
    return {"map": mapped, "par": par}


@durable_execution
def condition_handler(event: Any, ctx: DurableContext) -> Any:
    def check(state: int, _c: Any) -> int:
        return state + 1

    def strategy(state: int, attempts: int) -> WaitForConditionDecision:
        if state >= 3:
            return WaitForConditionDecision.stop_polling()
        return WaitForConditionDecision.continue_waiting(Duration.from_seconds(10))

    return ctx.wait_for_condition(
        check, WaitForConditionConfig(wait_strategy=strategy, initial_state=0), name="poll"
    )


@durable_execution
def sleepy_handler(event: Any, ctx: DurableContext) -> Any:
    ctx.wait(Duration.from_days(3), name="long")
    return "woke"


MARKS = Path(os.environ.get("DX_TEST_MARKS", "/tmp"))


@durable_step
def crash_once(step: StepContext, marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.write_text("x")
        os._exit(17)
    return "survived"


@durable_execution
def crashing_handler(event: Any, ctx: DurableContext) -> Any:
    a = ctx.step(add(1, 2), name="before")
    b = ctx.step(crash_once(event["marker"]), name="crashy")
    return {"a": a, "b": b}


@durable_step
def at_most_once_crash(step: StepContext, marker: str) -> str:
    Path(marker).write_text(Path(marker).read_text() + "x" if Path(marker).exists() else "x")
    os._exit(9)


@durable_execution
def at_most_once_handler(event: Any, ctx: DurableContext) -> Any:
    return ctx.step(
        at_most_once_crash(event["marker"]),
        name="once",
        config=StepConfig(
            step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY,
            retry_strategy=create_retry_strategy(RetryStrategyConfig(max_attempts=1)),
        ),
    )


# ---------------------------------------------------------------- fixtures


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"file://{tmp_path / 'store'}"


@pytest.fixture
def rt(backend: str) -> Any:
    with Runtime(backend=backend, clock=VirtualClock()) as runtime:
        yield runtime


def types(rt: Runtime, arn: str) -> list[str]:
    return [e["EventType"] for e in rt.history(arn)["Events"]]


# ---------------------------------------------------------------- tests


def test_steps_retry_and_long_wait_are_instant(rt: Runtime) -> None:
    rt.register("steps", steps_handler)
    start = rt.clock.now_ms()
    out = rt.run("steps", {"a": 1})
    assert out["Status"] == "SUCCEEDED"
    assert json.loads(out["Result"]) == {"a": 2, "b": 12, "r": "pay ok on 2"}
    # The modelled durations are kept: 30 s retry delay + 1 hour wait.
    assert rt.clock.now_ms() - start >= (3600 + 30) * 1000
    ev = rt.history(out["DurableExecutionArn"])["Events"]
    assert [e["EventType"] for e in ev].count("InvocationCompleted") == 3
    failed = next(e for e in ev if e["EventType"] == "StepFailed")
    assert failed["StepFailedDetails"]["RetryDetails"] == {
        "CurrentAttempt": 1,
        "NextAttemptDelaySeconds": 30,
    }
    assert ev[-1]["EventType"] == "ExecutionSucceeded"
    assert ev[-2]["EventType"] == "InvocationCompleted"


def test_failing_step_fails_the_execution(rt: Runtime) -> None:
    rt.register("failing", failing_handler)
    out = rt.run("failing")
    assert out["Status"] == "FAILED"
    assert "nope" in out["Error"]["ErrorMessage"]
    assert types(rt, out["DurableExecutionArn"])[-1] == "ExecutionFailed"


def test_callback_success_and_failure(rt: Runtime) -> None:
    rt.register("cb", callback_handler)
    arn = rt.start("cb", name="c-ok")
    rt.run_until_idle()
    assert rt.describe(arn)["Status"] == "RUNNING"
    started = next(e for e in rt.history(arn)["Events"] if e["EventType"] == "CallbackStarted")
    cb_id = started["CallbackStartedDetails"]["CallbackId"]
    rt.send_callback_heartbeat(cb_id)
    rt.send_callback_success(cb_id, json.dumps({"ok": True}).encode())
    rt.run_until_idle()
    assert json.loads(rt.describe(arn)["Result"]) == {"answer": {"ok": True}}

    arn2 = rt.start("cb", name="c-fail")
    rt.run_until_idle()
    cb2 = next(e for e in rt.history(arn2)["Events"] if e["EventType"] == "CallbackStarted")
    rt.send_callback_failure(
        cb2["CallbackStartedDetails"]["CallbackId"],
        {"ErrorType": "Rejected", "ErrorMessage": "no way"},
    )
    rt.run_until_idle()
    d = rt.describe(arn2)
    assert d["Status"] == "FAILED"
    assert "no way" in json.dumps(d["Error"])


def test_callback_heartbeat_timeout_with_bounded_advance(rt: Runtime) -> None:
    rt.register("cb", callback_handler)
    arn = rt.start("cb")
    rt.run_until_idle(max_advance=0)
    rt.run_until_idle(max_advance=59)
    assert rt.describe(arn)["Status"] == "RUNNING"
    rt.run_until_idle(max_advance=2)
    assert rt.describe(arn)["Status"] == "FAILED"
    timed = next(e for e in rt.history(arn)["Events"] if e["EventType"] == "CallbackTimedOut")
    assert timed["CallbackTimedOutDetails"]["Error"]["Payload"]["ErrorType"] == "Callback.Heartbeat"


def test_bounded_advance_moves_the_clock_exactly(rt: Runtime) -> None:
    rt.register("sleepy", sleepy_handler)
    arn = rt.start("sleepy")
    t0 = rt.clock.now_ms()
    rt.run_until_idle(max_advance=10)
    assert rt.clock.now_ms() == t0 + 10_000
    assert rt.describe(arn)["Status"] == "RUNNING"
    rt.run_until_idle()
    assert rt.describe(arn)["Status"] == "SUCCEEDED"


def test_wait_for_callback(rt: Runtime, tmp_path: Path) -> None:
    rt.register("wfc", wait_for_callback_handler)
    drop = tmp_path / "cb-id"
    arn = rt.start("wfc", {"drop": str(drop)})
    rt.run_until_idle()
    rt.send_callback_success(drop.read_text(), b'"done"')
    rt.run_until_idle()
    # The callback result is the raw string the sender gave; the handler returns it as is.
    assert json.loads(rt.describe(arn)["Result"]) == '"done"'


def test_chained_invokes(rt: Runtime) -> None:
    rt.register("caller", invoke_handler)
    rt.register("echo", echo_child)
    rt.register("plain", plain_target, durable=False)
    out = rt.run("caller")
    assert out["Status"] == "SUCCEEDED", out
    assert json.loads(out["Result"]) == {
        "durable": {"echo": {"x": 1}},
        "plain": {"plain": 42},
        "failed": "InvokeError",
    }
    ev = rt.history(out["DurableExecutionArn"])["Events"]
    started = next(e for e in ev if e["EventType"] == "ChainedInvokeStarted")
    child_arn = started["ChainedInvokeStartedDetails"]["DurableExecutionArn"]
    assert rt.describe(child_arn)["Status"] == "SUCCEEDED"
    assert "ChainedInvokeFailed" in [e["EventType"] for e in ev]
    assert len(rt.list_executions(function_name="echo")["DurableExecutions"]) == 1


def test_map_and_parallel_with_waits(rt: Runtime) -> None:
    rt.register("fan", fanout_handler)
    out = rt.run("fan", {"items": [3, 1, 2]})
    assert out["Status"] == "SUCCEEDED", out
    assert json.loads(out["Result"]) == {"map": [103, 101, 102], "par": [2, 4]}


def test_wait_for_condition(rt: Runtime) -> None:
    rt.register("cond", condition_handler)
    out = rt.run("cond")
    assert out["Status"] == "SUCCEEDED", out
    assert json.loads(out["Result"]) == 3
    ev = rt.history(out["DurableExecutionArn"])["Events"]
    polls = [e for e in ev if e["EventType"] == "StepSucceeded"]
    assert [p["StepSucceededDetails"]["Result"]["Payload"] for p in polls] == ["1", "2", "3"]


def test_stop_a_waiting_execution(rt: Runtime) -> None:
    rt.register("sleepy", sleepy_handler)
    arn = rt.start("sleepy")
    rt.run_until_idle(max_advance=0)
    rt.stop(arn, {"ErrorMessage": "enough"})
    rt.run_until_idle()
    d = rt.describe(arn)
    assert d["Status"] == "STOPPED" and d["Error"] == {"ErrorMessage": "enough"}
    assert types(rt, arn)[-1] == "ExecutionStopped"


def test_execution_timeout(rt: Runtime) -> None:
    rt.register("sleepy", sleepy_handler)
    arn = rt.start("sleepy", execution_timeout=60)
    rt.run_until_idle(max_advance=61)
    d = rt.describe(arn)
    assert d["Status"] == "TIMED_OUT"
    assert types(rt, arn)[-1] == "ExecutionTimedOut"


def test_name_idempotency(rt: Runtime) -> None:
    rt.register("steps", steps_handler)
    a = rt.start("steps", {"a": 1}, name="same")
    assert rt.start("steps", {"a": 1}, name="same") == a
    assert rt.start("steps", '{"a": 1}', name="same") == a
    with pytest.raises(ExecutionAlreadyStartedError):
        rt.start("steps", {"a": 2}, name="same")


def test_restart_resumes_a_waiting_execution_from_the_file_store(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    clock = VirtualClock()
    with Runtime(backend=url, clock=clock) as first:
        first.register("sleepy", sleepy_handler)
        arn = first.start("sleepy", name="resume-me")
        first.run_until_idle(max_advance=0)
        assert first.describe(arn)["Status"] == "RUNNING"
    later = VirtualClock(start_ms=clock.now_ms() + 3 * 86400 * 1000)
    with Runtime(backend=url, clock=later) as second:
        second.register("sleepy", sleepy_handler)
        second.run_until_idle(max_advance=0)
        d = second.describe(arn)
        assert d["Status"] == "SUCCEEDED" and json.loads(d["Result"]) == "woke"


DEAD_RUNTIME = """
import os, sys, time
from durable_ext.runtime import Runtime
rt = Runtime(backend=sys.argv[1])
rt.marks.hold(rt.owner)
inv = rt.engine.begin_invocation(sys.argv[2], owner=rt.owner, pid=os.getpid(), host=rt.host)
print(inv.invocation_id, flush=True)
time.sleep(600)
"""


def test_lost_invocation_of_a_dead_runtime_is_recovered_at_once(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    url = f"file://{tmp_path / 'store'}"
    with Runtime(backend=url, clock=VirtualClock()) as rt:
        rt.register("steps", steps_handler)
        arn = rt.start("steps", {"a": 1})
    # A runtime process that opened an invocation and was killed: its mark is unlocked,
    # which proves it gone long before its lease (16 minutes) expires.
    child = subprocess.Popen([sys.executable, "-c", DEAD_RUNTIME, url, arn],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    with Runtime(backend=url, clock=VirtualClock()) as rt2:
        rt2.register("steps", steps_handler)
        rt2.run_until_idle(timeout=30)
        assert rt2.describe(arn)["Status"] == "SUCCEEDED"
        assert rt2.stats.takeovers == 1
        first_inv = next(
            e for e in rt2.history(arn)["Events"] if e["EventType"] == "InvocationCompleted"
        )
        assert (
            first_inv["InvocationCompletedDetails"]["Error"]["Payload"]["ErrorType"]
            == "Runtime.ExitError"
        )


class _Wall:
    def __init__(self) -> None:
        self.ms = int(time.time() * 1000)

    def now_ms(self) -> int:
        return self.ms

    def sleep_until(self, due_ms: int, max_seconds: float) -> None:
        time.sleep(0)


def test_a_fresh_lease_of_another_namespace_is_not_taken_over_until_it_expires(
    tmp_path: Path,
) -> None:
    url = f"file://{tmp_path / 'store'}"
    wall = _Wall()
    with Runtime(backend=url, clock=VirtualClock(), wall_clock=wall, lease_seconds=60) as rt:
        rt.register("steps", steps_handler)
        arn = rt.start("steps", {"a": 1})
        # Same host name, a pid that does not exist here: a live runtime in another PID
        # namespace (a container) looks exactly like this. Neither proves it gone.
        inv = rt.engine.begin_invocation(arn, owner="elsewhere#1", pid=4194305, host=rt.host)
        assert inv is not None
        assert rt.recover_leases() == 0
        rt.run_until_idle(timeout=2)
        assert rt.describe(arn)["Status"] == "RUNNING" and rt.stats.takeovers == 0
        wall.ms += 61_000  # the lease expired
        rt.run_until_idle(timeout=30)
        assert rt.describe(arn)["Status"] == "SUCCEEDED" and rt.stats.takeovers == 1


def test_process_isolation_survives_a_crash(tmp_path: Path) -> None:
    with Runtime(
        backend=f"file://{tmp_path / 'store'}", clock=VirtualClock(), isolation="process"
    ) as rt:
        rt.register("crashing", crashing_handler)
        out = rt.run("crashing", {"marker": str(tmp_path / "crashed")})
        assert out["Status"] == "SUCCEEDED", out
        assert json.loads(out["Result"]) == {"a": 3, "b": "survived"}
        ev = rt.history(out["DurableExecutionArn"])["Events"]
        crash = next(e for e in ev if e["EventType"] == "InvocationCompleted")
        err = crash["InvocationCompletedDetails"]["Error"]["Payload"]
        assert err["ErrorType"] == "Runtime.ExitError" and "exit status 17" in err["ErrorMessage"]
        # The step before the crash was not re-run: one StepSucceeded for "before".
        assert [e.get("Name") for e in ev if e["EventType"] == "StepSucceeded"] == [
            "before",
            "crashy",
        ]


def test_at_most_once_step_is_not_rerun_after_a_crash(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with Runtime(
        backend=f"file://{tmp_path / 'store'}", clock=VirtualClock(), isolation="process"
    ) as rt:
        rt.register("amo", at_most_once_handler)
        out = rt.run("amo", {"marker": str(marker)})
    assert out["Status"] == "FAILED"
    assert marker.read_text() == "x"  # ran exactly once


def test_unregistered_function_is_refused(rt: Runtime) -> None:
    with pytest.raises(durable_ext.errors.ConfigError, match="not registered"):
        rt.start("ghost")


class FlakyStore(MemoryStore):
    """A real MemoryStore whose commits fail transiently, at random (seeded)."""

    def __init__(self, seed: int, rate: float) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.rate = rate
        self.failures = 0

    def commit(self, batch: Any) -> None:
        if self.rng.random() < self.rate:
            self.failures += 1
            raise StoreUnavailableError("store briefly unreachable")
        super().commit(batch)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_transient_store_outages_are_survived(seed: int) -> None:
    store = FlakyStore(seed, rate=0.2)
    with Runtime(backend=store, clock=VirtualClock(), max_invocation_failures=100) as rt:
        rt.register("steps", steps_handler)
        arn = rt.start("steps", {"a": 1})
        rt.run_until_idle(timeout=60)
        d = rt.describe(arn)
    assert store.failures > 0
    assert d["Status"] == "SUCCEEDED", d.get("Error")
    assert json.loads(d["Result"]) == {"a": 2, "b": 12, "r": "pay ok on 2"}


# ---------------------------------------------------------------- public per-entry step


def test_handle_runs_one_due_entry() -> None:
    with Runtime(MemoryStore(), clock=VirtualClock()) as rt:
        rt.register("steps", steps_handler)
        arn = rt.start("steps", {"a": 1, "b": 2})
        (entry,) = rt.store.due(rt.clock.now_ms(), kinds=["invoke"])
        assert entry.arn == arn
        rt.handle(entry)
        kinds = [e["EventType"] for e in rt.history(arn)["Events"]]
        assert kinds.count("InvocationCompleted") == 1 and "StepSucceeded" in kinds
        # the step retry's delay is the next thing due; nothing asks to invoke now
        (wake,) = rt.store.due(None, arn=arn, kinds=["wake"])
        assert rt.store.due(None, arn=arn, kinds=["invoke"]) == []
        rt.clock.sleep_until(wake.due_ms, 1)
        rt.handle(wake)  # the retry becomes READY and asks for an invocation
        assert [e.kind for e in rt.store.due(rt.clock.now_ms(), arn=arn, kinds=["invoke"])] == [
            "invoke"
        ]


# ---------------------------------------------------------------- backends a Runtime refuses


def test_lambda_url_is_refused_as_a_control_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"lambda:// is the control plane .*open_control_plane"):
        Runtime("lambda://orders?region=us-east-1")
    monkeypatch.setenv("DURABLE_EXT_BACKEND", "LAMBDA://Orders:live")
    with pytest.raises(ConfigError, match="lambda:// is the control plane"):
        Runtime()


def test_an_object_that_is_no_store_is_refused() -> None:
    class NotAStore:
        def describe(self, arn: str) -> dict[str, Any]:
            return {}

    with pytest.raises(ConfigError, match="NotAStore is not a checkpoint store"):
        Runtime(NotAStore())  # type: ignore[arg-type]


# ---------------------------------------------------------------- handler references


class _Wrapped:
    """A handler wrapper that runs the real handler elsewhere and names it by ``.path``."""

    path = f"{__name__}:steps_handler"

    def __call__(self, event: Any, context: Any) -> Any:
        return steps_handler(event, context)


def test_start_records_the_path_a_wrapper_declares() -> None:
    with Runtime(MemoryStore(), clock=VirtualClock()) as rt:
        rt.register("steps", _Wrapped())
        arn = rt.start("steps", {"a": 1, "b": 2})
        assert rt.engine.attributes(arn) == {"handler": _Wrapped.path}
        rt.run_until_idle(10)
        assert rt.describe(arn)["Status"] == "SUCCEEDED"
