"""RedisStore: executions in Redis 6.2+ (``redis://host:port/db``, ``rediss://`` for TLS).

Every commit is one ``EVALSHA`` of a Lua script (:mod:`durable_ext.backends._redis_lua`)
that compares the header revision and applies the whole batch atomically: the header, the
touched operation records, the new history events, the due-time index and the listing
indexes. Nothing is rewritten that the batch did not touch, so a checkpoint costs the same
at operation 10 as at operation 10,000. Reads of several keys run in one ``MULTI``
round trip, so they see one consistent snapshot.

URL options::

    redis://[:password@]host:6379/0?prefix=dx:&ttl=14d&socket_timeout=5

* ``prefix``: prefix of every key (default ``dx:``), so several stores share a database;
* ``ttl``: how long a finished execution is kept (seconds, or ``90s``/``15m``/``12h``/``14d``;
  default ``0``, keep forever). Its keys expire together; listings skip the expired ones;
* ``socket_timeout``, ``socket_connect_timeout``, ``ssl_cert_reqs``, ``ssl_ca_certs``,
  ``client_name``: passed to redis-py.

Connection failures and timeouts raise :class:`~durable_ext.errors.StoreUnavailableError`
after a few retries. Retrying a commit is safe: the script recognises a batch it already
applied (its commit id is stored with the header) and reports success without applying it twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode

from durable_ext._deps import require
from durable_ext.backends._base import page_marker
from durable_ext.backends._redis_lua import APPLY, DELETE, DUE, TOUCHED
from durable_ext.backends._remote import (
    RemoteStore,
    dumps,
    execution_id_of,
    list_key,
    marker_key,
    records,
    remote_options,
    sort_due,
    terminal,
)
from durable_ext.backends.store import (
    CommitBatch,
    CreateResult,
    DueEntry,
    ExecutionHeader,
    ExecutionPage,
    HistoryEvent,
    OperationRecord,
)
from durable_ext.errors import ConflictError, NotFoundError, StoreError, StoreUnavailableError
from durable_ext.spec import StoreSpec

__all__ = ["RedisStore"]

T = TypeVar("T")

_OWN_OPTIONS = ("prefix", "ttl")
_CLIENT_OPTIONS = (
    "socket_timeout",
    "socket_connect_timeout",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "client_name",
)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """redis-py errors -> the store's errors (transient ones are retryable)."""
    redis = require("redis", extra="redis", feature="the Redis backend")
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise StoreUnavailableError(f"Redis is unavailable during {what}: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise StoreError(f"Redis error during {what}: {exc}") from exc


class RedisStore(RemoteStore):
    """A store shared by every process that can reach one Redis primary.

    Args:
        client: A ``redis.Redis`` created with ``decode_responses=True``.
        prefix: Prefix of every key.
        ttl: Seconds a finished execution is kept; 0 keeps it forever.

    Example:
        >>> store = RedisStore.from_spec(parse_store("redis://127.0.0.1:6379/0"))  # doctest: +SKIP
        >>> store.name
        'redis'

    """

    name: ClassVar[str] = "redis"

    def __init__(self, client: Any, *, prefix: str = "dx:", ttl: float = 0.0) -> None:
        if not isinstance(prefix, str) or "|" in prefix:
            raise StoreError(f"invalid Redis key prefix {prefix!r}")
        self.client = client
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)
        self._apply = client.register_script(APPLY)
        self._due = client.register_script(DUE)
        self._touched = client.register_script(TOUCHED)
        self._delete = client.register_script(DELETE)

    @classmethod
    def from_spec(cls, spec: StoreSpec, **kwargs: Any) -> RedisStore:
        """Build from ``redis://`` or ``rediss://`` URL; ``client=`` injects a client."""
        url, prefix, ttl, client = remote_options(
            spec, kwargs, _OWN_OPTIONS + _CLIENT_OPTIONS, prefix="dx:"
        )
        opts = spec.options
        if kwargs:
            raise TypeError(f"RedisStore takes prefix=, ttl=, client=; got {sorted(kwargs)}")
        if client is None:
            redis = require("redis", extra="redis", feature="the Redis backend")
            base = url.split("?", 1)[0]
            passed = {k: v for k, v in opts.items() if k in _CLIENT_OPTIONS}
            if passed:
                base += "?" + urlencode(passed)
            client = redis.Redis.from_url(base, decode_responses=True)
        return cls(client, prefix=prefix, ttl=ttl)

    # ------------------------------------------------------------------ plumbing

    def _claim_secret(self, offer: str) -> str:
        key = f"{self.prefix}secret"
        # SET NX: the first process to ask makes the secret; GET returns the winner's.
        self.client.set(key, offer, nx=True)
        value: str = self.client.get(key)
        return value

    def _key(self, exec_id: str, part: str) -> str:
        return f"{self.prefix}x:{exec_id}:{part}"

    def _errors(self, what: str) -> AbstractContextManager[None]:
        return _translated(what)

    def _snapshot(self, arn: str, what: str, build: Callable[[Any, str], None]) -> list[Any]:
        """Run ``build(pipe, exec_id)``'s reads in one MULTI after checking the ARN exists."""
        exec_id = execution_id_of(arn)

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=True)
            pipe.hget(self._key(exec_id, "h"), "doc")
            build(pipe, exec_id)
            result: list[Any] = pipe.execute()
            return result

        out = self._call(what, run)
        doc = out[0]
        if doc is None or json.loads(doc)["arn"] != arn:
            raise NotFoundError(f"no durable execution {arn!r}")
        return out[1:]

    def _argv(self, batch: CommitBatch, mode: str) -> list[Any]:
        h = batch.header
        argv: list[Any] = [
            self.prefix,
            h.execution_id,
            mode,
            batch.expected_revision,
            h.revision,
            dumps(h.to_dict()),
            h.status,
            h.function_name,
            h.name,
            h.arn,
            list_key(h.start_ms, h.arn),
            batch.events[0].event_id if batch.events else 0,
            self.ttl_ms,
            "1" if terminal(h) else "0",
            uuid.uuid4().hex,
            len(batch.operations),
        ]
        for op in batch.operations:
            argv += [op.op_id, op.touched, dumps(op.to_dict())]
        argv.append(len(batch.events))
        argv += [dumps(ev.data) for ev in batch.events]
        argv.append(len(batch.due_set))
        for d in batch.due_set:
            if "|" in d.kind:
                raise StoreError(f"commit for {h.arn}: due kind {d.kind!r} contains '|'")
            argv += [
                d.key,
                d.kind,
                d.due_ms,
                dumps({"arn": d.arn, "due_ms": d.due_ms, "data": d.data}),
            ]
        argv.append(len(batch.due_clear))
        argv += list(batch.due_clear)
        return argv

    def _run_apply(self, batch: CommitBatch, mode: str) -> list[str]:
        argv = self._argv(batch, mode)
        reply: list[str] = self._call(
            f"{mode} of {batch.header.arn}", lambda: self._apply(args=argv)
        )
        if reply[0] == "badevent":
            first = batch.events[0].event_id
            raise StoreError(
                f"commit for {batch.header.arn}: event id {first} breaks the sequence "
                f"(expected {int(reply[1]) + 1})"
            )
        if reply[0] == "notfound":
            raise NotFoundError(f"no durable execution {batch.header.arn!r}")
        return reply

    # ------------------------------------------------------------------ Store API

    def create(self, batch: CommitBatch) -> CreateResult:
        """Create unless ``(function_name, name)`` is taken; one script call."""
        h = batch.header
        self._check(batch)
        if batch.events and batch.events[0].event_id != 1:
            raise StoreError(f"create of {h.arn}: the first event id must be 1")
        reply = self._run_apply(batch, "create")
        if reply[0] == "exists":
            if reply[1] == h.arn:
                return CreateResult(True, h)  # a retry of a create that went through
            return CreateResult(False, self.header(reply[1]))
        if reply[0] == "conflict":
            raise ConflictError(f"execution {h.arn} already exists")
        return CreateResult(True, h)

    def commit(self, batch: CommitBatch) -> None:
        """Apply ``batch`` in one script call if the stored revision matches."""
        self._check(batch)
        reply = self._run_apply(batch, "commit")
        if reply[0] == "conflict":
            raise ConflictError(
                f"execution {batch.header.arn} changed concurrently: expected revision "
                f"{batch.expected_revision}, found {reply[1]}"
            )

    def delete(self, arn: str) -> bool:
        """Remove every key, index entry and the name claim of ``arn``: one script call."""
        try:
            h = self.header(arn)
        except NotFoundError:
            return False
        argv = [self.prefix, h.execution_id, arn, list_key(h.start_ms, arn)]
        done: int = self._call(f"delete of {arn}", lambda: self._delete(args=argv))
        return bool(done)

    def header(self, arn: str) -> ExecutionHeader:
        """Return the current header."""
        exec_id = execution_id_of(arn)
        doc = self._call(f"read of {arn}", lambda: self.client.hget(self._key(exec_id, "h"), "doc"))
        if doc is None:
            raise NotFoundError(f"no durable execution {arn!r}")
        header = ExecutionHeader.from_dict(json.loads(doc))
        if header.arn != arn:
            raise NotFoundError(f"no durable execution {arn!r}")
        return header

    def operations(self, arn: str, ids: Iterable[str] | None = None) -> list[OperationRecord]:
        """Operation records in creation order."""
        wanted = None if ids is None else list(dict.fromkeys(ids))
        if wanted == []:
            self.header(arn)
            return []

        def build(pipe: Any, exec_id: str) -> None:
            if wanted is None:
                pipe.hvals(self._key(exec_id, "o"))
            else:
                pipe.hmget(self._key(exec_id, "o"), wanted)

        (raw,) = self._snapshot(arn, f"read of {arn}", build)
        return records(r for r in raw if r is not None)

    def touched_after(self, arn: str, seq: int) -> list[OperationRecord]:
        """Return records with ``touched > seq``: one script call over the touched index."""
        exec_id = execution_id_of(arn)
        reply: list[Any] = self._call(
            f"read of {arn}", lambda: self._touched(args=[self.prefix, exec_id, int(seq)])
        )
        if not reply or int(reply[0]) == 0:
            raise NotFoundError(f"no durable execution {arn!r}")
        return records(reply[1:])

    def _events(self, arn: str, after: int, limit: int | None, reverse: bool) -> list[HistoryEvent]:
        """History events; a slice of the event list (LRANGE)."""
        if reverse:

            def build(pipe: Any, exec_id: str) -> None:
                pipe.llen(self._key(exec_id, "e"))

            (count,) = self._snapshot(arn, f"history of {arn}", build)
            end = count if after <= 0 else min(after - 1, count)
            begin = 0 if limit is None else max(0, end - limit)
            if end <= begin:
                return []
            first = begin + 1

            def rng(pipe: Any, exec_id: str) -> None:
                pipe.lrange(self._key(exec_id, "e"), begin, end - 1)

            (rows,) = self._snapshot(arn, f"history of {arn}", rng)
            events = [
                HistoryEvent(event_id=first + i, data=json.loads(r)) for i, r in enumerate(rows)
            ]
            return list(reversed(events))
        begin = max(0, after)
        stop = -1 if limit is None else begin + limit - 1

        def fwd(pipe: Any, exec_id: str) -> None:
            pipe.lrange(self._key(exec_id, "e"), begin, stop)

        (rows,) = self._snapshot(arn, f"history of {arn}", fwd)
        return [
            HistoryEvent(event_id=begin + 1 + i, data=json.loads(r)) for i, r in enumerate(rows)
        ]

    @staticmethod
    def _entry(arn: str | None, key: str, stored: str) -> DueEntry:
        kind, _, body = stored.partition("|")
        d = json.loads(body)
        return DueEntry(
            arn=arn or d["arn"], key=key, kind=kind, due_ms=int(d["due_ms"]), data=d["data"]
        )

    def _read_due(
        self, until_ms: int | None, arn: str | None, kinds: list[str] | None, limit: int | None
    ) -> list[DueEntry]:
        """Due entries, earliest first; across executions through the due-time index."""
        if arn is not None:

            def build(pipe: Any, exec_id: str) -> None:
                pipe.hgetall(self._key(exec_id, "d"))

            (rows,) = self._snapshot(arn, f"due entries of {arn}", build)
            entries = [self._entry(arn, k, v) for k, v in rows.items()]
            entries = [
                e
                for e in entries
                if (until_ms is None or e.due_ms <= until_ms) and (kinds is None or e.kind in kinds)
            ]
            return sort_due(entries, limit)
        upto = "+inf" if until_ms is None else str(int(until_ms))
        args = [self.prefix, upto, limit or 0, *(kinds or [])]
        flat: list[Any] = self._call("due-time index read", lambda: self._due(args=args))
        found = []
        for i in range(0, len(flat), 3):
            key = flat[i].partition("|")[2]
            found.append(self._entry(None, key, flat[i + 2]))
        return sort_due(found, limit)

    def _list(
        self, function_name: str | None, status: str | None, limit: int | None, marker: str | None
    ) -> ExecutionPage:
        """Headers newest first, paged through the lexically ordered listing indexes."""
        p = self.prefix
        if function_name is not None and status is not None:
            index = f"{p}l:fs:{function_name}:{status}"
        elif function_name is not None:
            index = f"{p}l:f:{function_name}"
        elif status is not None:
            index = f"{p}l:s:{status}"
        else:
            index = f"{p}l:a"
        start = "(" + marker_key(marker) if marker else "-"
        headers: list[ExecutionHeader] = []
        chunk = max(16, min(limit or 500, 500))
        while limit is None or len(headers) < limit:
            members: list[str] = self._call(
                "execution listing",
                partial(self.client.zrangebylex, index, start, "+", start=0, num=chunk),
            )
            if not members:
                break
            docs = self._docs([m.split("|", 1)[1] for m in members])
            stale = []
            for member, doc in zip(members, docs, strict=True):
                if doc is None:
                    stale.append(member)  # expired (ttl) or never finished creating
                    continue
                h = ExecutionHeader.from_dict(json.loads(doc))
                if status is not None and h.status != status:
                    continue
                headers.append(h)
                if limit is not None and len(headers) == limit:
                    break
            if stale:
                self._call("listing cleanup", partial(self.client.zrem, index, *stale))
            start = "(" + members[-1]
            if len(members) < chunk:
                break
        if limit is not None and len(headers) == limit:
            last = headers[-1]
            more = self._call(
                "execution listing",
                lambda: self.client.zrangebylex(
                    index, "(" + list_key(last.start_ms, last.arn), "+", start=0, num=1
                ),
            )
            return ExecutionPage(headers, page_marker(last) if more else None)
        return ExecutionPage(headers, None)

    def _docs(self, arns: list[str]) -> list[str | None]:
        def run() -> list[str | None]:
            pipe = self.client.pipeline(transaction=False)
            for a in arns:
                pipe.hget(self._key(execution_id_of(a), "h"), "doc")
            out: list[str | None] = pipe.execute()
            return out

        return self._call("execution listing", run)

    def close(self) -> None:
        """Close the connection pool."""
        with _translated("close"):
            self.client.close()
