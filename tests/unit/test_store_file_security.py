"""FileStore files are private, never opened through links, and hold one shared secret."""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_store_file import _journal

from durable_ext.backends.file import FileStore
from durable_ext.backends.store import SECRET_BYTES
from durable_ext.errors import ConflictError, StoreError
from durable_ext.testing.contract import make_create, next_batch

_MP = multiprocessing.get_context("fork")
_LINK = "symbolic link"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the store that a planted link points at."""
    path = tmp_path / "victim"
    path.write_bytes(b"precious")
    return path


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# ---------------------------------------------------------------- permissions


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize("mask", [0o022, 0o000, 0o077, 0o277])
def test_everything_the_store_makes_is_private(tmp_path: Path, mask: int) -> None:
    os.umask(mask)
    root = tmp_path / "store"
    store = FileStore(root)
    b = make_create(name="n1")
    store.create(b)
    store.commit(next_batch(store.header(b.header.arn)))
    fn_dir = root / "names" / "fn"
    for d in (root, root / "executions", root / "names", fn_dir):
        assert _mode(d) == 0o700, d
    for f in (_journal(store, b), fn_dir / "n1", fn_dir / ".lock"):
        assert _mode(f) == 0o600, f
    assert sorted(os.listdir(fn_dir)) == [".lock", "n1"]  # no temporary file left
    store.secret()
    assert _mode(root / "secret") == 0o600
    assert sorted(os.listdir(root)) == ["executions", "names", "secret"]


def test_a_store_made_with_wider_modes_keeps_working(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = FileStore(root)
    b = make_create(name="n1")
    store.create(b)
    for dirpath, _, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    again = FileStore(root)
    again.commit(next_batch(again.header(b.header.arn)))
    assert again.create(make_create(name="n2")).created
    assert FileStore(root).header(b.header.arn).revision == 2
    assert _mode(root / "executions") == 0o755 and _mode(_journal(store, b)) == 0o644


# ---------------------------------------------------------------- links


def test_link_at_a_journal_is_refused(tmp_path: Path, victim: Path) -> None:
    store = FileStore(tmp_path / "s")
    b = make_create()
    store.create(b)
    path = _journal(store, b)
    victim.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(victim)
    planted = victim.read_bytes()
    with pytest.raises(StoreError, match=_LINK):
        store.commit(next_batch(store.header(b.header.arn)))
    with pytest.raises(StoreError, match=_LINK):
        FileStore(store.root).header(b.header.arn)
    assert victim.read_bytes() == planted


@pytest.mark.parametrize("dangling", [True, False])
def test_link_where_a_new_journal_goes_is_refused(
    tmp_path: Path, victim: Path, dangling: bool
) -> None:
    store = FileStore(tmp_path / "s")
    b = make_create()
    target = tmp_path / "nowhere" if dangling else victim
    _journal(store, b).symlink_to(target)
    with pytest.raises(StoreError, match=_LINK) as info:
        store.create(b)
    assert not isinstance(info.value, ConflictError)
    assert not (tmp_path / "nowhere").exists()
    assert victim.read_bytes() == b"precious"


def test_link_at_a_name_claim_is_refused(tmp_path: Path, victim: Path) -> None:
    store = FileStore(tmp_path / "s")
    other = make_create(name="elsewhere")
    store.create(other)
    victim.write_text(other.header.arn)  # a claim that would resolve to another execution
    fn_dir = store.root / "names" / "fn"
    (fn_dir / "n1").symlink_to(victim)
    with pytest.raises(StoreError, match=_LINK):
        store.create(make_create(name="n1"))
    assert victim.read_text() == other.header.arn
    assert (fn_dir / "n1").is_symlink()


def test_link_at_the_claim_temporary_file_is_refused(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "s")
    store.create(make_create(name="first"))
    b = make_create(name="n1")
    fn_dir = store.root / "names" / "fn"
    # Links at every name the temporary file could have: the per-process one older code
    # used, and the random one made from this test's fixed os.urandom.
    (fn_dir / f".n1.{os.getpid()}.{threading.get_ident()}.tmp").symlink_to(victim)
    fixed = b"\x01" * 8
    (fn_dir / f".n1.{fixed.hex()}.tmp").symlink_to(victim)
    monkeypatch.setattr(os, "urandom", lambda n: fixed[:n].ljust(n, b"\x01"))
    with pytest.raises(StoreError, match=_LINK):
        store.create(b)
    monkeypatch.undo()
    assert victim.read_bytes() == b"precious"
    assert not (fn_dir / "n1").exists()


def test_link_at_the_name_lock_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    fn_dir = store.root / "names" / "fn"
    fn_dir.mkdir(mode=0o700)
    (fn_dir / ".lock").symlink_to(tmp_path / "lock-victim")
    with pytest.raises(StoreError, match=_LINK):
        store.create(make_create(name="n1"))
    assert not (tmp_path / "lock-victim").exists()


def test_link_at_a_function_directory_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / "names" / "fn").symlink_to(outside)
    with pytest.raises(StoreError, match=_LINK):
        store.create(make_create(name="n1"))
    assert os.listdir(outside) == []
    assert os.listdir(store.root / "executions") == []


@pytest.mark.parametrize("sub", ["executions", "names"])
def test_link_at_a_store_directory_is_refused(tmp_path: Path, sub: str) -> None:
    root = tmp_path / "s"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / sub).symlink_to(outside)
    with pytest.raises(StoreError, match=_LINK):
        FileStore(root)
    assert os.listdir(outside) == []


def test_directory_swapped_for_a_link_later_is_not_followed(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    b = make_create()
    store.create(b)
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / "executions").rename(tmp_path / "moved")
    (store.root / "executions").symlink_to(outside)
    store.commit(next_batch(store.header(b.header.arn)))
    store.create(make_create(name="n2"))
    assert os.listdir(outside) == []
    assert len(os.listdir(tmp_path / "moved")) == 2


def _open_fds(root: Path) -> int:
    """Descriptors of this process open on ``root`` or anything under it.

    Counted by target, not in all: other tests leave threads and sockets that come and go.
    """
    inside = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        inside += target == str(root) or target.startswith(f"{root}/")
    return inside


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_directories_held_open_are_released(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    b = make_create()
    store.create(b)
    before = _open_fds(store.root)
    assert before >= 2  # the store holds its two directories open
    for _ in range(50):
        other = FileStore(store.root)
        other.header(b.header.arn)
        del other
    assert _open_fds(store.root) == before
    store.close()
    assert _open_fds(store.root) == before - 2
    # A closed store opens its directories again when it is used.
    store.commit(next_batch(store.header(b.header.arn)))
    assert FileStore(store.root).header(b.header.arn).revision == 2


# ---------------------------------------------------------------- secret


def test_secret_is_made_once_and_persists(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    value = store.secret()
    assert isinstance(value, bytes) and len(value) == SECRET_BYTES
    assert store.secret() == value
    assert FileStore(store.root).secret() == value
    assert (store.root / "secret").read_bytes() == value
    assert FileStore(tmp_path / "other").secret() != value


def test_secret_is_read_once_per_store(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    value = store.secret()
    replaced = bytes(SECRET_BYTES)
    (store.root / "secret").write_bytes(replaced)
    assert store.secret() == value
    assert FileStore(store.root).secret() == replaced


@pytest.mark.parametrize("size", [0, 1, SECRET_BYTES - 1, SECRET_BYTES + 1, 4096])
def test_secret_of_the_wrong_size_is_an_error(tmp_path: Path, size: int) -> None:
    store = FileStore(tmp_path / "s")
    (store.root / "secret").write_bytes(b"k" * size)
    (store.root / "secret").chmod(0o600)
    with pytest.raises(StoreError, match=f"holds {size} bytes"):
        store.secret()


def test_link_at_the_secret_is_refused(tmp_path: Path, victim: Path) -> None:
    store = FileStore(tmp_path / "s")
    known = b"k" * SECRET_BYTES  # a value someone else knows
    victim.write_bytes(known)
    (store.root / "secret").symlink_to(victim)
    with pytest.raises(StoreError, match=_LINK):
        store.secret()
    dangling = FileStore(tmp_path / "t")
    (dangling.root / "secret").symlink_to(tmp_path / "planted")
    with pytest.raises(StoreError, match=_LINK):
        dangling.secret()
    assert not (tmp_path / "planted").exists()
    assert victim.read_bytes() == known


def _race_for_secret(root: str, barrier: multiprocessing.synchronize.Barrier, out: object) -> None:
    store = FileStore(root)
    barrier.wait(30)
    out.put(store.secret())  # type: ignore[attr-defined]


def test_processes_racing_for_the_secret_get_the_same_bytes(tmp_path: Path) -> None:
    root = tmp_path / "s"
    for _ in range(5):  # a fresh store each round, so every round races to make it
        FileStore(root)
        racers = 4
        barrier = _MP.Barrier(racers)
        q = _MP.Queue()
        procs = [
            _MP.Process(target=_race_for_secret, args=(str(root), barrier, q))
            for _ in range(racers)
        ]
        for p in procs:
            p.start()
        try:
            values = {q.get(timeout=60) for _ in procs}
        finally:
            for p in procs:
                p.join(30)
        assert len(values) == 1
        (value,) = values
        assert len(value) == SECRET_BYTES
        assert FileStore(root).secret() == value
        assert sorted(os.listdir(root)) == ["executions", "names", "secret"]
        (root / "secret").unlink()


@pytest.mark.parametrize("where", ["", "executions", "names"])
def test_store_directories_writable_by_others_are_refused(tmp_path: Path, where: str) -> None:
    FileStore(tmp_path / "s").close()
    (tmp_path / "s" / where).chmod(0o777 if where else 0o775)
    with pytest.raises(StoreError, match=r"writable by other users.*chmod go-w"):
        FileStore(tmp_path / "s")


def test_a_secret_other_users_can_read_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    store.secret()
    (store.root / "secret").chmod(0o644)
    with pytest.raises(StoreError, match="readable or writable by other users"):
        FileStore(tmp_path / "s").secret()


def test_a_readable_but_not_writable_store_directory_is_accepted(tmp_path: Path) -> None:
    FileStore(tmp_path / "s").close()
    (tmp_path / "s").chmod(0o755)
    assert len(FileStore(tmp_path / "s").secret()) == SECRET_BYTES


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize("where", ["", "executions", "secret"])
def test_store_files_of_another_user_are_refused(tmp_path: Path, where: str) -> None:
    store = FileStore(tmp_path / "s")
    store.secret()
    store.close()
    os.chown(tmp_path / "s" / where, 65534, 65534)
    with pytest.raises(StoreError, match="belongs to uid 65534, not to this user"):
        FileStore(tmp_path / "s").secret()
