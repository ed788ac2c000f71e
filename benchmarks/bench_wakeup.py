"""Wake-up latency of a due durable timer on PostgreSQL: LISTEN/NOTIFY vs polling, one run.

One worker (in this process, one invocation at a time) runs executions whose handler waits
1 s (``ctx.wait``) and returns. The latency of a round is how late the timer fired: the
``WaitSucceeded`` event's time minus the wait's ``ScheduledEndTimestamp`` (both from the
history, so the figure is the store's and the worker's, not this process's). Side by side:

* ``notify``: the worker sleeps until its store wakes it (NOTIFY for new work, the due time
  it learned from its claim for the timer); ``idle_wait`` is 60 s, so no poll helps it;
* ``poll-0.1s`` and ``poll-1s``: ``notify=false``: the worker looks at the due-time index
  every 0.1 s (the default ``poll_interval``) or every 1 s.

Run: ``pytest benchmarks/bench_wakeup.py --benchmark-json=wakeup.json`` then
``python benchmarks/bench_wakeup.py wakeup.json`` for the table.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import postgres_server  # noqa: F401 - session fixture

from durable_ext.fleet import Worker
from durable_ext.runtime import Runtime

ROUNDS = 6
MODES = {"notify": None, "poll-0.1s": 0.1, "poll-1s": 1.0}


@durable_execution
def nap(event: dict[str, Any], ctx: DurableContext) -> int:
    """A durable wait of one second: the timer whose firing is measured."""
    ctx.wait(Duration.from_seconds(1), name="nap")
    return 1


def _ms(value: Any) -> float:
    return float(value.timestamp() * 1000) if hasattr(value, "timestamp") else float(value)


def lateness_ms(rt: Runtime, arn: str) -> float:
    """How long after its scheduled end the wait fired, from the history."""
    events = rt.history(arn)["Events"]
    started = next(e for e in events if e["EventType"] == "WaitStarted")
    fired = next(e for e in events if e["EventType"] == "WaitSucceeded")
    scheduled = started["WaitStartedDetails"]["ScheduledEndTimestamp"]
    return _ms(fired["EventTimestamp"]) - _ms(scheduled)


@pytest.mark.parametrize("mode", list(MODES))
def test_wakeup(benchmark: Any, postgres_server: Any, mode: str) -> None:  # noqa: F811
    poll = MODES[mode]
    url = f"{postgres_server.url}?schema=bw{uuid.uuid4().hex[:10]}&init=true"
    if poll is not None:
        url += "&notify=false"
    rt = Runtime(url)
    rt.register("nap", nap)
    worker = Worker(url, poll_interval=poll or 0.1, idle_wait=60, lease_seconds=600)
    worker.register("nap", nap)
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 300}, daemon=True)
    thread.start()
    arns: list[str] = []
    try:
        time.sleep(1.0)  # the worker is idle
        assert (worker.waker is not None) == (poll is None)  # wake-ups or polls, as asked

        def one() -> None:
            arn = rt.start("nap", {})
            arns.append(arn)
            deadline = time.monotonic() + 60
            while rt.describe(arn)["Status"] == "RUNNING":
                assert time.monotonic() < deadline, "the timer never fired"
                time.sleep(0.005)

        benchmark.group = "timer wake-up"
        benchmark.pedantic(one, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    finally:
        worker.stop()
        thread.join(30)
        worker.close()
    late = [lateness_ms(rt, a) for a in arns]
    assert all(rt.describe(a)["Status"] == "SUCCEEDED" for a in arns)
    benchmark.extra_info.update(
        mode=mode,
        lateness_median_ms=statistics.median(late),
        lateness_max_ms=max(late),
        fallbacks=worker.waker.woke["fallback"] if worker.waker else None,
    )
    rt.close()


def report(path: str) -> None:
    """Print the markdown table of a ``--benchmark-json`` file of this module."""
    with open(path) as fh:
        data = json.load(fh)
    rows = {
        b["extra_info"]["mode"]: b
        for b in data["benchmarks"]
        if b["name"].startswith("test_wakeup")
    }
    base = rows["notify"]["extra_info"]["lateness_median_ms"]
    print("| worker | timer fired late by (median) | (max) | vs NOTIFY | round trip (median) |")
    print("|---|---:|---:|---:|---:|")
    for mode in MODES:
        if mode not in rows:
            continue
        info, med = rows[mode]["extra_info"], rows[mode]["stats"]["median"]
        print(
            f"| {mode} | {info['lateness_median_ms']:.0f} ms | {info['lateness_max_ms']:.0f} ms | "
            f"{info['lateness_median_ms'] / max(base, 1):.0f}x | {med:.3f} s |"
        )


if __name__ == "__main__":
    report(sys.argv[1])
