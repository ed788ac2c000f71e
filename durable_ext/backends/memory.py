"""MemoryStore: executions in process memory (tests, benchmarks, ``memory://``)."""

from __future__ import annotations

import os
import threading
from typing import Any, ClassVar

from durable_ext.backends._base import IndexedStore
from durable_ext.backends._state import ExecutionIndex, check_batch, reject_unknown_options
from durable_ext.backends.store import SECRET_BYTES, CommitBatch, CreateResult
from durable_ext.errors import ConflictError, NotFoundError
from durable_ext.spec import StoreSpec

__all__ = ["MemoryStore"]


class MemoryStore(IndexedStore):
    """A thread-safe store that keeps everything in memory; nothing survives the process.

    Example:
        >>> from durable_ext.backends import open_store
        >>> open_store("memory://").name
        'memory'

    """

    name: ClassVar[str] = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._execs: dict[str, ExecutionIndex] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._secret = os.urandom(SECRET_BYTES)

    @classmethod
    def from_spec(cls, spec: StoreSpec, **kwargs: Any) -> MemoryStore:
        """Build from ``memory://`` (no options)."""
        reject_unknown_options(spec.options, (), spec.raw or str(spec))
        if kwargs:
            raise TypeError(f"MemoryStore takes no keyword options, got {sorted(kwargs)}")
        return cls()

    def _get(self, arn: str) -> ExecutionIndex:
        try:
            return self._execs[arn]
        except KeyError:
            raise NotFoundError(f"no durable execution {arn!r}") from None

    def create(self, batch: CommitBatch) -> CreateResult:
        """Create unless the name is taken; see :meth:`Store.create`."""
        h = batch.header
        with self._lock:
            existing = self._names.get((h.function_name, h.name))
            if existing is not None:
                return CreateResult(False, self._execs[existing].header)
            if h.arn in self._execs:
                raise ConflictError(f"execution {h.arn} already exists")
            check_batch(batch, None)
            idx = ExecutionIndex(h)
            idx.apply(batch)
            self._execs[h.arn] = idx
            self._names[(h.function_name, h.name)] = h.arn
            return CreateResult(True, h)

    def commit(self, batch: CommitBatch) -> None:
        """Apply atomically under the store lock if the revision matches."""
        with self._lock:
            idx = self._get(batch.header.arn)
            check_batch(batch, idx.header)
            idx.apply(batch)

    def delete(self, arn: str) -> bool:
        """Forget the execution and its name claim; see :meth:`Store.delete`."""
        with self._lock:
            idx = self._execs.pop(arn, None)
            if idx is None:
                return False
            h = idx.header
            if self._names.get((h.function_name, h.name)) == arn:
                del self._names[(h.function_name, h.name)]
            return True

    def _all(self) -> list[ExecutionIndex]:
        return list(self._execs.values())

    def secret(self) -> bytes:
        """Return the MAC secret made with this store (see :meth:`Store.secret`)."""
        return self._secret

    def close(self) -> None:
        """Nothing to release."""
