"""Fleet throughput: 1, 2 and 4 worker processes draining 500 short executions, on Redis
and on PostgreSQL side by side.

Each test starts the workers (``python -m durable_ext.fleet worker``, two invocations at a
time each) on a fresh key prefix of a real redis-server (or a fresh schema of a real
PostgreSQL server, where workers claim with SKIP LOCKED and are woken by NOTIFY) and waits
until they poll; each of its three rounds then pauses them (SIGSTOP), starts a backlog of 500
executions of a one-step handler, resumes them (SIGCONT: the clock starts) and times until
none is RUNNING; the median round is reported. The backlog is made while the workers are
paused so that the figure is the fleet's drain rate, not how fast this one process can
start executions while the workers compete with it for the CPU. Every execution is checked
to have SUCCEEDED with its result.

DynamoDB is not measured here: moto answers one request at a time, so its numbers would
measure moto. ``benchmarks/bench_stores.py`` has the per-request costs of both stores.

Run: ``pytest benchmarks/bench_fleet.py --benchmark-json=fleet.json`` then
``python benchmarks/bench_fleet.py fleet.json`` for the table.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests"))
sys.path.insert(0, str(HERE / "tests" / "integration"))
import test_fleet_handlers as handlers  # noqa: E402
from servers import postgres_server, redis_server  # noqa: E402,F401 - session fixtures

from durable_ext.runtime import Runtime  # noqa: E402

EXECUTIONS = 500
ROUNDS = 3  # backlogs drained by the same workers: the median outlasts bursts of load
WORKERS = [1, 2, 4]
BACKENDS = ["redis", "postgres"]
CONCURRENCY = 2


def _spawn(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE / "tests" / "integration"), *sys.path]),
    }
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "durable_ext.fleet",
                "worker",
                "--backend",
                url,
                "--handlers",
                "short=test_fleet_handlers:short",
                "--concurrency",
                str(CONCURRENCY),
                "--poll",
                "0.02",
                "--log-level",
                "WARNING",
            ],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _url(request: pytest.FixtureRequest, backend: str) -> str:
    if backend == "redis":
        return f"{request.getfixturevalue('redis_server').url}?prefix=bf{uuid.uuid4().hex[:8]}:"
    server = request.getfixturevalue("postgres_server")
    return f"{server.url}?schema=bf{uuid.uuid4().hex[:10]}&init=true&pool_size=4"


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_drain(
    benchmark: Any, request: pytest.FixtureRequest, tmp_path: Path, backend: str, workers: int
) -> None:
    url = _url(request, backend)
    rt = Runtime(url)
    rt.register("short", handlers.short)
    procs = [_spawn(url, tmp_path / f"w{i}.log") for i in range(workers)]
    arns: list[str] = []
    try:
        time.sleep(2.0)  # imports done, every worker polling

        def backlog() -> None:
            for p in procs:
                p.send_signal(signal.SIGSTOP)
            arns.extend(rt.start("short", {"n": i}) for i in range(EXECUTIONS))

        def drain() -> None:
            for p in procs:
                p.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 300
            while rt.store.list_executions(
                function_name="short", status="RUNNING", limit=1
            ).headers:
                assert time.monotonic() < deadline, "the fleet did not drain the backlog"
                time.sleep(0.01)

        benchmark.group = "fleet drain"
        benchmark.pedantic(drain, setup=backlog, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    finally:
        for p in procs:
            p.send_signal(signal.SIGCONT)  # a stopped process would not act on SIGTERM
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
    outcomes = [rt.describe(a) for a in arns]
    assert [o["Status"] for o in outcomes] == ["SUCCEEDED"] * len(arns)
    rounds = len(arns) // EXECUTIONS
    assert sorted(int(o["Result"]) for o in outcomes) == sorted(
        2 * i for i in range(EXECUTIONS) for _ in range(rounds)
    )
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(
        backend=backend,
        workers=workers,
        executions=EXECUTIONS,
        seconds=seconds,
        per_second=EXECUTIONS / seconds,
    )
    rt.close()


def report(path: str) -> None:
    """Print the markdown table of a ``--benchmark-json`` file of this module."""
    with open(path) as fh:
        data = json.load(fh)
    rows = {
        (b["extra_info"].get("backend", "redis"), b["extra_info"]["workers"]): b["extra_info"]
        for b in data["benchmarks"]
        if b["name"].startswith("test_drain")
    }
    print("| backend | workers | executions | drain time | executions/s | scaling vs 1 worker |")
    print("|---|---:|---:|---:|---:|---:|")
    for backend, w in sorted(rows):
        r = rows[(backend, w)]
        base = rows[(backend, min(k[1] for k in rows if k[0] == backend))]["per_second"]
        print(
            f"| {backend} | {w} | {r['executions']} | {r['seconds']:.2f} s | "
            f"{r['per_second']:.0f} | {r['per_second'] / base:.2f}x |"
        )


if __name__ == "__main__":
    report(sys.argv[1])
