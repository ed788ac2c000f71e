"""Proof, on one host, that a runtime process has ended: a file it keeps locked.

An invocation's lease (:class:`~durable_ext.engine.state.Lease`) names its ``owner``, the
runtime's identity, unique per process (it holds a random 128-bit instance id); its
``host`` and ``pid`` are for people only. Host names repeat across machines and
containers, and a pid means nothing outside its PID namespace, so neither ever proves a
runtime gone. What does is a mark: each running runtime holds an exclusive ``flock`` on a
file named after its owner, in a private directory of this host, and the kernel drops
that lock when the process ends, however it ends. A mark found unlocked proves that its
runtime is gone, and its invocations are taken over at once; no mark proves nothing, and
then only the lease's expiry counts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no marks, takeovers wait for expiry
    fcntl = None  # type: ignore[assignment]

__all__ = ["WorkerMarks", "default_marks_dir"]

log = logging.getLogger("durable_ext.runtime")

#: marks of ended workers older than this are swept when a worker starts
_STALE_SECONDS = 24 * 3600
_SWEEP_LIMIT = 256
_MAX_MARK_BYTES = 4096


def default_marks_dir() -> Path:
    """Return this user's mark directory: under ``$XDG_RUNTIME_DIR``, else the temp dir."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"durable-ext-{os.getuid()}" / "workers"


class WorkerMarks:
    """Proof, on one host, that a worker process has ended: a file it keeps locked.

    Args:
        directory: where marks live (default :func:`default_marks_dir`). It must be
            local to the host, owned by this user and closed to others; otherwise no
            mark is written or believed, and takeovers wait for lease expiry.

    Example:
        >>> marks = WorkerMarks()
        >>> marks.hold("worker-1#0f3a...")  # doctest: +SKIP
        True

    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_marks_dir()
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._usable: bool | None = None

    def __repr__(self) -> str:
        return f"WorkerMarks({str(self.directory)!r}, held={len(self._held)})"

    @staticmethod
    def _name(owner: str) -> str:
        # Owners are free text (a worker id may hold anything): a hash makes a file name.
        return hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:40]

    def _ready(self) -> bool:
        """Whether the directory exists as a private directory of this user."""
        if self._usable is None:
            self._usable = self._prepare()
        return self._usable

    def _prepare(self) -> bool:
        if fcntl is None:
            return False
        try:
            # One level at a time: mkdir(parents=True) would make the parent with the
            # default mode, not 0o700.
            for d in (self.directory.parent, self.directory):
                d.mkdir(mode=0o700, exist_ok=True)
            for d in (self.directory.parent, self.directory):
                st = d.lstat()
                # A directory others can write to (or swap for a link) could fake a mark.
                if (not d.is_dir() or d.is_symlink() or st.st_uid != os.getuid()
                        or st.st_mode & 0o022):
                    raise PermissionError(f"{d} is not a private directory of this user")
        except OSError as exc:
            log.warning("worker marks disabled (%s): takeovers wait for lease expiry", exc)
            return False
        return True

    def hold(self, owner: str) -> bool:
        """Write and lock the mark of ``owner``, a worker of this process, until released.

        Returns whether the mark is held (False where marks cannot be kept).
        """
        with self._lock:
            if owner in self._held:
                return True
            if not self._ready():
                return False
            self._sweep()
            final = self.directory / self._name(owner)
            # Locked before it gets its name, so a mark under its final name is never
            # found unlocked while its worker lives.
            tmp = self.directory / f".{final.name}.{os.getpid()}.{threading.get_ident()}"
            try:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                log.warning("worker mark for %s not written: %s", owner, exc)
                return False
            try:
                assert fcntl is not None
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.write(fd, f"{owner}\n{os.getpid()}\n".encode("utf-8", "surrogatepass"))
                os.replace(tmp, final)
            except OSError as exc:
                os.close(fd)
                with contextlib.suppress(OSError):
                    tmp.unlink()
                log.warning("worker mark for %s not written: %s", owner, exc)
                return False
            self._held[owner] = fd
            return True

    def release(self, owner: str) -> None:
        """Remove the mark of ``owner`` (its worker stops; its leases are released)."""
        with self._lock:
            fd = self._held.pop(owner, None)
            if fd is None:
                return
            # Unlinked while still locked, so nobody sees it unlocked under its name.
            with contextlib.suppress(OSError):
                (self.directory / self._name(owner)).unlink()
            os.close(fd)

    def ended(self, owner: str) -> bool:
        """Whether ``owner`` kept a mark on this host and its process has ended since."""
        if owner in self._held or not self._ready():
            return False
        return self._unlocked(self.directory / self._name(owner), owner)

    @staticmethod
    def _unlocked(path: Path, owner: str | None) -> bool:
        assert fcntl is not None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False  # no mark here: nothing is proven
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # locked: its process (or a child it forked) still runs
            if owner is None:
                return True
            first = os.read(fd, _MAX_MARK_BYTES).split(b"\n", 1)[0]
            return first == owner.encode("utf-8", "surrogatepass")
        finally:
            os.close(fd)

    def _sweep(self) -> None:
        """Remove a bounded number of day-old marks of ended workers."""
        cutoff = time.time() - _STALE_SECONDS
        try:
            with os.scandir(self.directory) as it:
                for n, entry in enumerate(it):
                    if n >= _SWEEP_LIMIT:
                        break
                    with contextlib.suppress(OSError):
                        if (entry.is_file(follow_symlinks=False)
                                and entry.stat(follow_symlinks=False).st_mtime < cutoff
                                and self._unlocked(Path(entry.path), None)):
                            os.unlink(entry.path)
        except OSError:
            pass
