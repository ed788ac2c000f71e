"""Is a commit's cost flat in the size of the execution? 10 vs 10,000 operations, interleaved.

Two executions live in the same store, one holding 10 operations and one 10,000. Each
round commits one checkpoint batch (a new STEP record, the update of an older one, two
history events, a due entry set and one cleared: what a STEP START + SUCCEED with a retry
timer writes) to each of them, alternately, so both sizes see the same bursts of load on a
shared machine; the ratio of their median commit times is the figure. Side by side:
PostgreSQL (one statement per commit) and Redis (one ``EVALSHA``).

``test_checkpoint_flat`` does the same with the engine's whole checkpoint path (a STEP
START + SUCCEED pair through ``Engine.checkpoint``: token check, reads, validation, delta,
commit), as ``bench_stores.py`` measures it one size after the other.

Run: ``pytest benchmarks/bench_commit_flat.py --benchmark-json=flat.json`` then
``python benchmarks/bench_commit_flat.py flat.json`` for the table.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from checkpoints import prepare
from servers import postgres_server, redis_server  # noqa: F401 - session fixtures

from durable_ext.backends import open_store
from durable_ext.backends.store import DueEntry, ExecutionHeader, Store
from durable_ext.testing.contract import make_create, next_batch

SIZES = (10, 10_000)
ROUNDS = 200
PRELOAD = 500


def _urls(request: pytest.FixtureRequest, backend: str) -> str:
    if backend == "redis":
        return f"{request.getfixturevalue('redis_server').url}?prefix=fc{uuid.uuid4().hex[:8]}:"
    server = request.getfixturevalue("postgres_server")
    return f"{server.url}?schema=fc{uuid.uuid4().hex[:10]}&init=true"


@pytest.fixture
def store(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Store]]:
    opened: list[Store] = []

    def make(backend: str) -> Store:
        s = open_store(_urls(request, backend))
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def _preload(store: Store, n: int) -> ExecutionHeader:
    created = make_create(function_name="flat")
    store.create(created)
    header = created.header
    while header.op_count < n:
        batch = next_batch(header, ops=min(PRELOAD, n - header.op_count), events=1)
        store.commit(batch)
        header = batch.header
    return header


def _one(store: Store, header: ExecutionHeader, k: int) -> tuple[ExecutionHeader, float]:
    wake = DueEntry(arn=header.arn, key=f"wake:{k}", kind="wake", due_ms=10**12 + k)
    batch = next_batch(
        header, ops=1, events=2, touch=[("op-1", 1)], due_set=[wake],
        due_clear=[f"wake:{k - 1}"],
    )
    t0 = time.perf_counter()
    store.commit(batch)
    return batch.header, time.perf_counter() - t0


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_commit_flat(benchmark: Any, store: Callable[[str], Store], backend: str) -> None:
    s = store(backend)
    heads = {n: _preload(s, n) for n in SIZES}
    assert len(s.operations(heads[SIZES[-1]].arn)) == SIZES[-1]
    times: dict[int, list[float]] = {n: [] for n in SIZES}
    counter = iter(range(1, 10**9))

    def pair() -> None:
        k = next(counter)
        for n in SIZES:
            heads[n], took = _one(s, heads[n], k)
            times[n].append(took)

    benchmark.group = "commit, 10 vs 10,000 operations (interleaved)"
    benchmark.pedantic(pair, rounds=ROUNDS, iterations=1, warmup_rounds=5)
    med = {n: statistics.median(v) for n, v in times.items()}
    benchmark.extra_info.update(
        backend=backend,
        what="commit",
        median_ms={str(n): round(m * 1e3, 3) for n, m in med.items()},
        ratio=med[SIZES[-1]] / med[SIZES[0]],
    )
    # every commit went through, on both executions
    for n in SIZES:
        assert s.header(heads[n].arn).revision == heads[n].revision


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_checkpoint_flat(benchmark: Any, store: Callable[[str], Store], backend: str) -> None:
    s = store(backend)
    steps = {n: prepare(s, n) for n in SIZES}
    times: dict[int, list[float]] = {n: [] for n in SIZES}

    def pair() -> None:
        for n in SIZES:
            t0 = time.perf_counter()
            steps[n]()
            times[n].append(time.perf_counter() - t0)

    benchmark.group = "checkpoint, 10 vs 10,000 operations (interleaved)"
    benchmark.pedantic(pair, rounds=ROUNDS // 2, iterations=1, warmup_rounds=5)
    med = {n: statistics.median(v) for n, v in times.items()}
    benchmark.extra_info.update(
        backend=backend,
        what="checkpoint",
        median_ms={str(n): round(m * 1e3, 3) for n, m in med.items()},
        ratio=med[SIZES[-1]] / med[SIZES[0]],
    )


def report(path: str) -> None:
    """Print the markdown table of a ``--benchmark-json`` file of this module."""
    with open(path) as fh:
        data = json.load(fh)
    print("| what | backend | at 10 ops (median) | at 10,000 ops (median) | 10,000 vs 10 |")
    print("|---|---|---:|---:|---:|")
    for b in data["benchmarks"]:
        if not b["name"].startswith(("test_commit_flat", "test_checkpoint_flat")):
            continue
        info = b["extra_info"]
        m = info["median_ms"]
        print(
            f"| {info.get('what', 'commit')} | {info['backend']} | {m['10']:.2f} ms | "
            f"{m['10000']:.2f} ms | {info['ratio']:.2f}x |"
        )


if __name__ == "__main__":
    report(sys.argv[1])
