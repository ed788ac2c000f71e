"""System calls of the file store, made safe to use inside its directory.

Every file and directory is opened relative to an open directory descriptor with
``O_NOFOLLOW``, so a symbolic link planted in the store is refused, never followed; what
the store creates is private to its user (directories 0700, files 0600, whatever the
umask); reads and writes are whole (a short write is continued); and an ``OSError`` becomes
a :class:`~durable_ext.errors.StoreError` saying what failed, where and why.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from durable_ext.errors import StoreError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "cause",
    "check_private",
    "close_all",
    "create_in",
    "datasync",
    "lstat_in",
    "open_in",
    "open_subdir",
    "os_errors",
    "pread_all",
    "pwrite_all",
    "remove_in",
]

DIR_MODE = 0o700
FILE_MODE = 0o600


def cause(exc: OSError) -> str:
    """Say why a system call failed: the errno's name and its text."""
    code = errno.errorcode.get(exc.errno or 0)
    text = exc.strerror or str(exc)
    return f"{code}: {text}" if code else text


@contextmanager
def os_errors(what: str, kind: type[StoreError] = StoreError) -> Iterator[None]:
    """Turn an ``OSError`` into ``kind`` saying what failed, where and why."""
    try:
        yield
    except OSError as exc:
        raise kind(f"{what}: {cause(exc)}") from exc


def datasync(fd: int) -> None:
    """Flush a file's data to disk."""
    # fdatasync flushes the data and the new file size, which is all a journal append needs.
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``: a short write is continued, no progress is EIO."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        n = os.pwrite(fd, view[done:], offset + done)
        if n <= 0:
            raise OSError(errno.EIO, "the write made no progress")
        done += n


def pread_all(fd: int, offset: int, size: int) -> bytes:
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


def open_in(dir_fd: int, name: str, flags: int, where: object, mode: int = FILE_MODE) -> int:
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
        raise StoreError(f"cannot open {where}: {cause(exc)}") from exc


def create_in(dir_fd: int, name: str, flags: int, where: object) -> int:
    """Create ``name`` (it must not exist, not even as a link), mode 0600 whatever the umask."""
    fd = open_in(dir_fd, name, flags | os.O_CREAT | os.O_EXCL, where)
    try:
        with os_errors(f"cannot set the mode of {where}"):
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_private(fd: int, where: object, *, secret: bool = False) -> None:
    """Refuse a store directory or file that another user could change (or read, if secret).

    What the store makes is private already; this catches what was there before it, made
    by another user or with a loose mode: whoever can write there can forge records and
    ids, and whoever reads the secret can forge callback ids.
    """
    with os_errors(f"cannot inspect {where}"):
        st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise StoreError(
            f"{where} belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()}); "
            "a file store must be owned by the user running it"
        )
    loose = st.st_mode & (0o077 if secret else 0o022)
    if loose:
        fix = "go-rwx" if secret else "go-w"
        raise StoreError(
            f"{where} has mode {stat.S_IMODE(st.st_mode):04o}: "
            f"{'readable or writable' if secret else 'writable'} by other users; "
            f"run `chmod {fix}` on it if you trust its contents"
        )


def open_subdir(dir_fd: int, name: str, where: object) -> int:
    """Open directory ``name`` under ``dir_fd``, made 0700 if missing; never through a link."""
    made = True
    try:
        os.mkdir(name, DIR_MODE, dir_fd=dir_fd)
    except FileExistsError:
        made = False
    except OSError as exc:
        raise StoreError(f"cannot create {where}: {cause(exc)}") from exc
    fd = open_in(dir_fd, name, os.O_RDONLY | os.O_DIRECTORY, where)
    try:
        if made:
            with os_errors(f"cannot set the mode of {where}"):
                os.fchmod(fd, DIR_MODE)
        check_private(fd, where)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lstat_in(dir_fd: int, name: str, where: Path) -> os.stat_result | None:
    """Return the entry's own status (None if missing); a link or non-file is an error."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot stat {where}: {cause(exc)}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise StoreError(f"{where} is a symbolic link; the file store does not follow links")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{where} is not a regular file")
    return st


def remove_in(dir_fd: int, name: str) -> None:
    """Unlink ``name`` under ``dir_fd`` if it is there."""
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def close_all(fds: list[int]) -> None:
    """Close and forget every descriptor in ``fds``."""
    while fds:
        os.close(fds.pop())
