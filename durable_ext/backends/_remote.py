"""Helpers shared by the stores that keep executions in a remote database (Redis, DynamoDB)."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from durable_ext.backends._base import StoreBase
from durable_ext.backends._state import parse_marker, reject_unknown_options
from durable_ext.backends.store import (
    SECRET_BYTES,
    TERMINAL_STATUSES,
    CommitBatch,
    DueEntry,
    ExecutionHeader,
    HistoryEvent,
    OperationRecord,
)
from durable_ext.errors import (
    ConfigError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from durable_ext.spec import StoreSpec

__all__ = [
    "RemoteStore",
    "dumps",
    "execution_id_of",
    "list_key",
    "marker_key",
    "parse_duration",
    "records",
    "remote_options",
    "retrying",
    "sort_due",
    "terminal",
]

T = TypeVar("T")

_MAX_MS = 10**13 - 1  # epoch ms stays below this until the year 2286
_ATTEMPTS = 6


def dumps(value: Any) -> str:
    """Compact JSON, the form every record is stored in."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def execution_id_of(arn: str) -> str:
    """Return the execution id (last ``/`` segment) of an execution ARN."""
    if not isinstance(arn, str) or "/" not in arn:
        raise NotFoundError(f"no durable execution {arn!r}: not an execution ARN")
    exec_id = arn.rsplit("/", 1)[-1]
    if not exec_id or "|" in exec_id or "#" in exec_id:
        raise NotFoundError(f"no durable execution {arn!r}: bad execution id")
    return exec_id


def list_key(start_ms: int, arn: str) -> str:
    """Sort key of a listing: lexical order is newest first, then ARN ascending."""
    return f"{_MAX_MS - max(0, min(int(start_ms), _MAX_MS)):013d}|{arn}"


def marker_key(marker: str) -> str:
    """Return the :func:`list_key` of a listing marker ``"<start_ms>:<arn>"``."""
    return list_key(*parse_marker(marker))


def records(docs: Iterable[str]) -> list[OperationRecord]:
    """Operation records from their stored JSON documents, in creation order."""
    recs = [OperationRecord.from_dict(json.loads(d)) for d in docs]
    recs.sort(key=lambda r: r.index)
    return recs


def terminal(header: ExecutionHeader) -> bool:
    """Whether a header is in a terminal status."""
    return header.status in TERMINAL_STATUSES


