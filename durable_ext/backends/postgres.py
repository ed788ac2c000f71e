"""PostgresStore: executions in PostgreSQL 12+ (``postgres://user:pw@host:5432/db?schema=...``).

The tables are described in :mod:`durable_ext.backends._postgres_schema` and created or
migrated by ``durable-ext backend init postgres://...`` (or by the store itself with
``init=true``). The SQL is in :mod:`durable_ext.backends._postgres_sql`.

A checkpoint batch is **one statement, one transaction, one round trip**: the header
update compares the revision (the compare-and-set) and the operation, event and due-entry
rows of the batch are upserted, appended or deleted in the same statement, only when the
header matched. Nothing is rewritten that the batch did not touch, so a checkpoint costs
the same at operation 10 as at operation 10,000. Every read of one execution is one
statement too, which checks the execution exists.

URL options::

    postgres://user:pw@db.internal:5432/app?schema=durable&sslmode=verify-full
        &pool_size=10&statement_timeout=30s&ttl=14d

* ``schema``: the schema holding the tables (default ``durable_ext``), so several stores
  share a database;
* ``pool_size`` (default 10), ``pool_timeout`` (seconds to wait for a connection, 10);
* ``statement_timeout``: server-side limit of each statement (default ``30s``; 0: none);
* ``ttl``: how long a finished execution is kept (``90s``/``15m``/``12h``/``14d``; default
  0, forever); expired executions vanish from reads at once and are deleted in batches;
* ``notify``: send LISTEN/NOTIFY wake-ups to fleet workers (default ``true``);
* ``init``: create or migrate the schema when the store opens (default ``false``);
* ``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``, ``connect_timeout``,
  ``application_name``, ``target_session_attrs``: passed to libpq.

Lost connections, failovers, serialization failures and pool timeouts raise
:class:`~durable_ext.errors.StoreUnavailableError` after a few retries with backoff.
Retrying a commit is safe: its commit id is stored with the header, so a retry of a commit
whose reply was lost is recognised and reported as done without being applied twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, TypeVar

from durable_ext.backends import _postgres_sql as q
from durable_ext.backends._base import page_marker
from durable_ext.backends._postgres_conn import (
    PostgresOptions,
    Secrets,
    diagnose_connect,
    driver,
    open_pool,
    parse_options,
    pool_timeout,
    translated,
)
from durable_ext.backends._postgres_listen import DueListener, channel_of
from durable_ext.backends._postgres_schema import SCHEMA_VERSION, migrate, read_version
from durable_ext.backends._remote import (
    RemoteStore,
    dumps,
    execution_id_of,
    records,
    retrying,
    terminal,
)
from durable_ext.backends._state import parse_marker
from durable_ext.backends.store import (
    CommitBatch,
    CreateResult,
    DueClaim,
    DueEntry,
    ExecutionHeader,
    ExecutionPage,
    HistoryEvent,
    OperationRecord,
    Subscription,
)
from durable_ext.errors import ConfigError, ConflictError, NotFoundError, StoreError
from durable_ext.spec import StoreSpec, parse_store

__all__ = ["PostgresStore"]

T = TypeVar("T")
log = logging.getLogger("durable_ext.backends.postgres")

_ATTEMPTS = 6
_FOREVER = 2**62  # "no upper bound" for bigint comparisons
_PURGE_EVERY = 60.0
_PURGE_BATCH = 500


class PostgresStore(RemoteStore):
    """A store shared by every process that can reach one PostgreSQL database.

    Args:
        options: Parsed URL options (see :func:`parse_options`).
        spec: The URL the options came from (its password is masked in every message).
        pool: A psycopg ``ConnectionPool`` of autocommit connections to use instead of
            opening one (the store then does not close it).

    Example:
        >>> store = open_store("postgres://app@db:5432/app?schema=durable")  # doctest: +SKIP
        >>> store.name
        'postgres'

    """

    name: ClassVar[str] = "postgres"

    def __init__(self, options: PostgresOptions, spec: StoreSpec, *, pool: Any = None) -> None:
        self.options = options
        self.schema = options.schema
        self.ttl_ms = int(options.ttl * 1000)
        self._secrets = Secrets(spec)
        self._where = options.display
        self._sql: dict[str, str] = {}
        self._ready = False
        self._ready_lock = threading.Lock()
        self._next_purge = 0.0
        self._owns_pool = pool is None
        self.pool = pool if pool is not None else open_pool(options)
        self.channel = channel_of(options.schema)
        self.commits = 0
        """Commit statements sent so far (retries included): one per batch."""

    @classmethod
    def from_spec(cls, spec: StoreSpec, **kwargs: Any) -> PostgresStore:
        """Build from a ``postgres://`` URL.

        ``schema=``, ``ttl=``, ``pool_size=``, ``init=`` and ``pool=`` (a psycopg pool)
        may be given as keywords.
        """
        pool = kwargs.pop("pool", None)
        opts = parse_options(spec, kwargs)
        if kwargs:
            raise TypeError(
                "PostgresStore takes schema=, ttl=, pool_size=, init=, pool=; "
                f"got {sorted(kwargs)}"
            )
        return cls(opts, spec, pool=pool)

    # ------------------------------------------------------------------ plumbing

    def _s(self, template: str) -> str:
        """Return ``template`` with the schema filled in (checked when the URL was parsed)."""
        text = self._sql.get(template)
        if text is None:
            text = self._sql[template] = template.replace("{s}", f'"{self.schema}"')
        return text

    def _errors(self, what: str) -> AbstractContextManager[None]:
        return translated(what, self._where, self._secrets)

    def _once(self, fn: Callable[[Any], T], what: str = "request") -> T:
        """Run ``fn(conn)`` on a pooled connection (checking the schema on first use)."""
        try:
            with self.pool.connection() as conn:
                if not self._ready:
                    self._prepare(conn)
                return fn(conn)
        except pool_timeout() as exc:
            diagnose_connect(self.options, self._secrets, what)
            raise exc

    def _run(self, what: str, fn: Callable[[Any], T]) -> T:
        """``_once`` with the driver's errors translated; transient failures are retried."""

        def once() -> T:
            with self._errors(what):
                return self._once(fn, what)

        return retrying(once, attempts=_ATTEMPTS, what=what)

    def _prepare(self, conn: Any) -> None:
        """Check (or, with ``init``, create) the schema once per store object."""
        with self._ready_lock:
            if self._ready:
                return
            version = read_version(conn, self.schema)
            if version != SCHEMA_VERSION and self.options.init:
                migrate(conn, self.schema)
            elif version is None:
                raise StoreError(
                    f"there is no durable_ext store in schema {self.schema!r} at "
                    f"{self._where}; run: durable-ext backend init '{self._where}'"
                )
            elif version < SCHEMA_VERSION:
                raise StoreError(
                    f"the store in schema {self.schema!r} at {self._where} is at version "
                    f"{version}, this durable_ext needs {SCHEMA_VERSION}; run: "
                    f"durable-ext backend init '{self._where}'"
                )
            elif version > SCHEMA_VERSION:
                raise ConfigError(
                    f"the store in schema {self.schema!r} at {self._where} is at version "
                    f"{version}, newer than this durable_ext understands; upgrade it"
                )
            self._ready = True

    def init_schema(self) -> tuple[int | None, int]:
        """Create or migrate the schema now; returns (version before, version after)."""
        with (
            translated("schema migration", self._where, self._secrets),
            self.pool.connection() as conn,
        ):
            result = migrate(conn, self.schema)
        self._ready = True
        return result

    def _claim_secret(self, offer: str) -> str:
        def run(conn: Any) -> str:
            conn.execute(self._s(q.SECRET_PUT), (offer,))
            row = conn.execute(self._s(q.SECRET_GET)).fetchone()
            return str(row[0]) if row else ""

        return self._once(run)  # RemoteStore.secret translates and retries

    def _params(self, batch: CommitBatch, cid: str) -> dict[str, Any]:
        h = batch.header
        ops = {op.op_id: op for op in batch.operations}  # one row per id: the last wins
        due = {d.key: d for d in batch.due_set}
        earliest: dict[str, int] = {}
        for d in due.values():
            if ":" in d.kind or "," in d.kind:
                raise StoreError(f"commit for {h.arn}: due kind {d.kind!r} contains ':' or ','")
            earliest[d.kind] = min(earliest.get(d.kind, d.due_ms), d.due_ms)
        wake = ",".join(f"{k}:{ms}" for k, ms in sorted(earliest.items()))
        return {
            "id": h.execution_id,
            "arn": h.arn,
            "fn": h.function_name,
            "name": h.name,
            "status": h.status,
            "start_ms": h.start_ms,
            "rev": h.revision,
            "expected": batch.expected_revision,
            "doc": dumps(h.to_dict()),
            "cid": cid,
            "event_count": batch.events[-1].event_id if batch.events else None,
            "first_event": batch.events[0].event_id if batch.events else 0,
            "expire": self.ttl_ms > 0 and terminal(h),
            "ttl_ms": self.ttl_ms,
            "op_ids": list(ops),
            "op_idx": [op.index for op in ops.values()],
            "op_touched": [op.touched for op in ops.values()],
            "op_docs": [dumps(op.to_dict()) for op in ops.values()],
            "ev_docs": [dumps(ev.data) for ev in batch.events],
            "due_clear": [k for k in dict.fromkeys(batch.due_clear) if k not in due],
            "due_keys": list(due),
            "due_kinds": [d.kind for d in due.values()],
            "due_ms": [d.due_ms for d in due.values()],
            "due_data": [dumps(d.data) for d in due.values()],
            "channel": self.channel,
            "wake": wake if self.options.notify else "",
        }

    def _write(self, statement: str, params: dict[str, Any], what: str) -> bool:
        """Run a create/commit statement; whether its header CTE matched."""

        def run(conn: Any) -> bool:
            self.commits += 1
            row = conn.execute(self._s(statement), params).fetchone()
            return bool(row and row[0])

        return self._run(what, run)

    def _state(self, exec_id: str, what: str) -> tuple[str, int, str, int] | None:
        def run(conn: Any) -> tuple[str, int, str, int] | None:
            row = conn.execute(self._s(q.STATE), (exec_id,)).fetchone()
            return None if row is None else (row[0], int(row[1]), row[2], int(row[3]))

        return self._run(what, run)

    # ------------------------------------------------------------------ Store API

    def create(self, batch: CommitBatch) -> CreateResult:
        """Claim the name and write the execution in one statement."""
        h = batch.header
        self._check(batch)
        if batch.events and batch.events[0].event_id != 1:
            raise StoreError(f"create of {h.arn}: the first event id must be 1")
        params = self._params(batch, uuid.uuid4().hex)
        params["event_count"] = params["event_count"] or 0
        for _ in range(3):
            if self._write(q.CREATE, params, f"create of {h.arn}"):
                return CreateResult(True, h)

            def holder(conn: Any) -> tuple[str, bool] | None:
                row = conn.execute(self._s(q.HOLDER), (h.function_name, h.name)).fetchone()
                return None if row is None else (row[0], bool(row[1]))

            held = self._run(f"read of name {h.name}", holder)
            if held is None:
                if self._state(h.execution_id, f"create of {h.arn}") is None:
                    continue  # the holder was purged meanwhile: try again
                raise ConflictError(f"execution {h.arn} already exists")
            arn, expired = held
            if arn == h.arn:
                return CreateResult(True, h)  # a retry of a create that went through
            if not expired:
                return CreateResult(False, self.header(arn))
            self._purge(arn)  # an expired holder frees its name, as if it were gone
        raise ConflictError(f"execution name {h.name!r} is being created concurrently")

    def commit(self, batch: CommitBatch) -> None:
        """Apply ``batch`` in one statement if the stored revision matches."""
        self._check(batch)
        h = batch.header
        params = self._params(batch, uuid.uuid4().hex)
        cid = params["cid"]
        if not self._write(q.COMMIT, params, f"commit of {h.arn}"):
            found = self._state(h.execution_id, f"commit of {h.arn}")
            if found is None or found[0] != h.arn:
                raise NotFoundError(f"no durable execution {h.arn!r}")
            _, revision, stored_cid, event_count = found
            if not (revision == h.revision and stored_cid == cid):
                if revision == batch.expected_revision and batch.events:
                    raise StoreError(
                        f"commit for {h.arn}: event id {batch.events[0].event_id} breaks the "
                        f"sequence (expected {event_count + 1})"
                    )
                raise ConflictError(
                    f"execution {h.arn} changed concurrently: expected revision "
                    f"{batch.expected_revision}, found {revision}"
                )
            # else: a retried statement whose first attempt had been applied
        if params["expire"] and time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + _PURGE_EVERY
            try:
                self.purge_expired()
            except StoreError as exc:  # the commit went through; clean-up waits for later
                log.warning("clean-up of expired executions failed: %s", exc)

    def purge_expired(self, limit: int = _PURGE_BATCH) -> int:
        """Delete up to ``limit`` expired executions with all their rows; how many."""
        return self._purge(None, limit)

    def _purge(self, arn: str | None, limit: int = _PURGE_BATCH) -> int:
        def run(conn: Any) -> int:
            row = conn.execute(self._s(q.PURGE), {"arn": arn, "limit": limit}).fetchone()
            return int(row[0]) if row else 0

        return self._run("clean-up of expired executions", run)

    def delete(self, arn: str) -> bool:
        """Remove the execution with all its rows and its name claim, in one statement."""
        params = {"id": execution_id_of(arn), "arn": arn}

        def run(conn: Any) -> bool:
            row = conn.execute(self._s(q.DELETE), params).fetchone()
            return bool(row and row[0])

        return self._run(f"deletion of {arn}", run)

    def header(self, arn: str) -> ExecutionHeader:
        """Return the current header."""
        exec_id = execution_id_of(arn)

        def run(conn: Any) -> Any:
            return conn.execute(self._s(q.HEADER), (exec_id, arn)).fetchone()

        row = self._run(f"read of {arn}", run)
        if row is None:
            raise NotFoundError(f"no durable execution {arn!r}")
        return ExecutionHeader.from_dict(json.loads(row[0]))

    def _rows(self, arn: str, statement: str, what: str, **params: Any) -> list[Any]:
        """Rows of one execution's statement (see ``_ONE``): NotFoundError if none."""
        params.update(id=execution_id_of(arn), arn=arn)

        def run(conn: Any) -> list[Any]:
            rows: list[Any] = conn.execute(self._s(statement), params).fetchall()
            return rows

        rows = self._run(what, run)
        if not rows:
            raise NotFoundError(f"no durable execution {arn!r}")
        return [r for r in rows if r[0] is not None]

    def operations(self, arn: str, ids: Iterable[str] | None = None) -> list[OperationRecord]:
        """Operation records in creation order."""
        if ids is None:
            rows = self._rows(arn, q.OPS_ALL, f"read of {arn}")
        else:
            rows = self._rows(arn, q.OPS_BY_ID, f"read of {arn}", ids=list(dict.fromkeys(ids)))
        return records(r[0] for r in rows)

    def touched_after(self, arn: str, seq: int) -> list[OperationRecord]:
        """Return records with ``touched > seq`` through the touched index."""
        rows = self._rows(arn, q.TOUCHED, f"delta of {arn}", seq=int(seq))
        return records(r[0] for r in rows)

    def _events(self, arn: str, after: int, limit: int | None, reverse: bool) -> list[HistoryEvent]:
        if reverse:
            before = after if after > 0 else _FOREVER
            rows = self._rows(arn, q.EVENTS_BEFORE, f"history of {arn}", before=before,
                              limit=limit)
        else:
            rows = self._rows(arn, q.EVENTS_AFTER, f"history of {arn}", after=max(0, after),
                              limit=limit)
        return [HistoryEvent(event_id=int(r[0]), data=json.loads(r[1])) for r in rows]

    def _read_due(
        self, until_ms: int | None, arn: str | None, kinds: list[str] | None, limit: int | None
    ) -> list[DueEntry]:
        params: dict[str, Any] = {
            "until": _FOREVER if until_ms is None else int(until_ms),
            "any_kind": kinds is None,
            "kinds": kinds or [],
            "limit": limit,
        }
        if arn is not None:
            rows = self._rows(arn, q.DUE_OF, f"due entries of {arn}", **params)
            return [
                DueEntry(arn=arn, key=r[0], kind=r[1], due_ms=int(r[2]), data=json.loads(r[3]))
                for r in rows
            ]

        def run(conn: Any) -> list[Any]:
            found: list[Any] = conn.execute(self._s(q.DUE_ALL), params).fetchall()
            return found

        return [
            DueEntry(arn=r[0], key=r[1], kind=r[2], due_ms=int(r[3]), data=json.loads(r[4]))
            for r in self._run("due-time index read", run)
        ]

    def claim_due(
        self,
        now_ms: int,
        *,
        kinds: Sequence[str],
        functions: Sequence[str],
        owner: str,
        limit: int,
        hold_ms: int,
        exclude: Sequence[str] = (),
    ) -> DueClaim:
        """Claim due entries with ``FOR UPDATE SKIP LOCKED`` (see ``ClaimingStore``)."""
        params = {
            "now": int(now_ms),
            "kinds": list(kinds),
            "fns": list(functions),
            "exclude": list(exclude),
            "owner": owner,
            "limit": int(limit),
            "hold_ms": int(hold_ms),
        }

        def run(conn: Any) -> list[Any]:
            rows: list[Any] = conn.execute(self._s(q.CLAIM), params).fetchall()
            return rows

        rows = self._run("claim of due entries", run)
        entries = [
            DueEntry(arn=r[0], key=r[1], kind=r[2], due_ms=int(r[3]), data=json.loads(r[4]))
            for r in rows
            if r[0] is not None
        ]
        entries.sort(key=lambda d: (d.due_ms, d.arn, d.key))
        later = next((r[3] for r in rows if r[0] is None), None)
        return DueClaim(entries, None if later is None else int(later))

    def listen_due(self, on_due: Callable[[str, int], None]) -> Subscription:
        """LISTEN for the wake-ups commits send (see ``WakingStore``)."""
        if not self.options.notify:
            raise ConfigError(f"{self._where} has notify=false: commits send no wake-ups")
        return DueListener(self.options, self._secrets, on_due)

    def _list(
        self, function_name: str | None, status: str | None, limit: int | None, marker: str | None
    ) -> ExecutionPage:
        """Headers newest first, paged by ``(start_ms, arn)``."""
        where = [q.LIST]
        params: dict[str, Any] = {}
        if function_name is not None:
            where.append("x.function_name = %(fn)s")
            params["fn"] = function_name
        if status is not None:
            where.append("x.status = %(status)s")
            params["status"] = status
        if marker:
            start_ms, after_arn = parse_marker(marker)
            where.append(
                "(x.start_ms < %(m_start)s OR (x.start_ms = %(m_start)s AND x.arn > %(m_arn)s))"
            )
            params.update(m_start=start_ms, m_arn=after_arn)
        statement = " AND ".join(where) + " ORDER BY x.start_ms DESC, x.arn LIMIT %(limit)s"
        params["limit"] = None if limit is None else limit + 1

        def run(conn: Any) -> list[Any]:
            found: list[Any] = conn.execute(self._s(statement), params).fetchall()
            return found

        rows = self._run("execution listing", run)
        headers = [ExecutionHeader.from_dict(json.loads(r[0])) for r in rows]
        if limit is not None and len(headers) > limit:
            headers = headers[:limit]
            return ExecutionPage(headers, page_marker(headers[-1]))
        return ExecutionPage(headers, None)

    def close(self) -> None:
        """Close the connection pool (unless it was given to the store)."""
        if self._owns_pool:
            self.pool.close()


def open_postgres(url: str, **kwargs: Any) -> PostgresStore:
    """Open a :class:`PostgresStore` from a URL string (a shortcut for tests and the CLI)."""
    driver()
    return PostgresStore.from_spec(parse_store(url), **kwargs)
