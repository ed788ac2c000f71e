"""FileStore: one append-only, checksummed journal per execution (``file://PATH``).

Layout under the store directory::

    executions/<execution_id>.log     the journal of one execution
    names/<function_name>/<name>      name claim: holds the ARN (created O_EXCL)

A journal is a sequence of records, one per commit::

    +----------------+----------------+---------------------------------+
    | length (u32 BE)| crc32 (u32 BE) | payload: CommitBatch JSON (UTF-8)|
    +----------------+----------------+---------------------------------+

A commit appends one record (its size is proportional to the batch) under an exclusive
``fcntl.flock`` on the journal, after reading any records other processes appended, and
checks the header revision (compare-and-set) before writing; then it ``fsync`` s. Readers
take no lock: a record still being written looks like a torn tail and is ignored until it
is complete.

Recovery: a torn tail (a final record that is incomplete or fails its checksum, left by a
crash during an append) is ignored by readers and cut off by the next commit. A bad
record followed by more data is corruption: the store raises
:class:`~durable_ext.errors.StoreError` naming the file and offset rather than return
wrong data. Execution ids and names are validated (``[A-Za-z0-9_-]{1,64}``), so no path can
escape the directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from durable_ext.backends._base import IndexedStore
from durable_ext.backends._state import ExecutionIndex, check_batch, reject_unknown_options
from durable_ext.backends.store import CommitBatch, CreateResult
from durable_ext.errors import ConfigError, ConflictError, NotFoundError, StoreError
from durable_ext.spec import StoreSpec

__all__ = ["FileStore", "JournalCorruptError"]

_HEAD = struct.Struct(">II")
_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_RECORD = 512 * 1024 * 1024


class JournalCorruptError(StoreError):
    """A journal record in the middle of a file does not verify."""


def _datasync(fd: int) -> None:
    # fdatasync flushes the data and the new file size, which is all a journal append needs.
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def _safe(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _SAFE.fullmatch(value):
        raise NotFoundError(f"invalid {kind} {value!r}: expected 1-64 of [A-Za-z0-9_-]")
    return value


def encode_record(batch: CommitBatch) -> bytes:
    """One journal record for ``batch``."""
    payload = json.dumps(batch.to_dict(), separators=(",", ":")).encode()
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes, path: str, base: int) -> tuple[list[CommitBatch], int]:
    """Parse complete records; return them and the number of bytes they span.

    A torn final record is left unparsed; a bad record followed by data raises.
    """
    out: list[CommitBatch] = []
    pos = 0
    n = len(data)
    while pos + _HEAD.size <= n:
        length, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if length > _MAX_RECORD or end > n:
            if length <= _MAX_RECORD:
                break  # incomplete final record: a torn tail
            raise JournalCorruptError(f"{path}: bad record length at offset {base + pos}")
        payload = data[pos + _HEAD.size : end]
        if zlib.crc32(payload) != crc:
            if end == n:
                break  # the final record did not finish writing
            raise JournalCorruptError(
                f"{path}: checksum mismatch at offset {base + pos}; the journal is corrupt"
            )
        try:
            out.append(CommitBatch.from_dict(json.loads(payload)))
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalCorruptError(
                f"{path}: unreadable record at offset {base + pos}: {exc}"
            ) from exc
        pos = end
    return out, pos


@dataclass
class _Cached:
    index: ExecutionIndex
    offset: int
    stamp: tuple[int, int]


class FileStore(IndexedStore):
    """A durable store in a directory; safe for several threads and processes.

    Args:
        path: The store directory (created if missing).
        fsync: Flush every commit to disk (default True). False trades durability on
            power loss for speed; a process crash still loses nothing.

    Example:
        >>> import tempfile
        >>> FileStore(tempfile.mkdtemp()).name
        'file'

    """

    name: ClassVar[str] = "file"

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(path).resolve()
        self.fsync = fsync
        try:
            (self.root / "executions").mkdir(parents=True, exist_ok=True)
            (self.root / "names").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot use {self.root} as a file store: {exc}") from exc
        self._lock = threading.RLock()
        self._cache: dict[str, _Cached] = {}

    @classmethod
    def from_spec(cls, spec: StoreSpec, **kwargs: Any) -> FileStore:
        """Build from ``file://PATH[?fsync=false]``."""
        reject_unknown_options(spec.options, ("fsync",), spec.raw or str(spec))
        opts: dict[str, Any] = {}
        if "fsync" in spec.options:
            value = spec.options["fsync"].lower()
            if value not in ("true", "false", "1", "0"):
                raise ConfigError(f"fsync must be true or false in {spec.raw!r}")
            opts["fsync"] = value in ("true", "1")
        opts.update(kwargs)
        path = spec.path or ".durable"
        return cls(path, **opts)

    # ------------------------------------------------------------------ files

    def _journal(self, execution_id: str) -> Path:
        return self.root / "executions" / f"{_safe('execution id', execution_id)}.log"

    @staticmethod
    def _id_of(arn: str) -> str:
        return _safe("execution id", arn.rsplit("/", 1)[-1])

    def _refresh(self, execution_id: str) -> _Cached:
        """Bring the cached index up to date with the journal (no lock needed)."""
        path = self._journal(execution_id)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise NotFoundError(f"no durable execution with id {execution_id!r}") from None
        stamp = (st.st_size, st.st_mtime_ns)
        cached = self._cache.get(execution_id)
        if cached is not None and cached.stamp == stamp:
            return cached
        offset = cached.offset if cached is not None else 0
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        batches, used = decode_records(data, str(path), offset)
        if cached is None:
            if not batches:
                raise NotFoundError(f"no durable execution with id {execution_id!r}")
            cached = _Cached(ExecutionIndex(batches[0].header), 0, stamp)
        for b in batches:
            cached.index.apply(b)
        cached.offset = offset + used
        # A torn tail keeps the stamp stale so the next read looks again.
        cached.stamp = stamp if offset + len(data) == cached.offset else (-1, -1)
        self._cache[execution_id] = cached
        return cached

    def _get(self, arn: str) -> ExecutionIndex:
        idx = self._refresh(self._id_of(arn)).index
        if idx.header.arn != arn:
            raise NotFoundError(f"no durable execution {arn!r}")
        return idx

    def _write(self, fd: int, record: bytes, offset: int) -> None:
        if os.fstat(fd).st_size > offset:
            os.ftruncate(fd, offset)  # drops a torn tail left by a crash
        os.pwrite(fd, record, offset)
        if self.fsync:
            _datasync(fd)

    # ------------------------------------------------------------------ Store API

    def create(self, batch: CommitBatch) -> CreateResult:
        """Claim the name, then write the journal, under the function's name lock.

        The per-function lock (``names/<fn>/.lock``, ``flock``) makes the pair atomic for
        every process: a claim whose journal is missing or has no complete record can
        only be left by a creator that died, so it is replaced. One name never gets two
        executions.
        """
        h = batch.header
        check_batch(batch, None)
        fn_dir = self.root / "names" / _safe("function name", h.function_name)
        name_path = fn_dir / _safe("execution name", h.name)
        if h.execution_id != self._id_of(h.arn):
            raise StoreError(f"ARN {h.arn} does not end with execution id {h.execution_id}")
        journal = self._journal(h.execution_id)
        with self._lock:
            fn_dir.mkdir(exist_ok=True)
            lock_fd = os.open(fn_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                existing = self._claimed(name_path)
                if existing is not None:
                    try:
                        return CreateResult(False, self.header(existing))
                    except NotFoundError:
                        self._drop_stale(existing)
                if journal.exists():
                    raise ConflictError(f"execution {h.arn} already exists")
                self._claim(fn_dir, name_path, h.arn)
                fd = os.open(journal, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    self._write(fd, encode_record(batch), 0)
                finally:
                    os.close(fd)
                if self.fsync:
                    self._fsync_dir(journal.parent)
                    self._fsync_dir(fn_dir)
                return CreateResult(True, h)
            finally:
                os.close(lock_fd)

    def _drop_stale(self, arn: str) -> None:
        """Remove what a creator that died mid-create left behind (no complete record)."""
        try:
            execution_id = self._id_of(arn)
        except NotFoundError:
            return
        path = self._journal(execution_id)
        self._cache.pop(execution_id, None)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        batches, _ = decode_records(data, str(path), 0)
        if not batches:
            path.unlink(missing_ok=True)

    def _claim(self, fn_dir: Path, name_path: Path, arn: str) -> None:
        """Point ``name_path`` at ``arn``; it is never seen half-written."""
        tmp = fn_dir / f".{name_path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
        try:
            os.write(fd, arn.encode())
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name_path)

    @staticmethod
    def _claimed(name_path: Path) -> str | None:
        try:
            return name_path.read_text() or None
        except FileNotFoundError:
            return None

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def commit(self, batch: CommitBatch) -> None:
        """Append one record under the journal's exclusive lock, after the CAS check."""
        h = batch.header
        execution_id = self._id_of(h.arn)
        path = self._journal(execution_id)
        with self._lock:
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                raise NotFoundError(f"no durable execution {h.arn!r}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                cached = self._refresh(execution_id)
                check_batch(batch, cached.index.header)
                record = encode_record(batch)
                self._write(fd, record, cached.offset)
                cached.index.apply(batch)
                cached.offset += len(record)
                st = os.fstat(fd)
                cached.stamp = (st.st_size, st.st_mtime_ns)
            finally:
                os.close(fd)

    def _all(self) -> list[ExecutionIndex]:
        """Every execution, fresh, except settled ones, which are served from the cache.

        A settled execution (terminal, no due entries) never changes status or gains a
        timer again, so listing and the due index need no ``stat`` of its journal: the
        runtime's polling stays cheap however much history the directory holds.
        """
        out = []
        for entry in os.scandir(self.root / "executions"):
            stem, ext = os.path.splitext(entry.name)
            if ext != ".log" or not _SAFE.fullmatch(stem):
                continue
            cached = self._cache.get(stem)
            if cached is not None and cached.index.header.terminal and not cached.index.due:
                out.append(cached.index)
                continue
            try:
                out.append(self._refresh(stem).index)
            except NotFoundError:
                continue  # created a moment ago, first record not written yet
        return out

    def close(self) -> None:
        """Drop the cache (no files stay open between calls)."""
        with self._lock:
            self._cache.clear()
