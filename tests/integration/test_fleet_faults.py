"""Fleet workers on real Redis, DynamoDB (moto) and PostgreSQL servers, under faults.

Worker processes are started with ``python -m durable_ext.fleet worker`` (the same code as
``durable-ext worker``), killed with SIGKILL at random points, paused with SIGSTOP, and
stopped with SIGTERM, always by their own pid. Every test checks the same outcome:
every execution completes with the right result, every step succeeded exactly once in
the history (no completed step lost or redone), no AT_MOST_ONCE step body ran twice in
one attempt (from the ledger the step bodies write), and commits of a fenced worker are
refused. Every loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_fleet_handlers as handlers
from servers import RedisServer

from durable_ext.backends._dynamodb_schema import create_table
from durable_ext.fleet import SkewedClock, Worker
from durable_ext.runtime import Runtime

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
FUNCTIONS = {
    "chain": handlers.chain,
    "slow": handlers.slow,
    "timers": handlers.timers,
    "forever": handlers.forever,
}


# ---------------------------------------------------------------- backends


@pytest.fixture(params=["redis", "dynamodb", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """A fresh, empty store URL on each real server."""
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        return f"{server.url}?prefix=fl{uuid.uuid4().hex[:8]}:"
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        return f"{server.url}?schema=fl{uuid.uuid4().hex[:10]}&init=true"
    moto = request.getfixturevalue("moto_serial_server")
    table = moto.unique("fleet")
    create_table(moto.client("dynamodb"), table)
    return f"dynamodb://{table}?region=us-east-1&endpoint_url={moto.endpoint_url}"


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "ledger.txt")
    monkeypatch.setenv(handlers.LEDGER_ENV, path)
    return path


@pytest.fixture
def control(backend: str) -> Iterator[Runtime]:
    """A runtime that only starts and inspects executions (it never runs them)."""
    rt = Runtime(backend)
    for name, fn in FUNCTIONS.items():
        rt.register(name, fn)
    yield rt
    rt.close()


# ---------------------------------------------------------------- worker processes


class WorkerProcess:
    """One ``python -m durable_ext.fleet worker`` child, handled by its own pid."""

    def __init__(self, backend: str, log_dir: Path, *args: str) -> None:
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
        argv = [
            sys.executable,
            "-m",
            "durable_ext.fleet",
            "worker",
            "--backend",
            backend,
            "--handlers",
            *(f"{n}=test_fleet_handlers:{n}" for n in FUNCTIONS),
            *args,
        ]
        # Started with SIGTERM/SIGINT blocked, as a supervisor that may stop a worker at
        # any moment does: the worker unblocks them once it can stop cleanly, so a stop
        # sent while it is still importing is delivered then instead of killing it.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
                )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM and wait; the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"worker {self.pid} ignored SIGTERM:\n{self.output()[-3000:]}"
            ) from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stats(self) -> dict[str, int]:
        """The counters the worker printed when it stopped."""
        for line in reversed(self.output().splitlines()):
            if line.startswith("invocations="):
                return {k: int(v) for k, v in (p.split("=") for p in line.split())}
        raise AssertionError(f"worker {self.pid} printed no stats:\n{self.output()[-3000:]}")


@pytest.fixture
def fleet(backend: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    # moto serves one request at a time, ~15 ms each: longer leases and slower polls keep
    # three workers from saturating it (real DynamoDB takes the Redis settings)
    timing = (
        ["--lease", "1.5", "--skew-margin", "0.5", "--poll", "0.05"]
        if not backend.startswith("dynamodb")
        else ["--lease", "4", "--skew-margin", "1", "--poll", "0.25"]
    )

    def spawn(*args: str) -> WorkerProcess:
        w = WorkerProcess(backend, tmp_path, "--concurrency", "2", *timing, "--grace", "10", *args)
        started.append(w)
        return w

    yield spawn
    for w in started:
        if w.proc.poll() is None:
            w.kill()


# ---------------------------------------------------------------- checks


def wait_until(done: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")


def all_finished(rt: Runtime, arns: list[str]) -> Callable[[], bool]:
    return lambda: all(rt.describe(a)["Status"] != "RUNNING" for a in arns)


def check_outcome(
    rt: Runtime, arns: list[str], ledger: str, steps: dict[str, str], result: Callable[[str], Any]
) -> Counter[str]:
    """Assert the fleet's guarantees; returns the InvocationCompleted error types seen."""
    import json

    runs = Counter((eid, step, attempt) for eid, step, attempt, _ in handlers.read_ledger(ledger))
    errors: Counter[str] = Counter()
    for arn in arns:
        desc = rt.describe(arn)
        events = rt.history(arn)["Events"]
        assert desc["Status"] == "SUCCEEDED", (desc, [e["EventType"] for e in events])
        payload = json.loads(desc["Result"])
        eid = payload["id"]
        assert payload == result(eid)
        succeeded = Counter(e["Name"] for e in events if e["EventType"] == "StepSucceeded")
        assert succeeded == Counter(dict.fromkeys(steps, 1)), (eid, succeeded)
        for step, semantics in steps.items():
            if semantics == "at-most-once":
                twice = {k: n for k, n in runs.items() if k[:2] == (eid, step) and n > 1}
                assert not twice, f"AT_MOST_ONCE step {step} of {eid} ran twice: {twice}"
        for e in events:
            if (
                e["EventType"] == "InvocationCompleted"
                and "Error" in e["InvocationCompletedDetails"]
            ):
                errors[e["InvocationCompletedDetails"]["Error"]["Payload"]["ErrorType"]] += 1
    return errors


