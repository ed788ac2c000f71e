"""FileStore: one append-only, checksummed journal per execution (``file://PATH``).

Layout under the store directory (directories 0700, files 0600)::

    executions/<execution_id>.log     the journal of one execution
    names/<function_name>/<name>      name claim: holds the ARN
    names/<function_name>/.lock       flock held while an execution is created
    secret                            the store's MAC secret (32 bytes)

The journal's record format and recovery rules are in :mod:`durable_ext.backends._journal`;
how files inside the store are opened and written is in
:mod:`durable_ext.backends._safe_files`.

A commit appends one record (its size is proportional to the batch) under an exclusive
``fcntl.flock`` on the journal, after reading any records other processes appended, and
checks the header revision (compare-and-set) before writing; then it ``fdatasync`` s. If
the write or the flush fails the journal is cut back to its last whole record before
:class:`JournalWriteError` is raised. Readers take no lock: a record still being written
looks like a torn tail and is ignored until it is complete. A torn tail is cut off by the
next commit; a bad record followed by a whole one raises :class:`JournalCorruptError` and
the journal is never truncated. Execution ids and names are validated
(``[A-Za-z0-9_-]{1,64}``), so no path can escape the directory, and no file or directory
inside the store is opened through a symbolic link.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from durable_ext.backends._base import IndexedStore
from durable_ext.backends._journal import (
    JournalCorruptError,
    JournalWriteError,
    append_record,
    decode_records,
    encode_record,
)
from durable_ext.backends._safe_files import (
    DIR_MODE,
    check_private,
    close_all,
    create_in,
    lstat_in,
    open_in,
    open_subdir,
    os_errors,
    pread_all,
    pwrite_all,
    remove_in,
)
from durable_ext.backends._state import ExecutionIndex, check_batch, reject_unknown_options
from durable_ext.backends.store import SECRET_BYTES, CommitBatch, CreateResult
from durable_ext.errors import ConfigError, ConflictError, NotFoundError, StoreError
from durable_ext.spec import StoreSpec

__all__ = ["FileStore", "JournalCorruptError", "JournalWriteError"]

# The journal's errors are defined with it; they keep the name users import them by.
JournalCorruptError.__module__ = JournalWriteError.__module__ = __name__

_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CLAIM_MAX = 4096
_SECRET = "secret"


def _safe(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _SAFE.fullmatch(value):
        raise NotFoundError(f"invalid {kind} {value!r}: expected 1-64 of [A-Za-z0-9_-]")
    return value


@dataclass
class _Cached:
    index: ExecutionIndex
    offset: int
    stamp: tuple[int, int]


class FileStore(IndexedStore):
    """A durable store in a directory; safe for several threads and processes.

    Everything the store creates is private to its user (directories 0700, files 0600,
    whatever the umask); stores made with wider modes keep working as they are.

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
        self._lock = threading.RLock()
        self._cache: dict[str, _Cached] = {}
        self._secret: bytes | None = None
        # The executions/ and names/ directories stay open: every file inside is opened
        # relative to them, so a link swapped in for a directory later is never followed.
        self._held: list[int] = []
        self._finalizer = weakref.finalize(self, close_all, self._held)
        self._dirs()

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

    def _open_root(self) -> int:
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            made = True
            try:
                os.mkdir(self.root, DIR_MODE)
            except FileExistsError:
                made = False
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if made:
                os.fchmod(fd, DIR_MODE)
        except OSError as exc:
            raise ConfigError(f"cannot use {self.root} as a file store: {exc}") from exc
        try:
            check_private(fd, self.root)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _dirs(self) -> tuple[int, int]:
        """Return the open ``executions`` and ``names`` directories (reopened after close)."""
        if not self._held:
            root = self._open_root()
            try:
                fds = [open_subdir(root, "executions", self.root / "executions")]
                try:
                    fds.append(open_subdir(root, "names", self.root / "names"))
                except BaseException:
                    close_all(fds)
                    raise
            finally:
                os.close(root)
            self._held.extend(fds)
        return self._held[0], self._held[1]

    def _journal(self, execution_id: str) -> Path:
        return self.root / "executions" / f"{_safe('execution id', execution_id)}.log"

    @staticmethod
    def _id_of(arn: str) -> str:
        return _safe("execution id", arn.rsplit("/", 1)[-1])

    def _refresh(self, execution_id: str, fd: int | None = None) -> _Cached:
        """Bring the cached index up to date with the journal.

        Without ``fd`` no lock is needed; a commit passes the journal it holds locked.
        """
        path = self._journal(execution_id)
        name = path.name
        execs, _ = self._dirs()
        if fd is None:
            st = lstat_in(execs, name, path)
            if st is None:
                raise NotFoundError(f"no durable execution with id {execution_id!r}")
        else:
            with os_errors(f"cannot stat {path}"):
                st = os.fstat(fd)
        cached = self._cache.get(execution_id)
        if cached is not None and st.st_size < cached.offset:
            # Cut back below what was read: a commit whose flush failed after this process
            # saw its record. Read the journal again rather than keep a record it lost.
            cached = None
            del self._cache[execution_id]
        if cached is not None and cached.stamp == (st.st_size, st.st_mtime_ns):
            return cached
        offset = cached.offset if cached is not None else 0
        if fd is None:
            try:
                own = open_in(execs, name, os.O_RDONLY, path)
            except FileNotFoundError:
                raise NotFoundError(f"no durable execution with id {execution_id!r}") from None
            try:
                with os_errors(f"cannot read {path}"):
                    st = os.fstat(own)
                    data = pread_all(own, offset, st.st_size - offset)
            finally:
                os.close(own)
        else:
            with os_errors(f"cannot read {path}"):
                data = pread_all(fd, offset, st.st_size - offset)
        stamp = (st.st_size, st.st_mtime_ns)
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

    # ------------------------------------------------------------------ Store API

    def create(self, batch: CommitBatch) -> CreateResult:
        """Claim the name, then write the journal, under the function's name lock.

        The per-function lock (``names/<fn>/.lock``, ``flock``) makes the pair atomic for
        every process: a claim whose journal is missing or has no complete record can
        only be left by a creator that died, so it is replaced. One name never gets two
        executions. A create that fails to write removes its claim and journal again.
        """
        h = batch.header
        check_batch(batch, None)
        fn = _safe("function name", h.function_name)
        name = _safe("execution name", h.name)
        if h.execution_id != self._id_of(h.arn):
            raise StoreError(f"ARN {h.arn} does not end with execution id {h.execution_id}")
        journal = self._journal(h.execution_id)
        fn_where = self.root / "names" / fn
        record = encode_record(batch)
        with self._name_lock(fn) as (execs, fn_fd):
            existing = self._claimed(fn_fd, name, fn_where / name)
            if existing is not None:
                try:
                    return CreateResult(False, self.header(existing))
                except NotFoundError:
                    self._drop_stale(existing)
            if lstat_in(execs, journal.name, journal) is not None:
                raise ConflictError(f"execution {h.arn} already exists")
            self._claim(fn_fd, name, h.arn, fn_where)
            self._write_first(execs, fn_fd, name, journal, record)
            return CreateResult(True, h)

    @contextmanager
    def _name_lock(self, fn: str) -> Iterator[tuple[int, int]]:
        """Hold function ``fn``'s name lock; yield the executions and ``names/<fn>`` fds."""
        fn_where = self.root / "names" / fn
        with self._lock:
            execs, names = self._dirs()
            fn_fd = open_subdir(names, fn, fn_where)
            try:
                lock_fd = self._lock_file(fn_fd, fn_where / ".lock")
                try:
                    with os_errors(f"cannot lock {fn_where / '.lock'}"):
                        fcntl.flock(lock_fd, fcntl.LOCK_EX)
                    yield execs, fn_fd
                finally:
                    os.close(lock_fd)
            finally:
                os.close(fn_fd)

    def _write_first(self, execs: int, fn_fd: int, name: str, journal: Path, record: bytes) -> None:
        """Write a new journal for the name just claimed; on failure take both back."""
        made = False
        try:
            try:
                fd = create_in(execs, journal.name, os.O_RDWR, journal)
            except FileExistsError:
                raise ConflictError(f"execution journal {journal} already exists") from None
            made = True
            try:
                with os_errors(f"cannot lock {journal}"):
                    fcntl.flock(fd, fcntl.LOCK_EX)
                append_record(fd, journal, record, 0, fsync=self.fsync)
            finally:
                os.close(fd)
            if self.fsync:
                with os_errors(f"cannot flush the directories of {journal}", JournalWriteError):
                    os.fsync(execs)
                    os.fsync(fn_fd)
        except BaseException:
            # Under the function lock nobody else can have used the claim or the journal.
            for dir_fd, entry, mine in ((execs, journal.name, made), (fn_fd, name, True)):
                if mine:
                    remove_in(dir_fd, entry)
            raise

    @staticmethod
    def _lock_file(fn_fd: int, where: Path) -> int:
        try:
            return create_in(fn_fd, ".lock", os.O_RDWR, where)
        except FileExistsError:
            return open_in(fn_fd, ".lock", os.O_RDWR, where)

    def _drop_stale(self, arn: str) -> None:
        """Remove what a creator that died mid-create left behind (no complete record)."""
        try:
            execution_id = self._id_of(arn)
        except NotFoundError:
            return
        path = self._journal(execution_id)
        execs, _ = self._dirs()
        self._cache.pop(execution_id, None)
        try:
            fd = open_in(execs, path.name, os.O_RDONLY, path)
        except FileNotFoundError:
            return
        try:
            with os_errors(f"cannot read {path}"):
                data = pread_all(fd, 0, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        batches, _ = decode_records(data, str(path), 0)
        if not batches:
            with os_errors(f"cannot remove {path}"):
                remove_in(execs, path.name)

    def _claim(self, fn_fd: int, name: str, arn: str, fn_where: Path) -> None:
        """Point ``name`` at ``arn``; it is never seen half-written."""
        # An unpredictable name created O_EXCL: nobody can plant a link where it will be.
        tmp = f".{name}.{os.urandom(8).hex()}.tmp"
        fd = create_in(fn_fd, tmp, os.O_WRONLY, fn_where / tmp)
        try:
            with os_errors(f"cannot write {fn_where / tmp}", JournalWriteError):
                try:
                    pwrite_all(fd, arn.encode(), 0)
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                # rename replaces whatever is at the name itself, never what it points to.
                os.replace(tmp, name, src_dir_fd=fn_fd, dst_dir_fd=fn_fd)
        except BaseException:
            remove_in(fn_fd, tmp)
            raise

    @staticmethod
    def _claimed(fn_fd: int, name: str, where: Path) -> str | None:
        try:
            fd = open_in(fn_fd, name, os.O_RDONLY, where)
        except FileNotFoundError:
            return None
        try:
            with os_errors(f"cannot read {where}"):
                raw = os.read(fd, _CLAIM_MAX)
        finally:
            os.close(fd)
        try:
            return raw.decode("ascii") or None
        except UnicodeDecodeError:
            raise StoreError(f"{where} does not hold an execution ARN") from None

    def commit(self, batch: CommitBatch) -> None:
        """Append one record under the journal's exclusive lock, after the CAS check.

        Raises:
            JournalWriteError: the record could not be written or flushed; the journal and
                this store's view of it are as they were before the call.

        """
        h = batch.header
        execution_id = self._id_of(h.arn)
        path = self._journal(execution_id)
        with self._lock:
            execs, _ = self._dirs()
            try:
                fd = open_in(execs, path.name, os.O_RDWR, path)
            except FileNotFoundError:
                raise NotFoundError(f"no durable execution {h.arn!r}") from None
            try:
                with os_errors(f"cannot lock {path}"):
                    fcntl.flock(fd, fcntl.LOCK_EX)
                cached = self._refresh(execution_id, fd)
                check_batch(batch, cached.index.header)
                record = encode_record(batch)
                append_record(fd, path, record, cached.offset, fsync=self.fsync)
                cached.index.apply(batch)
                cached.offset += len(record)
                with os_errors(f"cannot stat {path}"):
                    st = os.fstat(fd)
                cached.stamp = (st.st_size, st.st_mtime_ns)
            finally:
                os.close(fd)

    def delete(self, arn: str) -> bool:
        """Remove the name claim (if it still names ``arn``), then the journal.

        Under the function's name lock, so no create of the same name runs meanwhile; a
        deletion cut short between the two leaves the journal, and a repeat finishes it.
        """
        try:
            h = self.header(arn)
        except NotFoundError:
            return False
        fn = _safe("function name", h.function_name)
        name = _safe("execution name", h.name)
        journal = self._journal(h.execution_id)
        fn_where = self.root / "names" / fn
        with self._name_lock(fn) as (execs, fn_fd):
            if self._claimed(fn_fd, name, fn_where / name) == arn:
                with os_errors(f"cannot remove {fn_where / name}"):
                    remove_in(fn_fd, name)
            with os_errors(f"cannot remove {journal}"):
                remove_in(execs, journal.name)
            self._cache.pop(h.execution_id, None)
            if self.fsync:
                with os_errors(f"cannot flush the directories of {journal}"):
                    os.fsync(fn_fd)
                    os.fsync(execs)
        return True

    def _all(self) -> list[ExecutionIndex]:
        """Every execution, fresh, except settled ones, which are served from the cache.

        A settled execution (terminal, no due entries) never changes status or gains a
        timer again, so listing and the due index need no ``stat`` of its journal: the
        runtime's polling stays cheap however much history the directory holds.
        """
        execs, _ = self._dirs()
        where = self.root / "executions"
        # A descriptor of its own: the kept one's position is shared with forked children.
        listing = open_in(execs, ".", os.O_RDONLY | os.O_DIRECTORY, where)
        try:
            with os_errors(f"cannot list {where}"):
                names = [entry.name for entry in os.scandir(listing)]
        finally:
            os.close(listing)
        out = []
        for entry_name in names:
            stem, ext = os.path.splitext(entry_name)
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

    def secret(self) -> bytes:
        """Return the store's MAC secret, the file ``secret`` (made on first use).

        It is created atomically: written to a private temporary file, flushed, then
        hard-linked to ``secret``, which fails if another process got there first; every
        process then reads the one file. Read once per store object.
        """
        with self._lock:
            if self._secret is None:
                root = self._open_root()
                try:
                    value = self._read_secret(root)
                    if value is None:
                        self._make_secret(root)
                        value = self._read_secret(root)
                    if value is None:
                        raise StoreError(f"{self.root / _SECRET} vanished while it was made")
                finally:
                    os.close(root)
                self._secret = value
            return self._secret

    def _read_secret(self, root: int) -> bytes | None:
        where = self.root / _SECRET
        try:
            fd = open_in(root, _SECRET, os.O_RDONLY, where)
        except FileNotFoundError:
            return None
        try:
            with os_errors(f"cannot read {where}"):
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise StoreError(f"{where} is not a regular file")
                check_private(fd, where, secret=True)
                value = pread_all(fd, 0, SECRET_BYTES) if st.st_size == SECRET_BYTES else b""
        finally:
            os.close(fd)
        if len(value) != SECRET_BYTES:
            raise StoreError(f"{where} holds {st.st_size} bytes, not a {SECRET_BYTES}-byte secret")
        return value

    def _make_secret(self, root: int) -> None:
        tmp = f".{_SECRET}.{os.urandom(8).hex()}.tmp"
        where = self.root / tmp
        fd = create_in(root, tmp, os.O_WRONLY, where)
        try:
            with os_errors(f"cannot write {where}"):
                try:
                    pwrite_all(fd, os.urandom(SECRET_BYTES), 0)
                    # Always flushed: losing it would void every id and token made with it.
                    os.fsync(fd)
                finally:
                    os.close(fd)
            with os_errors(f"cannot create {self.root / _SECRET}"):
                try:
                    os.link(tmp, _SECRET, src_dir_fd=root, dst_dir_fd=root, follow_symlinks=False)
                except FileExistsError:
                    return  # another process made it first; everyone reads that one
                os.fsync(root)
        finally:
            remove_in(root, tmp)

    def close(self) -> None:
        """Drop the cache and close the store's directories (reopened if used again)."""
        with self._lock:
            self._cache.clear()
            close_all(self._held)
