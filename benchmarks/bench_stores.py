"""Per-checkpoint cost on the shared stores, at 10 and at 10,000 operations, in one run.

One checkpoint = a STEP START + SUCCEED pair with a 200-byte payload (two updates) through
the engine's whole checkpoint path (token check, validation, apply, delta, commit), on an
execution that already holds ``n`` operations. Side by side: MemoryStore (the floor),
RedisStore on a real redis-server, PostgresStore on a real PostgreSQL server, DynamoDBStore
on a moto server (loopback).

Besides time, each row records what went over the wire per checkpoint, counted where the
requests leave the client (a counting redis-py connection; botocore's ``before-call`` hook;
the statements the PostgreSQL store's connections execute):

* ``commit_requests``: requests of the store's commit alone (goal: 1 on every store);
* ``write_requests``: DynamoDB write requests of the whole checkpoint;
* ``requests``: every request of the whole checkpoint (reads included).

moto's ``TransactWriteItems`` deep-copies the table it writes to, so on moto the DynamoDB
*time* grows with the table; the request counts are the store's own cost.

Run: ``pytest benchmarks/bench_stores.py --benchmark-json=stores.json`` then
``python benchmarks/bench_stores.py stores.json`` for the table.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from checkpoints import prepare
from servers import moto_serial_server, postgres_server, redis_server  # noqa: F401 - fixtures

from durable_ext.backends._dynamodb_schema import create_table
from durable_ext.backends.dynamodb import DynamoDBStore
from durable_ext.backends.memory import MemoryStore
from durable_ext.backends.postgres import PostgresStore
from durable_ext.backends.redis import RedisStore
from durable_ext.backends.store import Store
from durable_ext.spec import parse_store

SIZES = [10, 10_000]
ROUNDS = {"memory": 200, "redis": 100, "postgres": 100, "dynamodb": 10}
WRITES = {"TransactWriteItems", "BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem"}


class Meter:
    """Requests sent, by name; ``commits`` counts only those made inside ``Store.commit``."""

    def __init__(self) -> None:
        self.all: Counter[str] = Counter()
        self.commits: Counter[str] = Counter()
        self.in_commit = False

    def sent(self, name: str) -> None:
        self.all[name] += 1
        if self.in_commit:
            self.commits[name] += 1

    def clear(self) -> None:
        self.all.clear()
        self.commits.clear()

    def watch_commits(self, store: Store) -> None:
        inner = store.commit

        def commit(batch: Any) -> None:
            self.in_commit = True
            try:
                inner(batch)
            finally:
                self.in_commit = False

        store.commit = commit  # type: ignore[method-assign]


def _redis(url: str, meter: Meter) -> RedisStore:
    import redis

    class Counting(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            meter.sent("redis")
            super().send_packed_command(command, check_health)

    client = redis.Redis.from_url(url, decode_responses=True, connection_class=Counting)
    return RedisStore(client, prefix=f"b{uuid.uuid4().hex[:8]}:")


def _postgres(url: str, meter: Meter) -> PostgresStore:
    store = PostgresStore.from_spec(
        parse_store(f"{url}?schema=b{uuid.uuid4().hex[:10]}&init=true")
    )
    inner = store._once

    class Counting:
        """A connection whose statements are counted (one statement = one round trip)."""

        def __init__(self, conn: Any) -> None:
            self._conn = conn

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            meter.sent("postgres")
            return self._conn.execute(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

    def counted(fn: Any, what: str = "request") -> Any:
        return inner(lambda conn: fn(Counting(conn)), what)

    store._once = counted  # type: ignore[method-assign]
    return store


def _dynamodb(moto: Any, meter: Meter) -> DynamoDBStore:
    client = moto.client("dynamodb")
    table = moto.unique("bench")
    create_table(client, table)
    client.meta.events.register("before-call.dynamodb", lambda model, **_: meter.sent(model.name))
    return DynamoDBStore(client, table)


@pytest.fixture
def make_store(request: pytest.FixtureRequest) -> Iterator[Callable[[str, Meter], Store]]:
    opened: list[Store] = []

    def make(kind: str, meter: Meter) -> Store:
        store: Store
        if kind == "memory":
            store = MemoryStore()
        elif kind == "redis":
            store = _redis(request.getfixturevalue("redis_server").url, meter)
        elif kind == "postgres":
            store = _postgres(request.getfixturevalue("postgres_server").url, meter)
        else:
            store = _dynamodb(request.getfixturevalue("moto_serial_server"), meter)
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("backend", list(ROUNDS))
def test_checkpoint(
    benchmark: Any, make_store: Callable[[str, Meter], Store], backend: str, n: int
) -> None:
    meter = Meter()
    store = make_store(backend, meter)
    one = prepare(store, n)
    meter.watch_commits(store)
    meter.clear()
    calls = 0

    def counted() -> None:
        # --benchmark-disable runs the function once whatever `rounds` says: count calls.
        nonlocal calls
        calls += 1
        one()

    benchmark.group = "checkpoint"
    benchmark.pedantic(counted, rounds=ROUNDS[backend], iterations=1, warmup_rounds=0)
    per = {k: v / calls for k, v in meter.all.items()}
    commit = sum(meter.commits.values()) / calls
    writes = sum(v for k, v in meter.all.items() if k in WRITES) / calls
    benchmark.extra_info.update(
        backend=backend,
        n=n,
        requests=sum(per.values()),
        commit_requests=commit,
        write_requests=writes,
        by_request={k: round(v, 2) for k, v in per.items()},
    )
    if backend != "memory":
        assert commit == 1.0  # one round trip / one write request per checkpoint batch
    if isinstance(store, DynamoDBStore):
        benchmark.extra_info["moto_tx_floor"] = _moto_floor(store)


def _moto_floor(store: DynamoDBStore) -> float:
    """Median time of a bare one-item TransactWriteItems on the same table (moto's own cost)."""
    import statistics
    import time

    times = []
    for i in range(5):
        item = {"pk": {"S": f"floor#{i}"}, "sk": {"S": "x"}}
        t0 = time.perf_counter()
        store.client.transact_write_items(
            TransactItems=[{"Put": {"TableName": store.table, "Item": item}}]
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(path: str) -> None:
    """Print the markdown table of a ``--benchmark-json`` file of this module."""
    with open(path) as fh:
        data = json.load(fh)
    rows = {
        (b["extra_info"]["backend"], b["extra_info"]["n"]): b
        for b in data["benchmarks"]
        if b["name"].startswith("test_checkpoint")
    }
    print(
        "| backend | ops in execution | checkpoint (median) | 10,000 vs 10 | requests per "
        "checkpoint | of which the commit | write requests | moto's bare 1-item transaction |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for backend in ROUNDS:
        if (backend, SIZES[0]) not in rows:
            continue  # not in this run (e.g. -k "not dynamodb")
        base = rows[(backend, SIZES[0])]["stats"]["median"]
        for n in SIZES:
            b = rows[(backend, n)]
            info, med = b["extra_info"], b["stats"]["median"]
            writes = f"{info['write_requests']:.2f}" if backend == "dynamodb" else "-"
            floor = f"{info['moto_tx_floor'] * 1e3:.1f} ms" if "moto_tx_floor" in info else "-"
            print(
                f"| {backend} | {n:,} | {med * 1e3:.2f} ms | {med / base:.2f}x | "
                f"{info['requests']:.2f} | {info['commit_requests']:.2f} | {writes} | {floor} |"
            )


if __name__ == "__main__":
    report(sys.argv[1])
