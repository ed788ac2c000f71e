"""Crash safety: SIGKILL at random points, resume from the file store.

Two loops, each bounded in count and in time:

* the whole runtime process is killed at a random moment and a new one resumes the
  execution from the file store (lease recovery, torn journal tails, name claims);
* with ``isolation="process"`` the per-invocation worker is killed while the runtime
  keeps going.

Invariants checked for every execution:

* it completes (SUCCEEDED, with the deterministic result);
* no completed step is lost: a step whose output some later step already consumed is
  never re-run with a different output (the side-effect log proves it);
* no AT_MOST_ONCE step runs twice for the same attempt.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import (
    DurableContext,
    StepContext,
    durable_execution,
    durable_step,
)
from aws_durable_execution_sdk_python.config import Duration, StepConfig, StepSemantics
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryStrategyConfig,
    create_retry_strategy,
)

from durable_ext.backends.file import FileStore
from durable_ext.runtime import Runtime

STEPS = 8
AT_MOST_ONCE = {2, 5}
RETRY = create_retry_strategy(
    RetryStrategyConfig(
        max_attempts=50,
        initial_delay=Duration.from_seconds(1),
        max_delay=Duration.from_seconds(1),
        jitter_strategy=JitterStrategy.NONE,
    )
)


def _log(path: str, record: dict[str, Any]) -> None:
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


@durable_step
def link(step: StepContext, log: str, index: int, prev: str) -> str:
    # A fresh random output per run: a lost checkpoint would show up as a second output
    # for a step whose first output a later step already consumed.
    out = hashlib.sha256(f"{prev}:{index}:{uuid.uuid4()}".encode()).hexdigest()[:16]
    _log(log, {"step": index, "attempt": step.attempt, "input": prev, "output": out})
    time.sleep(random.uniform(0, 0.004))
    return out


@durable_execution
def chain_handler(event: dict[str, Any], ctx: DurableContext) -> dict[str, Any]:
    prev = "seed"
    outputs = []
    for i in range(STEPS):
        semantics = (
            StepSemantics.AT_MOST_ONCE_PER_RETRY
            if i in AT_MOST_ONCE
            else StepSemantics.AT_LEAST_ONCE_PER_RETRY
        )
        prev = ctx.step(
            link(event["log"], i, prev),
            name=f"link-{i}",
            config=StepConfig(step_semantics=semantics, retry_strategy=RETRY),
        )
        outputs.append(prev)
    return {"outputs": outputs}


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by the kill
    return out


def _check(store: FileStore) -> int:
    """Check every execution of the store against its own side-effect log."""
    headers = store.list_executions(function_name="chain").headers
    assert headers, "no execution was created"
    for h in headers:
        assert h.status == "SUCCEEDED", (h.arn, h.status, h.error)
        outputs = json.loads(h.result or "{}")["outputs"]
        runs = _read_log(Path(json.loads(h.input_payload)["log"]))
        for i in range(1, STEPS):
            produced = {r["output"] for r in runs if r["step"] == i - 1}
            consumed = {r["input"] for r in runs if r["step"] == i}
            # A run of step i only starts after step i-1's result was acknowledged, so
            # every output of step i-1 that step i consumed must be the one kept.
            assert consumed & produced <= {outputs[i - 1]}, (h.arn, i, consumed, outputs[i - 1])
        once = [(r["step"], r["attempt"]) for r in runs if r["step"] in AT_MOST_ONCE]
        assert len(once) == len(set(once)), f"an AT_MOST_ONCE step ran twice: {once}"
        events = [e.data for e in store.events(h.arn)]
        succeeded = [e["Name"] for e in events if e["EventType"] == "StepSucceeded"]
        assert sorted(succeeded) == sorted(f"link-{i}" for i in range(STEPS))
    return len(headers)


def _runtime_main(root: str, name: str, log: str) -> None:
    with Runtime(
        backend=f"file://{root}", max_invocation_failures=10_000, invocation_retry_delay=0.0
    ) as rt:
        rt.register("chain", chain_handler)
        rt.start("chain", {"log": log}, name=name)
        rt.run_until_idle(timeout=30)


@pytest.mark.slow
def test_kill_the_runtime_process_and_resume(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(1234)
    # 20 s of crashes, and at least 5 executions however loaded the machine is (the hard
    # cap only stops a run that makes no progress at all)
    budget, hard_cap = time.monotonic() + 20, time.monotonic() + 180
    executions = kills = 0
    # Kill at a uniformly random moment of a typical run: the window follows how long an
    # uninterrupted runtime process takes here, so the kills land inside executions.
    typical = 0.1
    for n in range(500):
        if (time.monotonic() > budget and executions >= 5) or time.monotonic() > hard_cap:
            break
        root, log = tmp_path / f"store-{n}", tmp_path / f"log-{n}.jsonl"
        name = f"chain-{n}"
        for _attempt in range(300):
            proc = ctx.Process(target=_runtime_main, args=(str(root), name, str(log)))
            started = time.monotonic()
            proc.start()
            proc.join(rng.uniform(0.0, typical))
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            else:
                typical = 0.8 * typical + 0.2 * (time.monotonic() - started) * 1.5
            proc.join()
            store = FileStore(root)
            page = store.list_executions(function_name="chain")
            if page.headers and all(h.terminal for h in page.headers):
                break
        assert _check(FileStore(root)) == 1  # one execution per name, even across crashes
        executions += 1
    print(f"\ncrash loop (runtime killed): {executions} executions, {kills} SIGKILLs")
    assert executions >= 5 and kills >= executions // 2


@pytest.mark.slow
def test_kill_worker_processes_at_random(tmp_path: Path) -> None:
    rng = random.Random(99)
    stop = threading.Event()
    kills = [0]

    def killer() -> None:
        while not stop.is_set():
            time.sleep(rng.uniform(0.002, 0.03))
            try:
                children = multiprocessing.active_children()
            except RuntimeError:
                continue
            for child in children:
                if rng.random() < 0.3 and child.pid:
                    try:
                        os.kill(child.pid, signal.SIGKILL)
                        kills[0] += 1
                    except ProcessLookupError:
                        pass

    root = tmp_path / "store"
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    budget, hard_cap = time.monotonic() + 12, time.monotonic() + 120  # as above, 3 at least
    executions = 0
    try:
        with Runtime(
            backend=f"file://{root}", isolation="process", max_invocation_failures=10_000
        ) as rt:
            rt.register("chain", chain_handler)
            for n in range(60):
                if (time.monotonic() > budget and executions >= 3) or time.monotonic() > hard_cap:
                    break
                arn = rt.start("chain", {"log": str(tmp_path / f"log-{n}.jsonl")}, name=f"w-{n}")
                rt.run_until_idle(timeout=20)
                assert rt.describe(arn)["Status"] == "SUCCEEDED"
                executions += 1
    finally:
        stop.set()
        thread.join(5)
    assert _check(FileStore(root)) == executions
    print(f"\ncrash loop (workers killed): {executions} executions, {kills[0]} SIGKILLs")
    assert executions >= 3 and kills[0] > 0