CHAIN_STEPS = {"a": "at-least-once", "b": "at-most-once", "c": "at-least-once"}


def chain_result(eid: str) -> dict[str, Any]:
    return {"id": eid, "sum": 111}


# ---------------------------------------------------------------- tests


def test_sigkill_workers_at_random_points(
    backend: str, control: Runtime, ledger: str, fleet: Callable[..., WorkerProcess]
) -> None:
    """3 workers share the backend; one is SIGKILLed and replaced again and again."""
    rng = random.Random(6)
    redis = not backend.startswith("dynamodb")  # Redis and PostgreSQL take the same load
    count, kills = (16, 8) if redis else (8, 4)
    arns = [control.start("chain", {"id": f"k{i}", "pause": 0.1}) for i in range(count)]
    workers = [fleet() for _ in range(3)]
    killed = 0
    loop_end = time.monotonic() + (12 if redis else 20)
    while killed < kills and time.monotonic() < loop_end and not all_finished(control, arns)():
        time.sleep(rng.uniform(0.15, 0.6))
        victim = rng.randrange(len(workers))
        workers[victim].kill()
        workers[victim] = fleet()
        killed += 1
    assert killed >= 2, "the executions finished before the kill loop got going"
    wait_until(all_finished(control, arns), 60, "every execution to finish")
    for w in workers:
        assert w.terminate() == 0
    errors = check_outcome(control, arns, ledger, CHAIN_STEPS, chain_result)
    assert set(errors) <= {"Runtime.ExitError"}, errors


REDIS_ONLY = pytest.mark.parametrize("backend", ["redis"], indirect=True)
"""For tests whose DynamoDB run adds nothing the other DynamoDB tests do not cover, and
would only spend the time budget on moto's one-request-at-a-time server."""


@REDIS_ONLY
def test_durable_timers_fire_once_after_every_worker_died(
    backend: str, control: Runtime, ledger: str, fleet: Callable[..., WorkerProcess]
) -> None:
    """Waits, retry delays, callback and heartbeat timeouts and an execution timeout fire on a
    worker started after the one that scheduled them was killed."""
    arns = [control.start("timers", {"id": f"t{i}"}) for i in range(3)]
    doomed = control.start("forever", {}, execution_timeout=3)
    first = fleet()
    wait_until(
        lambda: all(
            any(e["EventType"] == "WaitStarted" for e in control.history(a)["Events"]) for a in arns
        ),
        30,
        "the first worker to start every wait",
    )
    first.kill()
    time.sleep(1.5)  # the waits fall due while no worker is alive
    second = fleet()
    wait_until(all_finished(control, [*arns, doomed]), 40, "every execution to finish")
    assert second.terminate() == 0
    check_outcome(
        control,
        arns,
        ledger,
        {"flaky": "at-most-once"},
        lambda eid: {
            "id": eid,
            "value": 5,
            "callbacks": ["CallbackTimeoutError", "CallbackTimeoutError"],
        },
    )
    for arn in arns:
        kinds = Counter(e["EventType"] for e in control.history(arn)["Events"])
        assert kinds["WaitSucceeded"] == 1 and kinds["CallbackTimedOut"] == 2
    assert control.describe(doomed)["Status"] == "TIMED_OUT"
    assert (
        sum(e["EventType"] == "ExecutionTimedOut" for e in control.history(doomed)["Events"]) == 1
    )