def parse_duration(value: str, option: str, url: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"15m"``, ``"12h"`` or ``"14d"``; 0 disables."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = value.strip().lower()
    scale = units.get(text[-1:])
    number = text[:-1] if scale is not None else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise ConfigError(
            f"option {option}={value!r} in {url!r} is not a duration (e.g. 3600, 90s, 15m, 14d)"
        ) from None
    if seconds < 0:
        raise ConfigError(f"option {option}={value!r} in {url!r} must not be negative")
    return seconds


def remote_options(
    spec: StoreSpec, kwargs: dict[str, Any], allowed: Iterable[str], *, prefix: str
) -> tuple[str, str, float, Any]:
    """Read the options every remote store takes: ``(url, prefix, ttl seconds, client)``.

    ``prefix``, ``ttl`` and ``client`` given as keyword arguments are popped from
    ``kwargs`` and win over the URL; ``prefix`` is the default prefix.

    Raises:
        SpecError: the URL has an option outside ``allowed``.
        ConfigError: ``ttl`` is not a duration.

    """
    url = spec.raw or str(spec)
    reject_unknown_options(spec.options, allowed, url)
    chosen = kwargs.pop("prefix", spec.options.get("prefix", prefix))
    ttl = kwargs.pop("ttl", None)
    if ttl is None:
        ttl = parse_duration(spec.options.get("ttl", "0"), "ttl", url)
    return url, chosen, float(ttl), kwargs.pop("client", None)


def sort_due(entries: Iterable[DueEntry], limit: int | None) -> list[DueEntry]:
    """Earliest first, ties by ARN then key (the order every store returns)."""
    out = sorted(entries, key=lambda d: (d.due_ms, d.arn, d.key))
    return out if limit is None else out[:limit]


def retrying(
    call: Callable[[], T],
    *,
    attempts: int,
    what: str,
    transient: tuple[type[BaseException], ...] = (StoreUnavailableError,),
) -> T:
    """Run ``call``, retrying transient failures with jittered exponential backoff.

    Only idempotent calls go through here: reads, and commits whose scripts recognise a
    request that was already applied.
    """
    delay = 0.05
    for attempt in range(attempts):
        try:
            return call()
        except transient:
            if attempt == attempts - 1:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
    raise StoreUnavailableError(f"{what}: no attempts made")  # pragma: no cover


class RemoteStore(StoreBase):
    """What the remote stores share: batch checks and the answers that need no query.

    A subclass implements ``header``, ``_events``, ``_read_due`` (called only when an
    answer may be non-empty), ``_errors`` (its client's errors as the store's errors) and
    ``_claim_secret`` (a conditional write of the secret, then a read of the winner).
    """

    _secret: bytes | None = None

    def secret(self) -> bytes:
        """Return the store's MAC secret, made on first use (see ``Store.secret``)."""
        if self._secret is None:
            # Racing processes each offer random bytes; the conditional write picks one.
            offer = os.urandom(SECRET_BYTES).hex()
            value = self._call("read of the store secret", lambda: self._claim_secret(offer))
            try:
                secret = bytes.fromhex(value)
            except (TypeError, ValueError):
                secret = b""
            if len(secret) != SECRET_BYTES:
                raise StoreError("the store's secret is not 32 hex-encoded bytes")
            self._secret = secret
        return self._secret

    def _claim_secret(self, offer: str) -> str:
        """Store ``offer`` (hex) unless a secret exists; return the stored one."""
        raise NotImplementedError

    def header(self, arn: str) -> ExecutionHeader:
        raise NotImplementedError

    def _errors(self, what: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one idempotent request; transient failures are retried with backoff."""

        def once() -> T:
            with self._errors(what):
                return fn()

        return retrying(once, attempts=_ATTEMPTS, what=what)

    @staticmethod
    def _check(batch: CommitBatch) -> None:
        """Refuse a malformed batch before anything is sent."""
        h = batch.header
        if h.revision != batch.expected_revision + 1:
            raise StoreError(f"commit for {h.arn}: header revision must be expected_revision + 1")
        if execution_id_of(h.arn) != h.execution_id:
            raise StoreError(f"ARN {h.arn} does not end with execution id {h.execution_id}")
        for prev, ev in zip(batch.events, batch.events[1:], strict=False):
            if ev.event_id != prev.event_id + 1:
                raise StoreError(f"commit for {h.arn}: event ids are not contiguous")
        for d in batch.due_set:
            if d.arn != h.arn:
                raise StoreError(f"commit for {h.arn}: due entry belongs to {d.arn}")

    def events(
        self, arn: str, *, after: int = 0, limit: int | None = None, reverse: bool = False
    ) -> list[HistoryEvent]:
        """History events with ``event_id > after`` ascending, or ``< after`` descending."""
        if limit is not None and limit <= 0:
            self.header(arn)  # still NotFoundError for an unknown execution
            return []
        return self._events(arn, after, limit, reverse)

    def _select_due(
        self, until_ms: int | None, arn: str | None, kinds: list[str] | None, limit: int | None
    ) -> list[DueEntry]:
        if kinds == [] or (limit is not None and limit <= 0):
            if arn is not None:
                self.header(arn)
            return []
        return self._read_due(until_ms, arn, kinds, limit)

    def _events(self, arn: str, after: int, limit: int | None, reverse: bool) -> list[HistoryEvent]:
        raise NotImplementedError

    def _read_due(
        self, until_ms: int | None, arn: str | None, kinds: list[str] | None, limit: int | None
    ) -> list[DueEntry]:
        raise NotImplementedError
