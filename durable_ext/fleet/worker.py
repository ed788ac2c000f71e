"""Worker: a :class:`~durable_ext.runtime.Runtime` plus a claim loop and a lease renewer.

Every worker polls the store's due-time index for work of the functions it has
registered: invocations to run, durable timers to fire (waits, retry delays, callback and
heartbeat timeouts, execution timeouts) and chained invokes to dispatch; the runtime
handles each entry. Claims are compare-and-set commits, so when several workers see the
same entry exactly one wins:

* an invocation is claimed by the engine's ``begin_invocation``, which opens a new
  invocation id and writes a **lease** (a wall-clock deadline). The worker renews the
  lease while the handler runs (every third of its length);
* a timer fires inside one commit that also removes it, so it fires once;
* a worker whose lease expired (plus the clock-skew margin), or whose end this host can
  prove (its mark, see :class:`~durable_ext.runtime.marks.WorkerMarks`, is no longer
  locked), is taken over by :meth:`Runtime.recover_leases
  <durable_ext.runtime.Runtime.recover_leases>`. Workers are told apart by a random
  128-bit instance id in the lease's owner, never by host name or pid. **Fencing**: the
  old worker's checkpoint tokens name the old invocation, so every commit it still tries
  is refused, and its late result is ignored.

On a store that offers them (PostgreSQL), a worker **claims** due entries
(:class:`~durable_ext.backends.store.ClaimingStore`: ``FOR UPDATE SKIP LOCKED``), so
workers spread over the backlog instead of racing for the same entries, and sleeps until
the store **wakes** it (:class:`~durable_ext.backends.store.WakingStore`: LISTEN/NOTIFY)
when new work is committed or its earliest known timer comes due, instead of polling;
``idle_wait`` bounds such a sleep all the same.

On SIGTERM (:meth:`Worker.install_signal_handlers`) a worker stops claiming, lets
running invocations finish for ``shutdown_grace`` seconds, then releases the rest so
another worker re-runs them at once.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Literal

from durable_ext.backends.store import ClaimingStore, DueEntry, Store, Subscription, WakingStore
from durable_ext.engine import DueKind, Engine
from durable_ext.errors import ConfigError, StoreError, StoreUnavailableError
from durable_ext.events.sinks import EventSink
from durable_ext.fleet._signals import STOP_SIGNALS, deferred_stop, unblock_stop_signals
from durable_ext.fleet._waker import Waker
from durable_ext.runtime.clock import Clock, RealClock
from durable_ext.runtime.runtime import Runtime, RuntimeStats

__all__ = ["SkewedClock", "Worker", "WorkerStats"]

log = logging.getLogger("durable_ext.fleet")

WorkerStats = RuntimeStats
"""What a worker did (its runtime's counters)."""


class SkewedClock(RealClock):
    """Wall-clock time off by ``offset_ms`` (how a host with a drifting clock sees time)."""

    def __init__(self, offset_ms: int) -> None:
        self.offset_ms = int(offset_ms)

    def now_ms(self) -> int:
        """Wall-clock time plus the offset."""
        return super().now_ms() + self.offset_ms


class Worker:
    """Claims and runs the work of its registered functions from a shared store.

    Args:
        backend: Store URL (``redis://...``, ``dynamodb://...``) or a Store.
        concurrency: Invocations and timers handled at once.
        lease_seconds: Lease length; renewed every third of it while an invocation runs.
        skew_margin: Seconds a lease must be past its deadline before another worker takes
            over; it must exceed the clock skew between hosts.
        poll_interval: Seconds between polls of the due-time index when idle (on a store
            that wakes workers: the first backoff after a store error).
        isolation: ``"inline"`` (threads) or ``"process"`` (a process per invocation, so a
            crash ends only that invocation).
        invocation_timeout: Seconds an invocation may run.
        shutdown_grace: Seconds running invocations get to finish on shutdown.
        max_invocation_failures: Consecutive failed invocations before an execution fails.
        clock: The clock for timers, timestamps and leases (default: wall clock).
        worker_id: Name of this worker in logs and leases (default: its instance id). It
            need not be unique: leases name the worker by ``owner``, which adds a random
            128-bit instance id made when the worker is built.
        host: Host name recorded in leases, for people (default: this host's name); like
            ``pid``, never used to decide a takeover.
        event_sinks: Where status-change events of its functions' executions go
            (:mod:`durable_ext.events`); the worker delivers the outbox between claims.
        idle_wait: With a store that pushes wake-ups, the longest an idle worker sleeps
            without one before it looks at the due-time index anyway.

    Example:
        >>> w = Worker("redis://127.0.0.1:6379/0", concurrency=4)  # doctest: +SKIP
        >>> w.register("orders", "shop.handlers:orders")  # doctest: +SKIP
        >>> w.install_signal_handlers(); w.run()  # doctest: +SKIP

    """

    def __init__(
        self,
        backend: str | Store | None = None,
        *,
        concurrency: int = 1,
        lease_seconds: float = 30.0,
        skew_margin: float = 5.0,
        poll_interval: float = 0.1,
        isolation: Literal["inline", "process"] = "inline",
        invocation_timeout: float = 900.0,
        shutdown_grace: float = 30.0,
        max_invocation_failures: int = 5,
        clock: Clock | None = None,
        worker_id: str | None = None,
        host: str | None = None,
        event_sinks: Sequence[EventSink] = (),
        idle_wait: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        if lease_seconds <= 0 or skew_margin < 0 or poll_interval <= 0 or idle_wait <= 0:
            raise ConfigError(
                "lease_seconds, poll_interval and idle_wait must be positive, skew_margin >= 0"
            )
        self.clock: Clock = clock or RealClock()
        # Leases are stamped and judged on this worker's wall clock (skewed or not).
        self.runtime = Runtime(
            backend,
            clock=self.clock,
            wall_clock=self.clock,
            isolation=isolation,
            invocation_timeout=invocation_timeout,
            max_invocation_failures=max_invocation_failures,
            lease_seconds=lease_seconds,
            name=worker_id,
            host=host,
            event_sinks=event_sinks,
        )
        self.engine: Engine = self.runtime.engine
        self.store: Store = self.runtime.store
        self.stats: WorkerStats = self.runtime.stats
        self.lease_ms = int(lease_seconds * 1000)
        self.margin_ms = int(skew_margin * 1000)
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.shutdown_grace = shutdown_grace
        self.id = self.runtime.name
        self._busy: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._renewer: threading.Thread | None = None
        self.idle_wait = idle_wait
        # optional store capabilities: claims instead of races, wake-ups instead of polls
        self._claims = self.store if isinstance(self.store, ClaimingStore) else None
        self.waker: Waker | None = (
            Waker(DueKind.ACTIVE) if isinstance(self.store, WakingStore) else None
        )
        self._subscription: Subscription | None = None
        self._next_due: int | None = None

    @property
    def owner(self) -> str:
        """Who holds this worker's leases: unique to it, whatever its id, host or pid."""
        return self.runtime.owner

    @property
    def host(self) -> str:
        """The host name in this worker's leases (for people)."""
        return self.runtime.host

    @property
    def pid(self) -> int:
        """The pid in this worker's leases (meaningless outside its PID namespace)."""
        return self.runtime.pid

    @pid.setter
    def pid(self, value: int) -> None:
        # What another PID namespace would make of it: tests set it to model that.
        self.runtime.pid = value

    @property
    def marks(self) -> Any:
        """The runtime's proof-of-life marks on this host."""
        return self.runtime.marks

    # ------------------------------------------------------------------ setup

    def register(self, function_name: str, handler: Any, *, durable: bool = True) -> None:
        """Register a handler object or ``"module:attr"`` under ``function_name``."""
        self.runtime.register(function_name, handler, durable=durable)

    def install_signal_handlers(self) -> None:
        """Stop gracefully on SIGTERM and SIGINT (call from the main thread).

        Also acts on a stop signal recorded while the process was starting (see
        :func:`durable_ext.fleet._signals.defer_stop_signals`), and unblocks both signals
        in case the process was started with them blocked.
        """

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("worker %s: signal %d, shutting down", self.id, signum)
            self.stop()

        for sig in STOP_SIGNALS:
            signal.signal(sig, on_signal)
        early = deferred_stop()
        if early is not None:
            on_signal(early, None)  # arrived while the worker was starting
        unblock_stop_signals()

    def stop(self) -> None:
        """Ask :meth:`run` to stop claiming work and shut down."""
        self._stopping.set()
        if self.waker is not None:
            self.waker.poke()

    def _listen(self) -> None:
        if self.waker is None:
            return
        assert isinstance(self.store, WakingStore)
        try:
            self._subscription = self.store.listen_due(self.waker.signal)
        except ConfigError as exc:  # the store was told not to send wake-ups: poll
            log.info("worker %s: no wake-ups (%s); polling", self.id, exc)
            self.waker = None

    def _idle(self, backoff: float, next_sweep: float) -> None:
        """Wait for work: woken by the store, or after ``backoff`` when it cannot wake us."""
        if self.waker is None or backoff > self.poll_interval:
            self._stopping.wait(backoff)
            return
        until_sweep = max(0.0, next_sweep - time.monotonic())
        self.waker.sleep(self.clock, self._next_due, min(self.idle_wait, until_sweep))

    # ------------------------------------------------------------------ main loop

    def run(
        self, *, max_seconds: float | None = None, until: Callable[[], bool] | None = None
    ) -> WorkerStats:
        """Claim and run work until :meth:`stop` (or ``max_seconds``, or ``until()``)."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        # Before the first lease: a worker killed at any point after this is provably gone.
        self.runtime.marks.hold(self.owner)
        self._renewer = threading.Thread(target=self._renew_loop, name="lease-renewer", daemon=True)
        self._renewer.start()
        self._listen()
        next_sweep = 0.0
        backoff = self.poll_interval
        try:
            while not self._stopping.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if until is not None and until():
                    break
                self._reap()
                if self.waker is not None:
                    self.waker.reset()  # what is signalled from now on is seen by _idle
                try:
                    if time.monotonic() >= next_sweep:
                        self.runtime.recover_leases(self.margin_ms)
                        next_sweep = time.monotonic() + max(
                            self.poll_interval, self.lease_ms / 4000
                        )
                    started = self._claim()
                    started += self.runtime.deliver_events()
                    backoff = self.poll_interval
                except StoreUnavailableError as exc:
                    log.warning("worker %s: store unavailable, retrying: %s", self.id, exc)
                    self.stats.add("errors")
                    started = 0
                    backoff = min(backoff * 2, 2.0)
                if not started:
                    self._idle(backoff, next_sweep)
        finally:
            self._shutdown()
        return self.stats

    def _reap(self) -> None:
        with self._lock:
            for arn in [a for a, t in self._busy.items() if not t.is_alive()]:
                del self._busy[arn]

    def _claim(self) -> int:
        with self._lock:
            free = self.concurrency - len(self._busy)
            busy = set(self._busy)
        if free <= 0:
            self._next_due = None
            return 0
        if self._claims is not None:
            claim = self._claims.claim_due(
                self.clock.now_ms(), kinds=DueKind.ACTIVE, functions=self.runtime.functions(),
                owner=self.owner, limit=free, hold_ms=min(self.lease_ms, 5000),
                exclude=sorted(busy),
            )
            entries, self._next_due = claim.entries, claim.next_due_ms
        else:
            entries = self.store.due(self.clock.now_ms(), kinds=DueKind.ACTIVE,
                                     limit=max(32, free * 16))
            # Workers see the same earliest entries; a random pick spreads them out
            # instead of making every worker race for the first one.
            random.shuffle(entries)
        picked: dict[str, DueEntry] = {}
        for entry in entries:
            if entry.arn in busy or entry.arn in picked or not self.runtime.mine(entry):
                continue
            picked[entry.arn] = entry
            if len(picked) >= free:
                break
        for arn, entry in picked.items():
            thread = threading.Thread(
                target=self._work, args=(entry,), daemon=True,
                name=f"work-{arn.rsplit('/', 1)[-1][:8]}",
            )
            with self._lock:
                self._busy[arn] = thread
            thread.start()
        return len(picked)

    def _work(self, entry: DueEntry) -> None:
        try:
            self._handle(entry)
        finally:
            if self.waker is not None:
                self.waker.poke()  # a slot is free: look for more work at once

    def _handle(self, entry: DueEntry) -> None:
        try:
            self.runtime.handle(entry)
        except (StoreError, OSError) as exc:
            log.warning("worker %s: %s on %s failed: %s", self.id, entry.kind, entry.arn, exc)
            self.stats.add("errors")
        except Exception:
            log.exception("worker %s: %s on %s crashed", self.id, entry.kind, entry.arn)
            self.stats.add("errors")

    def _renew_loop(self) -> None:
        period = self.lease_ms / 3000
        # keeps renewing through the shutdown grace period, until _shutdown is done
        while not self._closed.wait(period):
            for r in self.runtime.running():
                if r.lost.is_set():
                    continue
                try:
                    # the engine retries the races with the invocation's own checkpoints
                    ok = self.engine.renew_lease(
                        r.arn, r.invocation_id, self.clock.now_ms() + self.lease_ms
                    )
                except StoreError as exc:
                    log.warning("worker %s: renewal of %s failed: %s", self.id, r.arn, exc)
                    continue
                if not ok:
                    log.warning("worker %s: lease of %s was taken over; fencing it", self.id, r.arn)
                    r.lost.set()
                else:
                    self.stats.add("renewals")

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        """Let running work finish for the grace period, then release what is left."""
        self._stopping.set()
        end = time.monotonic() + self.shutdown_grace
        while time.monotonic() < end:
            self._reap()
            with self._lock:
                if not self._busy:
                    break
            time.sleep(0.02)
        for r in self.runtime.running():
            r.lost.set()  # whatever the handler still sends is refused from now on
            try:
                if self.engine.release_invocation(
                    r.arn, r.invocation_id, f"Worker {self.id} shut down; invocation released"
                ):
                    self.stats.add("released")
            except StoreError as exc:
                log.warning("worker %s: could not release %s: %s", self.id, r.arn, exc)
        self._closed.set()
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        self.runtime.marks.release(self.owner)
        log.info("worker %s stopped: %s", self.id, self.stats.as_dict())

    def close(self) -> None:
        """Close the store if the worker opened it."""
        self.runtime.close()