def test_paused_worker_is_fenced_after_takeover(
    backend: str, control: Runtime, ledger: str, fleet: Callable[..., WorkerProcess]
) -> None:
    """A worker frozen past its lease loses the execution; when it wakes up, every commit it
    tries is refused, and the execution completes once, on the other worker."""
    arn = control.start("slow", {"id": "s0", "pause": 1.5})
    frozen = fleet()
    wait_until(
        lambda: any(r[1] == "a" for r in handlers.read_ledger(ledger)), 30, "step a to start"
    )
    frozen.signal(signal.SIGSTOP)
    try:
        rescuer = fleet()
        wait_until(
            lambda: any(
                e["EventType"] == "InvocationCompleted"
                and "Error" in e["InvocationCompletedDetails"]
                for e in control.history(arn)["Events"]
            ),
            30,
            "the takeover",
        )
    finally:
        frozen.signal(signal.SIGCONT)
    wait_until(all_finished(control, [arn]), 40, "the execution to finish")
    time.sleep(0.5)  # let the woken worker try its stale commit
    assert frozen.terminate() == 0
    assert rescuer.terminate() == 0
    stale, fresh = frozen.stats(), rescuer.stats()
    assert stale["fenced"] >= 1, stale  # the woken worker's checkpoint was refused
    assert stale["lost_leases"] == 1, (
        stale
    )  # it noticed, and finished nothing of the old invocation
    assert fresh["takeovers"] == 1, fresh
    errors = check_outcome(
        control,
        [arn],
        ledger,
        {"a": "at-most-once", "b": "at-most-once"},
        lambda eid: {"id": eid, "sum": 11},
    )
    assert errors == Counter({"Runtime.ExitError": 1})
    by_pid = {
        pid
        for _, step, attempt, pid in handlers.read_ledger(ledger)
        if step == "a" and attempt == 1
    }
    assert by_pid == {frozen.pid}


@REDIS_ONLY
def test_sigterm_releases_the_running_invocation(
    backend: str, control: Runtime, ledger: str, fleet: Callable[..., WorkerProcess]
) -> None:
    """SIGTERM with no grace left: the invocation is released at once and finished elsewhere."""
    arn = control.start("slow", {"id": "g0", "pause": 1.0})
    leaving = fleet("--grace", "0")
    wait_until(
        lambda: any(r[1] == "a" for r in handlers.read_ledger(ledger)), 30, "step a to start"
    )
    assert leaving.terminate(timeout=5) == 0
    assert leaving.stats()["released"] == 1
    staying = fleet()
    wait_until(all_finished(control, [arn]), 40, "the execution to finish")
    assert staying.terminate() == 0
    assert staying.stats()["takeovers"] == 0  # released, not taken over
    check_outcome(
        control,
        [arn],
        ledger,
        {"a": "at-most-once", "b": "at-most-once"},
        lambda eid: {"id": eid, "sum": 11},
    )


@REDIS_ONLY
def test_sigterm_lets_the_running_invocation_finish(
    backend: str, control: Runtime, ledger: str, fleet: Callable[..., WorkerProcess]
) -> None:
    arn = control.start("slow", {"id": "g1", "pause": 0.8})
    worker = fleet()
    wait_until(
        lambda: any(r[1] == "a" for r in handlers.read_ledger(ledger)), 30, "step a to start"
    )
    assert worker.terminate() == 0
    stats = worker.stats()
    assert stats["released"] == 0 and stats["invocations"] >= 1, stats
    history = control.history(arn)["Events"]
    finished = [e for e in history if e["EventType"] == "InvocationCompleted"]
    assert finished and all("Error" not in e["InvocationCompletedDetails"] for e in finished)


@REDIS_ONLY
def test_sigterm_while_the_worker_starts_stops_it_cleanly(
    backend: str, fleet: Callable[..., WorkerProcess]
) -> None:
    """A replacement worker stopped right after it was spawned (before its imports are
    done) exits 0 with its counters, like any other stopped worker."""
    workers = [fleet() for _ in range(3)]
    for w in workers:
        assert w.terminate() == 0, w.output()[-3000:]
        assert w.stats()["invocations"] == 0


