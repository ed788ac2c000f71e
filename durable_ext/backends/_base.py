"""Bases of the built-in stores: the public query signatures are written once, here.

:class:`StoreBase` owns the argument handling of :meth:`Store.due` and
:meth:`Store.list_executions`; a store implements ``_select_due`` and ``_list``.
:class:`IndexedStore` answers every read from :class:`~durable_ext.backends._state.ExecutionIndex`
objects (the memory store, and the file store's cache).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from durable_ext.backends._state import ExecutionIndex, merge_due, page_executions
from durable_ext.backends.store import (
    DueEntry,
    ExecutionHeader,
    ExecutionPage,
    HistoryEvent,
    OperationRecord,
)

__all__ = ["IndexedStore", "StoreBase", "page_marker"]


def page_marker(last: ExecutionHeader) -> str:
    """Return the listing marker that continues after ``last``: ``"<start_ms>:<arn>"``."""
    return f"{last.start_ms}:{last.arn}"


class StoreBase:
    """The public ``due`` and ``list_executions`` of a store, delegating to its primitives."""

    def due(
        self,
        until_ms: int | None = None,
        *,
        arn: str | None = None,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[DueEntry]:
        """Due entries with ``due_ms <= until_ms`` (all if None), earliest first."""
        kind_list = None if kinds is None else list(dict.fromkeys(kinds))
        return self._select_due(until_ms, arn, kind_list, limit)

    def list_executions(
        self,
        *,
        function_name: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> ExecutionPage:
        """Headers newest first (``start_ms`` descending, then ARN), filtered and paged."""
        return self._list(function_name, status, limit, marker)

    def _select_due(
        self, until_ms: int | None, arn: str | None, kinds: list[str] | None, limit: int | None
    ) -> list[DueEntry]:
        raise NotImplementedError

    def _list(
        self, function_name: str | None, status: str | None, limit: int | None, marker: str | None
    ) -> ExecutionPage:
        raise NotImplementedError


class IndexedStore(StoreBase):
    """Reads served from in-memory indexes under ``self._lock``.

    A subclass provides ``_get(arn)`` (one execution, or ``NotFoundError``) and ``_all()``
    (every execution it holds).
    """

    _lock: threading.RLock

    def _get(self, arn: str) -> ExecutionIndex:
        raise NotImplementedError

    def _all(self) -> list[ExecutionIndex]:
        raise NotImplementedError

    def header(self, arn: str) -> ExecutionHeader:
        """Return the current header."""
        with self._lock:
            return self._get(arn).header

    def operations(self, arn: str, ids: Iterable[str] | None = None) -> list[OperationRecord]:
        """Operation records in creation order."""
        with self._lock:
            return self._get(arn).operations(ids)

    def touched_after(self, arn: str, seq: int) -> list[OperationRecord]:
        """Return the records with ``touched > seq``."""
        with self._lock:
            return self._get(arn).touched_after(seq)

    def events(
        self, arn: str, *, after: int = 0, limit: int | None = None, reverse: bool = False
    ) -> list[HistoryEvent]:
        """History events, see :meth:`Store.events`."""
        with self._lock:
            return self._get(arn).read_events(after, limit, reverse)

    def _select_due(
        self, until_ms: int | None, arn: str | None, kinds: list[str] | None, limit: int | None
    ) -> list[DueEntry]:
        with self._lock:
            scope = [self._get(arn)] if arn is not None else self._all()
            return merge_due(scope, until_ms, kinds, limit)

    def _list(
        self, function_name: str | None, status: str | None, limit: int | None, marker: str | None
    ) -> ExecutionPage:
        with self._lock:
            headers = [i.header for i in self._all()]
        return page_executions(
            headers, function_name=function_name, status=status, limit=limit, marker=marker
        )
