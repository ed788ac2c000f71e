"""FileStore: one append-only, checksummed journal per execution (``file://PATH``).

Layout under the store directory (directories 0700, files 0600)::

    executions/<execution_id>.log     the journal of one execution
    names/<function_name>/<name>      name claim: holds the ARN
    names/<function_name>/.lock       flock held while an execution is created
    secret                            the store's MAC secret (32 bytes)

A journal is a sequence of records, one per commit::

    +----------+---------+--------+-------------+---------------+-------------------------+
    | magic    | version | length | crc32(body) | crc32(header) | body                    |
    | D7 44 58 | 02      | u32 BE | u32 BE      | of bytes 0-11 | CommitBatch JSON, ASCII |
    +----------+---------+--------+-------------+---------------+-------------------------+

The header checksum covers the magic, version, length and body checksum, so a damaged
length is caught before it is used. Journals written before this layout hold records of
``length (u32 BE) | crc32(body) | body``; they are still read, and new records are appended
after them in the new layout.

A commit appends one record (its size is proportional to the batch) under an exclusive
``fcntl.flock`` on the journal, after reading any records other processes appended, and
checks the header revision (compare-and-set) before writing; then it ``fdatasync`` s. A
short write is continued; if a write or the flush fails (``ENOSPC``, ``EFBIG``, ``EIO``)
the journal is cut back to its last whole record before :class:`JournalWriteError` is
raised: a record whose flush failed is treated as never written. Readers take no lock: a record
still being written looks like a torn tail and is ignored until it is complete.

Recovery: a torn tail (a final record that is incomplete or does not verify, or zero bytes
left by a crash, with no whole record after it) is ignored by readers and cut off by the
next commit. A bad record followed by a whole one is corruption: the store raises
:class:`JournalCorruptError` naming the file and offset and never truncates it. Execution
ids and names are validated (``[A-Za-z0-9_-]{1,64}``), so no path can escape the
directory, and no file or directory inside the store is opened through a symbolic link.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
import struct
import threading
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from durable_ext.backends._base import IndexedStore
from durable_ext.backends._state import ExecutionIndex, check_batch, reject_unknown_options
from durable_ext.backends.store import SECRET_BYTES, CommitBatch, CreateResult
from durable_ext.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from durable_ext.spec import StoreSpec

__all__ = ["FileStore", "JournalCorruptError", "JournalWriteError"]

_MAGIC = b"\xd7DX"  # 0xD7 never occurs in an ASCII body nor starts an old record's length
_VERSION = 2
_HEAD = struct.Struct(">3sBII")  # magic, version, length, crc32(body): what the header CRC covers
_U32 = struct.Struct(">I")
_HEAD_SIZE = _HEAD.size + _U32.size
_OLD_HEAD = struct.Struct(">II")  # length, crc32(body)
_MAX_RECORD = 512 * 1024 * 1024
_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIR_MODE = 0o700
_FILE_MODE = 0o600
_CLAIM_MAX = 4096
_SECRET = "secret"

# Why a record at an offset does not verify, when that says it is the tail for certain.
_INCOMPLETE = "incomplete record"
_NEWER = "newer record format"


class JournalCorruptError(StoreError):
    """A journal record in the middle of a file does not verify."""


class JournalWriteError(StoreUnavailableError):
    """A write or flush failed; the journal and name claims are as they were before it."""


def _cause(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno or 0)
    text = exc.strerror or str(exc)
    return f"{code}: {text}" if code else text


@contextmanager
def _os_errors(what: str, kind: type[StoreError] = StoreError) -> Iterator[None]:
    """Turn an ``OSError`` into ``kind`` saying what failed, where and why."""
    try:
        yield
    except OSError as exc:
        raise kind(f"{what}: {_cause(exc)}") from exc


def _datasync(fd: int) -> None:
    # fdatasync flushes the data and the new file size, which is all a journal append needs.
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``: a short write is continued, no progress is EIO."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        n = os.pwrite(fd, view[done:], offset + done)
        if n <= 0:
            raise OSError(errno.EIO, "the write made no progress")
        done += n


def _pread_all(fd: int, offset: int, size: int) -> bytes:
    """Read ``size`` bytes at ``offset`` (fewer if the file ends first)."""
    parts = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return b"".join(parts)


def _safe(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _SAFE.fullmatch(value):
        raise NotFoundError(f"invalid {kind} {value!r}: expected 1-64 of [A-Za-z0-9_-]")
    return value


def _unlinked(exc: OSError, dir_fd: int, name: str, where: object) -> StoreError | None:
    """Return the error to raise when ``name`` is a link (or not a directory), if so."""
    if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST, errno.EMLINK):
        return None
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return StoreError(f"{where} is a symbolic link; the file store does not follow links")
    if exc.errno == errno.ENOTDIR:
        return StoreError(f"{where} is not a directory")
    return None


def _open(dir_fd: int, name: str, flags: int, where: object, mode: int = _FILE_MODE) -> int:
    """``os.open`` under ``dir_fd`` without following a link; a link is a StoreError.

    ``FileNotFoundError`` and ``FileExistsError`` (of a plain file) reach the caller as they
    are; any other failure is a StoreError naming ``where``.
    """
    # O_NONBLOCK: a FIFO planted in the store cannot hang an open (no effect on files).
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        return os.open(name, flags, mode, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        bad = _unlinked(exc, dir_fd, name, where)
        if bad is not None:
            raise bad from exc
        if isinstance(exc, FileExistsError):
            raise
        raise StoreError(f"cannot open {where}: {_cause(exc)}") from exc


def _create(dir_fd: int, name: str, flags: int, where: object) -> int:
    """Create ``name`` (it must not exist, not even as a link), mode 0600 whatever the umask."""
    fd = _open(dir_fd, name, flags | os.O_CREAT | os.O_EXCL, where)
    try:
        with _os_errors(f"cannot set the mode of {where}"):
            os.fchmod(fd, _FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _subdir(dir_fd: int, name: str, where: object) -> int:
    """Open directory ``name`` under ``dir_fd``, made 0700 if missing; never through a link."""
    made = True
    try:
        os.mkdir(name, _DIR_MODE, dir_fd=dir_fd)
    except FileExistsError:
        made = False
    except OSError as exc:
        raise StoreError(f"cannot create {where}: {_cause(exc)}") from exc
    fd = _open(dir_fd, name, os.O_RDONLY | os.O_DIRECTORY, where)
    if made:
        try:
            with _os_errors(f"cannot set the mode of {where}"):
                os.fchmod(fd, _DIR_MODE)
        except BaseException:
            os.close(fd)
            raise
    return fd


def _remove(dir_fd: int, name: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _close_all(fds: list[int]) -> None:
    while fds:
        os.close(fds.pop())


def encode_record(batch: CommitBatch) -> bytes:
    """One journal record for ``batch``, in the current layout."""
    # ensure_ascii (the default) keeps every body byte below 0x80, so the magic's first
    # byte never appears inside a body and a scan for whole records cannot start in one.
    body = json.dumps(batch.to_dict(), separators=(",", ":")).encode()
    if len(body) > _MAX_RECORD:
        raise StoreError(
            f"commit of {batch.header.arn} is {len(body)} bytes; "
            f"the file store's limit is {_MAX_RECORD}"
        )
    head = _HEAD.pack(_MAGIC, _VERSION, len(body), zlib.crc32(body))
    return head + _U32.pack(zlib.crc32(head)) + body


def _check_old(data: bytes, pos: int) -> tuple[int, int] | str:
    """Body bounds of the old-layout record at ``pos``, or why it does not verify."""
    if pos + _OLD_HEAD.size > len(data):
        return _INCOMPLETE
    length, crc = _OLD_HEAD.unpack_from(data, pos)
    if not 2 <= length <= _MAX_RECORD:  # a body is a JSON object: at least "{}"
        return "bad record length"
    start = pos + _OLD_HEAD.size
    end = start + length
    if end > len(data):
        return "record runs past the end of the file"
    if data[start] != 0x7B or zlib.crc32(memoryview(data)[start:end]) != crc:
        return "checksum mismatch"
    return start, end


def _check(data: bytes, pos: int) -> tuple[int, int] | str:
    """Body bounds of the record at ``pos``, or why it does not verify.

    ``_INCOMPLETE`` after a verified header means the record certainly runs past the end of
    the file; ``_NEWER`` is a verified header of a layout this code does not know.
    """
    if not data.startswith(_MAGIC, pos):
        return _check_old(data, pos)
    if pos + _HEAD_SIZE > len(data):
        return _INCOMPLETE
    _, version, length, body_crc = _HEAD.unpack_from(data, pos)
    (head_crc,) = _U32.unpack_from(data, pos + _HEAD.size)
    if zlib.crc32(memoryview(data)[pos : pos + _HEAD.size]) != head_crc:
        return "header checksum mismatch"
    if version != _VERSION:
        return _NEWER
    if length > _MAX_RECORD:
        return "record length over the limit"
    start = pos + _HEAD_SIZE
    end = start + length
    if end > len(data):
        return _INCOMPLETE
    if zlib.crc32(memoryview(data)[start:end]) != body_crc:
        return "checksum mismatch"
    return start, end


def _next_whole(data: bytes, start: int) -> int | None:
    """Offset of the first record at or after ``start`` that verifies, if any."""
    found = None
    pos = data.find(_MAGIC, start)
    while pos != -1:
        res = _check(data, pos)
        if isinstance(res, tuple) or res == _NEWER:
            found = pos
            break
        pos = data.find(_MAGIC, pos + 1)
    # Old-layout records have no magic; each body opens with "{", 8 bytes after the record.
    limit = len(data) if found is None else found
    brace = data.find(b"{", start + _OLD_HEAD.size)
    while brace != -1 and brace - _OLD_HEAD.size < limit:
        if isinstance(_check_old(data, brace - _OLD_HEAD.size), tuple):
            return brace - _OLD_HEAD.size
        brace = data.find(b"{", brace + 1)
    return found


def decode_records(data: bytes, path: str, base: int) -> tuple[list[CommitBatch], int]:
    """Parse whole records; return them and the number of bytes they span.

    A record that does not verify with no whole record after it is a torn tail: it and
    everything after it are left unparsed. One with a whole record after it raises
    :class:`JournalCorruptError`, so nothing is rolled back or cut off.
    """
    out: list[CommitBatch] = []
    pos = 0
    n = len(data)
    while pos < n:
        res = _check(data, pos)
        if isinstance(res, str):
            if res == _NEWER:
                raise StoreError(
                    f"{path}: record at offset {base + pos} has format version {data[pos + 3]}, "
                    f"newer than this durable_ext reads ({_VERSION})"
                )
            follow = None if res == _INCOMPLETE else _next_whole(data, pos + 1)
            if follow is not None:
                raise JournalCorruptError(
                    f"{path}: {res} at offset {base + pos}, before a whole record at offset "
                    f"{base + follow}; the journal is corrupt"
                )
            break  # a torn or zero-filled tail
        start, end = res
        try:
            out.append(CommitBatch.from_dict(json.loads(data[start:end])))
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
        self._finalizer = weakref.finalize(self, _close_all, self._held)
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
                os.mkdir(self.root, _DIR_MODE)
            except FileExistsError:
                made = False
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if made:
                os.fchmod(fd, _DIR_MODE)
        except OSError as exc:
            raise ConfigError(f"cannot use {self.root} as a file store: {exc}") from exc
        return fd

    def _dirs(self) -> tuple[int, int]:
        """Return the open ``executions`` and ``names`` directories (reopened after close)."""
        if not self._held:
            root = self._open_root()
            try:
                fds = [_subdir(root, "executions", self.root / "executions")]
                try:
                    fds.append(_subdir(root, "names", self.root / "names"))
                except BaseException:
                    _close_all(fds)
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

    @staticmethod
    def _lstat(dir_fd: int, name: str, where: Path) -> os.stat_result | None:
        """Return the entry's own status (None if missing); a link or non-file is an error."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot stat {where}: {_cause(exc)}") from exc
        if stat.S_ISLNK(st.st_mode):
            raise StoreError(f"{where} is a symbolic link; the file store does not follow links")
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{where} is not a regular file")
        return st

    def _refresh(self, execution_id: str, fd: int | None = None) -> _Cached:
        """Bring the cached index up to date with the journal.

        Without ``fd`` no lock is needed; a commit passes the journal it holds locked.
        """
        path = self._journal(execution_id)
        name = path.name
        execs, _ = self._dirs()
        if fd is None:
            st = self._lstat(execs, name, path)
            if st is None:
                raise NotFoundError(f"no durable execution with id {execution_id!r}")
        else:
            with _os_errors(f"cannot stat {path}"):
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
                own = _open(execs, name, os.O_RDONLY, path)
            except FileNotFoundError:
                raise NotFoundError(f"no durable execution with id {execution_id!r}") from None
            try:
                with _os_errors(f"cannot read {path}"):
                    st = os.fstat(own)
                    data = _pread_all(own, offset, st.st_size - offset)
            finally:
                os.close(own)
        else:
            with _os_errors(f"cannot read {path}"):
                data = _pread_all(fd, offset, st.st_size - offset)
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

    def _append(self, fd: int, path: Path, record: bytes, offset: int) -> None:
        """Write ``record`` at ``offset`` (the end of the last whole record) and flush it.

        On any failure the journal is cut back to ``offset``: after a failed flush the
        state of the written pages is unknown, so the record counts as not written.
        """
        try:
            if os.fstat(fd).st_size > offset:
                os.ftruncate(fd, offset)  # drops a torn or zero-filled tail left by a crash
            _pwrite_all(fd, record, offset)
            if self.fsync:
                _datasync(fd)
        except OSError as exc:
            raise JournalWriteError(
                f"{path}: commit not written at offset {offset}: {_cause(exc)}"
                f"{self._cut_back(fd, offset)}"
            ) from exc

    def _cut_back(self, fd: int, offset: int) -> str:
        """Truncate to ``offset`` after a failed append; say what else went wrong, if anything."""
        try:
            os.ftruncate(fd, offset)
        except OSError as exc:
            return (
                f"; cutting the journal back to {offset} bytes failed too ({_cause(exc)}),"
                " so the record may still be read as committed"
            )
        if self.fsync:
            try:
                _datasync(fd)
            except OSError as exc:
                return f"; the cut back to {offset} bytes could not be flushed ({_cause(exc)})"
        return ""

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
        with self._lock:
            execs, names = self._dirs()
            fn_fd = _subdir(names, fn, fn_where)
            try:
                lock_fd = self._lock_file(fn_fd, fn_where / ".lock")
                try:
                    with _os_errors(f"cannot lock {fn_where / '.lock'}"):
                        fcntl.flock(lock_fd, fcntl.LOCK_EX)
                    existing = self._claimed(fn_fd, name, fn_where / name)
                    if existing is not None:
                        try:
                            return CreateResult(False, self.header(existing))
                        except NotFoundError:
                            self._drop_stale(existing)
                    if self._lstat(execs, journal.name, journal) is not None:
                        raise ConflictError(f"execution {h.arn} already exists")
                    self._claim(fn_fd, name, h.arn, fn_where)
                    self._write_first(execs, fn_fd, name, journal, record)
                    return CreateResult(True, h)
                finally:
                    os.close(lock_fd)
            finally:
                os.close(fn_fd)

    def _write_first(self, execs: int, fn_fd: int, name: str, journal: Path, record: bytes) -> None:
        """Write a new journal for the name just claimed; on failure take both back."""
        made = False
        try:
            try:
                fd = _create(execs, journal.name, os.O_RDWR, journal)
            except FileExistsError:
                raise ConflictError(f"execution journal {journal} already exists") from None
            made = True
            try:
                with _os_errors(f"cannot lock {journal}"):
                    fcntl.flock(fd, fcntl.LOCK_EX)
                self._append(fd, journal, record, 0)
            finally:
                os.close(fd)
            if self.fsync:
                with _os_errors(f"cannot flush the directories of {journal}", JournalWriteError):
                    os.fsync(execs)
                    os.fsync(fn_fd)
        except BaseException:
            # Under the function lock nobody else can have used the claim or the journal.
            for dir_fd, entry, mine in ((execs, journal.name, made), (fn_fd, name, True)):
                if mine:
                    _remove(dir_fd, entry)
            raise

    @staticmethod
    def _lock_file(fn_fd: int, where: Path) -> int:
        try:
            return _create(fn_fd, ".lock", os.O_RDWR, where)
        except FileExistsError:
            return _open(fn_fd, ".lock", os.O_RDWR, where)

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
            fd = _open(execs, path.name, os.O_RDONLY, path)
        except FileNotFoundError:
            return
        try:
            with _os_errors(f"cannot read {path}"):
                data = _pread_all(fd, 0, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        batches, _ = decode_records(data, str(path), 0)
        if not batches:
            with _os_errors(f"cannot remove {path}"):
                _remove(execs, path.name)

    def _claim(self, fn_fd: int, name: str, arn: str, fn_where: Path) -> None:
        """Point ``name`` at ``arn``; it is never seen half-written."""
        # An unpredictable name created O_EXCL: nobody can plant a link where it will be.
        tmp = f".{name}.{os.urandom(8).hex()}.tmp"
        fd = _create(fn_fd, tmp, os.O_WRONLY, fn_where / tmp)
        try:
            with _os_errors(f"cannot write {fn_where / tmp}", JournalWriteError):
                try:
                    _pwrite_all(fd, arn.encode(), 0)
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                # rename replaces whatever is at the name itself, never what it points to.
                os.replace(tmp, name, src_dir_fd=fn_fd, dst_dir_fd=fn_fd)
        except BaseException:
            _remove(fn_fd, tmp)
            raise

    @staticmethod
    def _claimed(fn_fd: int, name: str, where: Path) -> str | None:
        try:
            fd = _open(fn_fd, name, os.O_RDONLY, where)
        except FileNotFoundError:
            return None
        try:
            with _os_errors(f"cannot read {where}"):
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
                fd = _open(execs, path.name, os.O_RDWR, path)
            except FileNotFoundError:
                raise NotFoundError(f"no durable execution {h.arn!r}") from None
            try:
                with _os_errors(f"cannot lock {path}"):
                    fcntl.flock(fd, fcntl.LOCK_EX)
                cached = self._refresh(execution_id, fd)
                check_batch(batch, cached.index.header)
                record = encode_record(batch)
                self._append(fd, path, record, cached.offset)
                cached.index.apply(batch)
                cached.offset += len(record)
                with _os_errors(f"cannot stat {path}"):
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
        execs, _ = self._dirs()
        where = self.root / "executions"
        # A descriptor of its own: the kept one's position is shared with forked children.
        listing = _open(execs, ".", os.O_RDONLY | os.O_DIRECTORY, where)
        try:
            with _os_errors(f"cannot list {where}"):
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
            fd = _open(root, _SECRET, os.O_RDONLY, where)
        except FileNotFoundError:
            return None
        try:
            with _os_errors(f"cannot read {where}"):
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise StoreError(f"{where} is not a regular file")
                value = _pread_all(fd, 0, SECRET_BYTES) if st.st_size == SECRET_BYTES else b""
        finally:
            os.close(fd)
        if len(value) != SECRET_BYTES:
            raise StoreError(f"{where} holds {st.st_size} bytes, not a {SECRET_BYTES}-byte secret")
        return value

    def _make_secret(self, root: int) -> None:
        tmp = f".{_SECRET}.{os.urandom(8).hex()}.tmp"
        where = self.root / tmp
        fd = _create(root, tmp, os.O_WRONLY, where)
        try:
            with _os_errors(f"cannot write {where}"):
                try:
                    _pwrite_all(fd, os.urandom(SECRET_BYTES), 0)
                    # Always flushed: losing it would void every id and token made with it.
                    os.fsync(fd)
                finally:
                    os.close(fd)
            with _os_errors(f"cannot create {self.root / _SECRET}"):
                try:
                    os.link(tmp, _SECRET, src_dir_fd=root, dst_dir_fd=root, follow_symlinks=False)
                except FileExistsError:
                    return  # another process made it first; everyone reads that one
                os.fsync(root)
        finally:
            _remove(root, tmp)

    def close(self) -> None:
        """Drop the cache and close the store's directories (reopened if used again)."""
        with self._lock:
            self._cache.clear()
            _close_all(self._held)
