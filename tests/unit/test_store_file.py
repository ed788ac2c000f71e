from __future__ import annotations

import multiprocessing
import os
import struct
from pathlib import Path

import pytest

from durable_ext.backends import open_store
from durable_ext.backends._journal import encode_record
from durable_ext.backends.file import FileStore, JournalCorruptError
from durable_ext.errors import ConfigError, ConflictError, NotFoundError, SpecError
from durable_ext.testing.contract import StoreContract, make_create, next_batch


class TestFileStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FileStore:
        return FileStore(tmp_path / "store")

    @pytest.fixture
    def other(self, store: FileStore) -> FileStore:
        return FileStore(store.root)


class TestFileStoreNoFsync(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FileStore:
        return FileStore(tmp_path / "store", fsync=False)


def _journal(store: FileStore, batch) -> Path:  # type: ignore[no-untyped-def]
    return store.root / "executions" / f"{batch.header.execution_id}.log"


def _with_commits(tmp_path: Path, n: int = 3):  # type: ignore[no-untyped-def]
    store = FileStore(tmp_path / "s")
    b = make_create()
    store.create(b)
    for _ in range(n):
        store.commit(next_batch(store.header(b.header.arn)))
    return store, b


def test_open_store_file_url(tmp_path: Path) -> None:
    s = open_store(f"file://{tmp_path}/x?fsync=false")
    assert isinstance(s, FileStore)
    assert s.fsync is False
    with pytest.raises(SpecError, match="unknown option"):
        open_store(f"file://{tmp_path}/x?sync=1")
    with pytest.raises(ConfigError):
        open_store(f"file://{tmp_path}/x?fsync=maybe")


def test_reopen_reads_everything_back(tmp_path: Path) -> None:
    store, b = _with_commits(tmp_path, 5)
    again = FileStore(store.root)
    assert again.header(b.header.arn) == store.header(b.header.arn)
    assert len(again.events(b.header.arn)) == 6


def test_commit_cost_is_one_appended_record(tmp_path: Path) -> None:
    store, b = _with_commits(tmp_path, 50)
    path = _journal(store, b)
    before = path.stat().st_size
    c = next_batch(store.header(b.header.arn))
    store.commit(c)
    # Only this batch's record is appended; the journal is never rewritten.
    assert path.stat().st_size - before == len(encode_record(c))


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_torn_tail_is_ignored_then_cut(tmp_path: Path, cut: int) -> None:
    store, b = _with_commits(tmp_path, 3)
    path = _journal(store, b)
    good = path.read_bytes()
    torn = encode_record(next_batch(store.header(b.header.arn)))[:cut]
    path.write_bytes(good + torn)
    fresh = FileStore(store.root)
    h = fresh.header(b.header.arn)
    assert h.revision == 4  # the torn record is not there
    fresh.commit(next_batch(h))
    assert FileStore(store.root).header(b.header.arn).revision == 5
    # The torn bytes were cut before appending: the journal parses end to end.
    assert len(FileStore(store.root).events(b.header.arn)) == 5


def test_bad_checksum_in_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    store, b = _with_commits(tmp_path, 2)
    path = _journal(store, b)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert FileStore(store.root).header(b.header.arn).revision == 2


def test_corruption_in_the_middle_raises(tmp_path: Path) -> None:
    store, b = _with_commits(tmp_path, 3)
    path = _journal(store, b)
    data = bytearray(path.read_bytes())
    length = struct.unpack(">I", data[4:8])[0]
    data[16 + length // 2] ^= 0xFF  # inside the first record's body
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruptError, match="offset 0"):
        FileStore(store.root).header(b.header.arn)


def test_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    for bad in ("../x", "a/b", "..", "", "x" * 65, "a b"):
        with pytest.raises(NotFoundError):
            store.header(f"arn:aws:lambda:r:1:function:f:$LATEST/durable-execution/n/{bad}")
    b = make_create(name="ok")
    evil = b.header.evolve(name="../../etc")
    from durable_ext.backends.store import CommitBatch

    with pytest.raises(NotFoundError):
        store.create(
            CommitBatch(header=evil, expected_revision=0, operations=b.operations, events=b.events)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_duplicate_execution_id_conflicts(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    b = make_create(name="one")
    store.create(b)
    from durable_ext.backends.store import CommitBatch

    same_id = CommitBatch(
        header=b.header.evolve(name="two"),
        expected_revision=0,
        operations=b.operations,
        events=b.events,
    )
    with pytest.raises(ConflictError):
        store.create(same_id)


def _hammer(root: str, arn: str, rounds: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = FileStore(root)
    wins = 0
    for _ in range(rounds):
        h = store.header(arn)
        try:
            store.commit(next_batch(h, ops=1, events=2))
            wins += 1
        except ConflictError:
            pass
    out.put(wins)


def test_two_processes_cannot_corrupt_a_journal(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s", fsync=False)
    b = make_create()
    store.create(b)
    ctx = multiprocessing.get_context("fork")
    q: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [
        ctx.Process(target=_hammer, args=(str(store.root), b.header.arn, 150, q)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    wins = sum(q.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    fresh = FileStore(store.root)
    h = fresh.header(b.header.arn)
    assert wins > 0
    assert h.revision == 1 + wins
    events = fresh.events(b.header.arn)
    assert [e.event_id for e in events] == list(range(1, 2 + 2 * wins))
    assert len(fresh.operations(b.header.arn)) == 1 + wins


def test_other_process_commits_are_seen(tmp_path: Path) -> None:
    a = FileStore(tmp_path / "s")
    b_store = FileStore(tmp_path / "s")
    b = make_create()
    a.create(b)
    assert b_store.header(b.header.arn).revision == 1
    a.commit(next_batch(a.header(b.header.arn)))
    assert b_store.header(b.header.arn).revision == 2
    # b_store's cache was refreshed, so its own commit computed from it succeeds.
    b_store.commit(next_batch(b_store.header(b.header.arn)))
    assert a.header(b.header.arn).revision == 3
    assert [d.key for d in b_store.due()] == ["invoke"]


def test_unwritable_directory_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot use"):
        FileStore(blocker / "sub")
    assert os.path.exists(blocker)


def test_claim_left_by_a_dead_creator_is_replaced(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    dead = make_create(name="n1")
    # A creator died after claiming the name and writing half of its first record.
    fn_dir = store.root / "names" / "fn"
    fn_dir.mkdir(parents=True)
    (fn_dir / "n1").write_text(dead.header.arn)
    _journal(store, dead).write_bytes(encode_record(dead)[:10])
    fresh = make_create(name="n1")
    res = store.create(fresh)
    assert res.created and res.header.arn == fresh.header.arn
    assert not _journal(store, dead).exists()
    assert [h.arn for h in store.list_executions().headers] == [fresh.header.arn]
    assert store.create(make_create(name="n1")).header.arn == fresh.header.arn