@REDIS_ONLY
def test_shutdowns_in_a_row_do_not_fail_the_execution(
    backend: str, control: Runtime, ledger: str
) -> None:
    """More graceful shutdowns mid-invocation than ``max_invocation_failures``: each
    released invocation is re-run at once by the next worker, and the execution succeeds."""
    arn = control.start("chain", {"id": "r0", "pause": 0.4})
    releases = 7
    for i in range(releases):
        worker = Worker(backend, lease_seconds=1.5, skew_margin=0.5, poll_interval=0.02)
        worker.shutdown_grace = 0.0
        worker.register("chain", handlers.chain)
        thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 30}, daemon=True)
        thread.start()
        try:
            wait_until(
                lambda n=i: sum(r[1] == "a" for r in handlers.read_ledger(ledger)) > n,
                20,
                f"step a to start for the {i + 1}. time",
            )
        finally:
            worker.stop()  # what the SIGTERM handler does
            thread.join(20)
            worker.close()
        assert not thread.is_alive()
        assert worker.stats.released == 1, worker.stats
        assert control.describe(arn)["Status"] == "RUNNING"
    last = Worker(backend, lease_seconds=1.5, skew_margin=0.5, poll_interval=0.02)
    last.register("chain", handlers.chain)
    last.run(max_seconds=30, until=all_finished(control, [arn]))
    last.close()
    errors = check_outcome(control, [arn], ledger, CHAIN_STEPS, chain_result)
    assert errors == Counter({"Runtime.ExitError": releases}), errors
    assert last.stats.takeovers == 0


