"""LISTEN/NOTIFY wake-ups of the PostgreSQL store.

Every commit that sets due entries sends, in the same transaction, one ``NOTIFY`` on the
store's channel with payload ``"<kind>:<due_ms>,<kind>:<due_ms>..."`` (the earliest due
time per kind it set); PostgreSQL delivers it when, and only if, the commit succeeds.
A :class:`DueListener` holds one connection of its own (outside the pool: it is busy
for as long as it listens), runs ``LISTEN`` and hands each signal to a callback.

When the connection drops (a server restart, a failover), the listener reconnects with
bounded backoff and then calls ``on_due("", 0)``: signals sent meanwhile are lost, so the
subscriber should look at the due-time index once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from durable_ext.backends._postgres_conn import PostgresOptions, Secrets, driver

__all__ = ["DueListener", "channel_of", "parse_wake"]

log = logging.getLogger("durable_ext.backends.postgres")

_MAX_BACKOFF = 2.0


def channel_of(schema: str) -> str:
    """Return the NOTIFY channel of the store in ``schema``."""
    return f"{schema}_due"


def parse_wake(payload: str) -> list[tuple[str, int]]:
    """``"invoke:1700000000000,wake:..."`` -> ``[("invoke", 1700000000000), ...]``.

    Payloads that do not have this shape (another program on the channel) are ignored.
    """
    out = []
    for part in payload.split(","):
        kind, _, ms = part.rpartition(":")
        if kind and ms.isdigit():
            out.append((kind, int(ms)))
    return out


class DueListener:
    """A thread that LISTENs on the store's channel and calls ``on_due(kind, due_ms)``."""

    def __init__(
        self, opts: PostgresOptions, secrets: Secrets, on_due: Callable[[str, int], None]
    ) -> None:
        self._opts = opts
        self._secrets = secrets
        self._on_due = on_due
        self._stop = threading.Event()
        self._conn: Any = None
        self._lock = threading.Lock()
        self.connected = threading.Event()
        """Set while the listener holds a connection that is LISTENing."""
        self.reconnects = 0
        """How many times the connection was re-established after a loss."""
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self._thread.start()

    def _connect(self) -> Any:
        psycopg = driver()
        conn = psycopg.connect(self._opts.conninfo, autocommit=True)
        channel = psycopg.sql.Identifier(channel_of(self._opts.schema))
        conn.execute(psycopg.sql.SQL("LISTEN {}").format(channel))
        return conn

    def _run(self) -> None:
        psycopg = driver()
        delay = 0.05
        first = True
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except psycopg.Error as exc:
                log.warning("LISTEN at %s failed, retrying: %s", self._opts.display,
                            self._secrets.mask(str(exc).strip()))
                self._stop.wait(delay * (0.5 + random.random()))
                delay = min(delay * 2, _MAX_BACKOFF)
                continue
            with self._lock:
                self._conn = conn
            self.connected.set()
            delay = 0.05
            if not first:
                self.reconnects += 1
            first = False
            # whatever was sent before LISTEN took effect (or while we were away) is lost
            self._deliver("", 0)
            try:
                while not self._stop.is_set():
                    # wakes at least once a second to notice close()
                    for note in conn.notifies(timeout=1.0):
                        for kind, due_ms in parse_wake(note.payload):
                            self._deliver(kind, due_ms)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning("LISTEN connection at %s lost, reconnecting: %s",
                                self._opts.display, self._secrets.mask(str(exc).strip()))
            finally:
                self.connected.clear()
                with self._lock:
                    self._conn = None
                with contextlib.suppress(psycopg.Error):  # closing a broken connection
                    conn.close()

    def _deliver(self, kind: str, due_ms: int) -> None:
        try:
            self._on_due(kind, due_ms)
        except Exception:  # a subscriber's bug must not end the listener
            log.exception("wake-up callback failed")

    def close(self) -> None:
        """Stop listening and close the connection (waits up to a few seconds)."""
        self._stop.set()
        self._thread.join(timeout=5)
