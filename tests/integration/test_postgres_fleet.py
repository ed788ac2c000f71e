"""Fleet workers on PostgreSQL: wake-ups by LISTEN/NOTIFY, and a server restart mid-run.

The fault tests shared with Redis and DynamoDB (SIGKILL loop, fencing after a pause, two
workers racing for one execution) run on PostgreSQL in test_fleet_faults.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_fleet_handlers as handlers
from servers import PostgresServer, running
from test_fleet_faults import (  # noqa: F401  (ledger is a fixture)
    CHAIN_STEPS,
    WorkerProcess,
    all_finished,
    chain_result,
    check_outcome,
    ledger,
    wait_until,
)

from durable_ext.fleet import Worker
from durable_ext.runtime import Runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def backend(postgres_server: Any) -> str:
    return f"{postgres_server.url}?schema=wk{uuid.uuid4().hex[:10]}&init=true"


@pytest.fixture
def control(backend: str) -> Iterator[Runtime]:
    rt = Runtime(backend)
    rt.register("chain", handlers.chain)
    rt.register("short", handlers.short)
    yield rt
    rt.close()


def sleepy_worker(backend: str, **kwargs: Any) -> Worker:
    """A worker that, without wake-ups, would sleep a minute between looks at the index."""
    w = Worker(backend, poll_interval=0.05, idle_wait=60, lease_seconds=600, skew_margin=1,
               **kwargs)
    w.register("chain", handlers.chain)
    w.register("short", handlers.short)
    return w


def run_in_thread(worker: Worker, until: Any) -> threading.Thread:
    t = threading.Thread(target=worker.run, kwargs={"max_seconds": 50, "until": until},
                         daemon=True)
    t.start()
    return t


def test_new_work_and_due_timers_wake_an_idle_worker(
    backend: str, control: Runtime, ledger: str  # noqa: F811
) -> None:
    """An idle worker sleeping up to 60 s starts new executions and fires their 2 s durable
    waits when they come due: woken by NOTIFY and by the due time it learned, never by
    the fallback."""
    worker = sleepy_worker(backend)
    assert worker.waker is not None
    arns: list[str] = []
    thread = run_in_thread(worker, lambda: bool(arns) and all_finished(control, arns)())
    try:
        wait_until(lambda: sum(worker.waker.woke.values()) >= 1, 20, "the worker to idle")
        time.sleep(0.3)  # asleep now, with nothing due
        arns.extend(control.start("chain", {"id": f"n{i}", "wait": 2}) for i in range(3))
        wait_until(all_finished(control, arns), 30, "every execution to finish")
    finally:
        worker.stop()
        thread.join(20)
        worker.close()
    assert not thread.is_alive()
    woke = worker.waker.woke
    assert woke["fallback"] == 0, woke
    assert woke["due"] >= 1 and worker.waker.signals >= 3, (woke, worker.waker.signals)
    check_outcome(control, arns, ledger, CHAIN_STEPS, chain_result)


def test_without_notify_the_worker_polls(backend: str) -> None:
    worker = Worker(backend + "&notify=false", poll_interval=0.05)
    thread = run_in_thread(worker, None)
    try:
        wait_until(lambda: worker.waker is None, 10, "the worker to give up on wake-ups")
    finally:
        worker.stop()
        thread.join(20)
        worker.close()


def test_a_listener_reconnects_and_asks_for_a_look(tmp_path: Path) -> None:
    """After the server restarts, the listener is back and says signals may be lost."""
    with running(PostgresServer()) as server:
        from durable_ext.backends import open_store

        store: Any = open_store(f"{server.url}?schema=lr&init=true&connect_timeout=1")
        got: list[tuple[str, int]] = []
        sub: Any = store.listen_due(lambda kind, ms: got.append((kind, ms)))
        try:
            wait_until(sub.connected.is_set, 10, "the listener to connect")
            port = server.port
            server.stop(keep_files=True)
            server.start(port=port)
            wait_until(lambda: sub.reconnects >= 1 and sub.connected.is_set(), 20,
                       "the listener to reconnect")
            assert got.count(("", 0)) >= 2
        finally:
            sub.close()
            store.close()


def started_at(rt: Runtime) -> Any:
    store: Any = rt.store
    return store._run("start time", lambda conn: conn.execute(
        "SELECT pg_postmaster_start_time()").fetchone())


def test_postgres_restarted_mid_run(tmp_path: Path, ledger: str) -> None:  # noqa: F811
    with running(PostgresServer()) as server:
        url = f"{server.url}?schema=rs&init=true&connect_timeout=2"
        rt = Runtime(url)
        rt.register("chain", handlers.chain)
        arns = [rt.start("chain", {"id": f"p{i}", "pause": 0.1}) for i in range(16)]
        timing = ["--concurrency", "2", "--lease", "1.5", "--skew-margin", "0.5",
                  "--poll", "0.05"]
        workers = [WorkerProcess(url, tmp_path, *timing) for _ in range(2)]
        try:
            wait_until(
                lambda: any("StepSucceeded" in str(rt.history(a)) for a in arns), 30, "progress"
            )
            before = started_at(rt)
            in_flight = sum(rt.describe(a)["Status"] == "RUNNING" for a in arns)
            port = server.port
            server.stop(keep_files=True)
            time.sleep(1.0)  # workers keep retrying against a closed port
            server.start(port=port)
            after = started_at(rt)  # the store's retries ride over the dead connections
            assert after != before and in_flight > 0  # a new server process, work left
            wait_until(all_finished(rt, arns), 90, "every execution to finish")
            for w in workers:
                assert w.terminate() == 0
        finally:
            for w in workers:
                if w.proc.poll() is None:
                    w.kill()
        check_outcome(rt, arns, ledger, CHAIN_STEPS, chain_result)
        rt.close()