def test_two_workers_race_for_one_execution(backend: str, control: Runtime) -> None:
    """Two engines on their own connections open an invocation of the same execution at
    the same instant, 15 times: exactly one wins each time."""
    rivals = [Runtime(backend) for _ in range(2)]
    for rt in rivals:
        rt.register("chain", handlers.chain)
    try:
        for i in range(15):
            arn = control.start("chain", {"id": f"r{i}"})
            barrier = threading.Barrier(2)
            won: list[Any] = [None, None]

            def race(
                k: int, arn: str = arn, barrier: threading.Barrier = barrier, won: list[Any] = won
            ) -> None:
                barrier.wait()
                won[k] = rivals[k].engine.begin_invocation(arn, owner=f"rival{k}")

            threads = [threading.Thread(target=race, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            winners = [w for w in won if w is not None]
            assert len(winners) == 1, won
            assert control.store.header(arn).invocation_id == winners[0].invocation_id
    finally:
        for rt in rivals:
            rt.close()


@REDIS_ONLY
def test_clock_skew_within_the_margin_steals_nothing(
    backend: str, control: Runtime, ledger: str
) -> None:
    """Two workers whose clocks differ by 1.2 s (margin 1.5 s) run steps longer than the
    lease: renewals keep them alive, nobody takes over, nothing is fenced."""
    arns = [control.start("slow", {"id": f"w{i}", "pause": 2.5}) for i in range(4)]
    workers = [
        Worker(
            backend,
            concurrency=2,
            lease_seconds=2.0,
            skew_margin=1.5,
            poll_interval=0.1,
            clock=SkewedClock(offset),
            host=f"host-{k}",
        )
        for k, offset in enumerate((600, -600))
    ]
    for w in workers:
        w.register("slow", handlers.slow)
    done = all_finished(control, arns)
    threads = [
        threading.Thread(target=w.run, kwargs={"max_seconds": 60, "until": done}) for w in workers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for w in workers:
        w.close()
    totals = Counter[str]()
    for w in workers:
        totals.update(w.stats.as_dict())
    assert totals["takeovers"] == 0 and totals["lost_leases"] == 0 and totals["fenced"] == 0, totals
    assert totals["renewals"] >= 1, totals
    errors = check_outcome(
        control,
        arns,
        ledger,
        {"a": "at-most-once", "b": "at-most-once"},
        lambda eid: {"id": eid, "sum": 11},
    )
    assert not errors


def unused_pid() -> int:
    """A pid no process of this PID namespace has, as a worker's pid in another one is."""
    limit = int(Path("/proc/sys/kernel/pid_max").read_text())
    return limit + 1  # above pid_max: never given out here


def run_one_sweep(worker: Worker) -> None:
    """Run ``worker``'s loop for exactly one pass (one takeover sweep, one claim)."""
    calls = iter(range(2))
    worker.run(max_seconds=30, until=lambda: next(calls, 1) == 1)


@REDIS_ONLY
def test_a_namesake_in_another_pid_namespace_keeps_its_fresh_lease(
    backend: str, control: Runtime, ledger: str
) -> None:
    """A worker elsewhere with this host's name holds a fresh lease under a pid that is not
    running here (PID namespaces repeat and hide pids): nothing proves it dead, so it is
    not taken over until its lease expires."""
    arn = control.start("slow", {"id": "ns0", "pause": 0.2})
    here = Worker(backend, lease_seconds=30, skew_margin=1, host="shared-host")
    here.register("slow", handlers.slow)
    # the lease the other worker writes: 30 s, like ours, under its own owner and pid
    inv = here.engine.begin_invocation(arn, owner="elsewhere", pid=unused_pid(),
                                       host="shared-host")
    assert inv is not None
    try:
        run_one_sweep(here)
        assert here.stats.takeovers == 0, here.stats
        assert control.store.header(arn).invocation_id == inv.invocation_id
        assert not handlers.read_ledger(ledger)
    finally:
        here.close()
    # Seen from a clock past its expiry and the margin, the same lease is taken over.
    later = Worker(backend, lease_seconds=30, skew_margin=1, host="shared-host",
                   clock=SkewedClock(40_000), poll_interval=0.02)
    later.register("slow", handlers.slow)
    try:
        later.run(max_seconds=60, until=all_finished(control, [arn]))
    finally:
        later.close()
    assert later.stats.takeovers == 1, later.stats
    errors = check_outcome(control, [arn], ledger, {"a": "at-most-once", "b": "at-most-once"},
                           lambda eid: {"id": eid, "sum": 11})
    assert errors == Counter({"Runtime.ExitError": 1})


@REDIS_ONLY
def test_workers_alike_in_name_host_and_pid_take_nothing_from_each_other(
    backend: str, control: Runtime, ledger: str
) -> None:
    """Two workers given the same worker id, host name and pid (as in two PID namespaces
    of hosts named alike) run steps longer than their lease side by side: each renews
    its own lease, neither takes the other's over, every step runs once."""
    arns = [control.start("slow", {"id": f"twin{i}", "pause": 2.0}) for i in range(4)]
    ghost = unused_pid()
    twins = [
        Worker(backend, concurrency=2, lease_seconds=1.5, skew_margin=0.5, poll_interval=0.05,
               worker_id="worker-1", host="shared-host")
        for _ in range(2)
    ]
    for w in twins:
        w.pid = ghost  # what each writes into its leases
        w.register("slow", handlers.slow)
    done = all_finished(control, arns)
    threads = [threading.Thread(target=w.run, kwargs={"max_seconds": 60, "until": done})
               for w in twins]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for w in twins:
        w.close()
    totals = Counter[str]()
    for w in twins:
        totals.update(w.stats.as_dict())
    assert totals["takeovers"] == 0 and totals["lost_leases"] == 0 and totals["fenced"] == 0, totals
    assert totals["renewals"] >= 1 and min(w.stats.invocations for w in twins) >= 1, totals
    errors = check_outcome(control, arns, ledger, {"a": "at-most-once", "b": "at-most-once"},
                           lambda eid: {"id": eid, "sum": 11})
    assert not errors


@REDIS_ONLY
def test_a_killed_worker_on_this_host_is_taken_over_before_its_lease_expires(
    backend: str, control: Runtime, ledger: str, fleet: Callable[..., WorkerProcess]
) -> None:
    """A worker process of this host holds its mark locked while it lives; SIGKILLed, the
    lock is gone, which proves its end: its 60 s lease is taken over at once."""
    arn = control.start("slow", {"id": "dead0", "pause": 1.0})
    doomed = fleet("--lease", "60")
    wait_until(
        lambda: any(r[1] == "a" for r in handlers.read_ledger(ledger)), 30, "step a to start"
    )
    doomed.kill()
    for k in range(2):  # one sweep (a run ends with the worker stopped), then the rest
        rescuer = Worker(backend, lease_seconds=60, skew_margin=1, poll_interval=0.05)
        rescuer.register("slow", handlers.slow)
        try:
            if k == 0:
                run_one_sweep(rescuer)
                assert rescuer.stats.takeovers == 1, rescuer.stats  # 60 s cannot have passed
            else:
                rescuer.run(max_seconds=60, until=all_finished(control, [arn]))
        finally:
            rescuer.close()
    errors = check_outcome(control, [arn], ledger, {"a": "at-most-once", "b": "at-most-once"},
                           lambda eid: {"id": eid, "sum": 11})
    assert errors == Counter({"Runtime.ExitError": 1})


class _PersistentRedis(RedisServer):
    """The session's redis-server settings, but with an fsync'ed append-only file."""

    name = "redisaof"

    def argv(self, port: int) -> list[str]:
        args = super().argv(port)
        i = args.index("--appendonly")
        args[i + 1] = "yes"
        return [*args, "--appendfsync", "always"]


def test_redis_restarted_mid_run(tmp_path: Path, ledger: str) -> None:
    server = _PersistentRedis()
    server.start()
    try:
        url = server.url
        rt = Runtime(url)
        rt.register("chain", handlers.chain)
        arns = [rt.start("chain", {"id": f"p{i}", "pause": 0.1}) for i in range(16)]
        workers = [
            WorkerProcess(
                url,
                tmp_path,
                "--concurrency",
                "2",
                "--lease",
                "1.5",
                "--skew-margin",
                "0.5",
                "--poll",
                "0.05",
            )
            for _ in range(2)
        ]
        try:
            wait_until(
                lambda: (
                    sum(rt.describe(a)["Status"] == "SUCCEEDED" for a in arns) >= 2
                    or any("StepSucceeded" in str(rt.history(a)) for a in arns)
                ),
                30,
                "progress",
            )
            port, before = server.port, rt.store.client.info("server")["run_id"]
            in_flight = sum(rt.describe(a)["Status"] == "RUNNING" for a in arns)
            server.stop(keep_files=True)
            time.sleep(1.0)  # workers keep retrying against a closed port
            server.start(port=port)
            assert rt.store.client.info("server")["run_id"] != before  # a new server process
            assert in_flight > 0
            wait_until(all_finished(rt, arns), 60, "every execution to finish")
            for w in workers:
                assert w.terminate() == 0
        finally:
            for w in workers:
                if w.proc.poll() is None:
                    w.kill()
        check_outcome(rt, arns, ledger, CHAIN_STEPS, chain_result)
        rt.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("shop.orders", ("orders", "shop.orders")),
        ("shop.orders:process", ("orders-process", "shop.orders:process")),
        ("billing=shop.orders:process", ("billing", "shop.orders:process")),
    ],
)
def test_handler_specs(spec: str, expected: tuple[str, str]) -> None:
    from durable_ext.runtime.handlers import function_name_for, parse_handler_spec

    name, target = parse_handler_spec(spec)
    assert (name or function_name_for(target), target) == expected


@pytest.mark.parametrize("spec", ["=mod:attr", "name=", ":attr"])
def test_bad_handler_spec_is_a_clear_error(spec: str) -> None:
    from durable_ext.errors import ConfigError
    from durable_ext.runtime.handlers import load_handlers

    with pytest.raises(ConfigError, match="expected"):
        load_handlers([spec])


def test_lease_expiry_honours_the_skew_margin() -> None:
    from durable_ext.engine import Lease

    lease = Lease(arn="a", invocation_id="i", owner="o", host="h", pid=1, due_ms=10_000)
    assert not lease.expired(10_000, 500)
    assert not lease.expired(10_499, 500)
    assert lease.expired(10_500, 500)


@REDIS_ONLY
def test_process_isolation_runs_each_invocation_in_its_own_process(
    backend: str, control: Runtime, ledger: str, fleet: Callable[..., WorkerProcess]
) -> None:
    arns = [control.start("chain", {"id": f"i{i}", "pause": 0.01}) for i in range(3)]
    worker = fleet("--isolation", "process")
    wait_until(all_finished(control, arns), 30, "every execution to finish")
    assert worker.terminate() == 0
    check_outcome(control, arns, ledger, CHAIN_STEPS, chain_result)
    pids = {pid for *_, pid in handlers.read_ledger(ledger)}
    assert worker.pid not in pids and len(pids) >= 3  # step bodies ran in child processes
