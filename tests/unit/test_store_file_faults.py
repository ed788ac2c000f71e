"""FileStore under faults: full disks, short writes, failed flushes, flipped bits, zero tails.

Faults are injected at the OS boundary (RLIMIT_FSIZE in a child process, ``os.pwrite`` and
``os.fdatasync`` replaced by versions that write less or fail); the store itself runs as is
on real files.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import re
import resource
import signal
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_store_file import _journal, _with_commits

from durable_ext.backends._journal import encode_record
from durable_ext.backends.file import FileStore, JournalCorruptError, JournalWriteError
from durable_ext.backends.store import CommitBatch
from durable_ext.errors import StoreError, StoreUnavailableError
from durable_ext.testing.contract import make_create, next_batch

_MP = multiprocessing.get_context("fork")


def _journal_with(
    tmp_path: Path, commits: int
) -> tuple[FileStore, str, Path, list[tuple[int, int]]]:
    """A journal of a create and ``commits`` commits, and each record's (start, end)."""
    store = FileStore(tmp_path / "s")
    b = make_create()
    store.create(b)
    path = _journal(store, b)
    ends = [path.stat().st_size]
    for _ in range(commits):
        store.commit(next_batch(store.header(b.header.arn)))
        ends.append(path.stat().st_size)
    return store, b.header.arn, path, list(zip([0, *ends[:-1]], ends, strict=True))


def _old_record(batch: CommitBatch) -> bytes:
    """A record in the layout journals had before the header checksum."""
    body = json.dumps(batch.to_dict(), separators=(",", ":")).encode()
    return struct.pack(">II", len(body), zlib.crc32(body)) + body


def _v2_header(length: int, body_crc: int = 0, version: int = 2) -> bytes:
    head = struct.pack(">3sBII", b"\xd7DX", version, length, body_crc)
    return head + struct.pack(">I", zlib.crc32(head))


def _flipped(data: bytes, offset: int, mask: int = 0xFF) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def _reads_back(root: Path, arn: str, revision: int) -> None:
    """A fresh store sees ``revision`` and every event up to it, parsed end to end."""
    fresh = FileStore(root)
    assert fresh.header(arn).revision == revision
    assert [e.event_id for e in fresh.events(arn)] == list(range(1, revision + 1))


# ---------------------------------------------------------------- disk full, short writes


def _commit_over_limit(root: str, arn: str, limit: int, out: Any) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    store = FileStore(root)
    header = store.header(arn)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        store.commit(next_batch(header, ops=3, events=3))
    except Exception as exc:
        out.put((type(exc).__name__, isinstance(exc, StoreUnavailableError), str(exc)))
    else:
        out.put(("returned", False, ""))
    out.put(store.header(arn).revision)


@pytest.mark.parametrize("room", [0, 1, 40])
def test_commit_on_a_full_disk_raises_and_leaves_the_journal(tmp_path: Path, room: int) -> None:
    store, b = _with_commits(tmp_path, 2)
    arn = b.header.arn
    path = _journal(store, b)
    before = path.read_bytes()
    q = _MP.Queue()
    child = _MP.Process(
        target=_commit_over_limit, args=(str(store.root), arn, len(before) + room, q)
    )
    child.start()
    try:
        name, unavailable, message = q.get(timeout=60)
        child_revision = q.get(timeout=60)
    finally:
        child.join(30)
    assert (name, unavailable) == ("JournalWriteError", True)
    assert str(path) in message and "EFBIG" in message
    assert child_revision == 3  # the child's own view did not advance either
    assert path.read_bytes() == before
    _reads_back(store.root, arn, 3)
    # Space is back: the next commit works and the journal parses end to end.
    fresh = FileStore(store.root)
    fresh.commit(next_batch(fresh.header(arn)))
    _reads_back(store.root, arn, 4)


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, b = _with_commits(tmp_path, 1)
    real = os.pwrite

    def half(fd: int, data: Any, offset: int) -> int:
        view = memoryview(data)
        return real(fd, view[: max(1, len(view) // 2)], offset)

    monkeypatch.setattr(os, "pwrite", half)
    store.commit(next_batch(store.header(b.header.arn), ops=4, events=4))
    store.commit(next_batch(store.header(b.header.arn)))
    monkeypatch.undo()
    fresh = FileStore(store.root)
    assert fresh.header(b.header.arn).revision == 4
    assert len(fresh.events(b.header.arn)) == 1 + 1 + 4 + 1


def _failing_after(real: Callable[..., int], writes: int, code: int) -> Callable[..., int]:
    """``os.pwrite`` writing half of the first ``writes`` calls, then failing with ``code``."""
    calls: list[int] = []

    def pwrite(fd: int, data: Any, offset: int) -> int:
        calls.append(offset)
        if len(calls) > writes:
            raise OSError(code, os.strerror(code))
        view = memoryview(data)
        return real(fd, view[: len(view) // 2], offset)

    return pwrite


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EFBIG])
def test_short_write_then_error_cuts_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    store, b = _with_commits(tmp_path, 2)
    arn = b.header.arn
    path = _journal(store, b)
    before = path.read_bytes()
    header = store.header(arn)
    monkeypatch.setattr(os, "pwrite", _failing_after(os.pwrite, 1, code))
    with pytest.raises(JournalWriteError, match=errno.errorcode[code]) as info:
        store.commit(next_batch(header))
    monkeypatch.undo()
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert store.header(arn) == header  # the cache did not advance
    store.commit(next_batch(store.header(arn)))
    _reads_back(store.root, arn, 4)


@pytest.mark.parametrize("failures", [1, 2])
def test_failed_flush_is_not_taken_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    store, b = _with_commits(tmp_path, 2)
    arn = b.header.arn
    path = _journal(store, b)
    before = path.read_bytes()
    header = store.header(arn)
    real = os.fdatasync
    failed: list[int] = []

    def eio(fd: int) -> None:
        if len(failed) < failures:
            failed.append(fd)
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", eio)
    with pytest.raises(JournalWriteError, match="EIO") as info:
        store.commit(next_batch(header))
    # The second failure is the flush of the cut itself: said, but the cut is made.
    assert ("could not be flushed" in str(info.value)) == (failures == 2)
    # The record reached the page cache; after a failed flush it is cut off, not kept.
    assert path.read_bytes() == before
    assert store.header(arn) == header
    _reads_back(store.root, arn, 3)
    store.commit(next_batch(store.header(arn)))
    _reads_back(store.root, arn, 4)


def test_a_reader_that_saw_a_record_cut_back_reads_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, b = _with_commits(tmp_path, 2)
    arn = b.header.arn
    reader = FileStore(writer.root)
    assert reader.header(arn).revision == 3
    real = os.fdatasync
    seen: list[int] = []

    def reader_looks_then_eio(fd: int) -> None:
        if not seen:
            # Between the write and its flush another store reads the new record.
            seen.append(reader.header(arn).revision)
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", reader_looks_then_eio)
    with pytest.raises(JournalWriteError):
        writer.commit(next_batch(writer.header(arn)))
    assert seen == [4]
    assert reader.header(arn).revision == 3
    reader.commit(next_batch(reader.header(arn), ops=2))
    _reads_back(writer.root, arn, 4)
    assert len(FileStore(writer.root).operations(arn)) == 1 + 2 + 2


def test_failed_create_leaves_neither_claim_nor_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "s")
    first = make_create(name="n1")
    monkeypatch.setattr(os, "pwrite", _failing_after(os.pwrite, 1, errno.ENOSPC))
    with pytest.raises(JournalWriteError, match="ENOSPC"):
        store.create(first)
    monkeypatch.undo()
    assert os.listdir(store.root / "executions") == []
    assert os.listdir(store.root / "names" / "fn") == [".lock"]
    again = make_create(name="n1")
    assert store.create(again).created
    assert FileStore(store.root).header(again.header.arn).revision == 1


def test_oversized_commit_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import durable_ext.backends._journal as journal_module

    store, b = _with_commits(tmp_path, 1)
    path = _journal(store, b)
    before = path.read_bytes()
    monkeypatch.setattr(journal_module, "_MAX_RECORD", 4096)
    big = next_batch(store.header(b.header.arn), ops=60)
    with pytest.raises(StoreError, match="limit is 4096"):
        store.commit(big)
    assert path.read_bytes() == before


# ---------------------------------------------------------------- flipped bits


def test_any_flipped_byte_of_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    store, arn, path, bounds = _journal_with(tmp_path, 3)
    data = path.read_bytes()
    start, end = bounds[-1]
    previous = FileStore(store.root)
    path.write_bytes(data[:start])
    header = previous.header(arn)
    # Every byte of the record inverted, and every single bit of its first 16 bytes.
    cases = [(i, 0xFF) for i in range(start, end)]
    cases += [(start + i, 1 << bit) for i in range(16) for bit in range(8)]
    for offset, mask in cases:
        path.write_bytes(_flipped(data, offset, mask))
        fresh = FileStore(store.root, fsync=False)
        assert fresh.header(arn) == header, (offset, mask)
        assert len(fresh.events(arn)) == 3, (offset, mask)
        batch = next_batch(header)
        fresh.commit(batch)
        # The bad tail was cut and the new record appended; nothing before it changed.
        assert path.read_bytes() == data[:start] + encode_record(batch), (offset, mask)
        _reads_back(store.root, arn, 4)


def test_any_flipped_byte_of_a_middle_record_is_corruption(tmp_path: Path) -> None:
    store, arn, path, bounds = _journal_with(tmp_path, 3)
    data = path.read_bytes()
    header = store.header(arn)
    start, end = bounds[1]
    cases = [(start + i, 1 << bit) for i in range(16) for bit in range(8)]
    cases += [(i, 0xFF) for i in range(start, start + 24)]
    cases += [(i, 0xFF) for i in range(start + 24, end - 8, 7)]
    cases += [(i, 0xFF) for i in range(end - 8, end)]
    for offset, mask in cases:
        corrupt = _flipped(data, offset, mask)
        path.write_bytes(corrupt)
        fresh = FileStore(store.root)
        where = f"{re.escape(str(path))}: .*offset {start}\\b"
        with pytest.raises(JournalCorruptError, match=where):
            fresh.header(arn)
        # Never rolled back, never cut: a commit is refused and the records stay.
        with pytest.raises(JournalCorruptError):
            fresh.commit(next_batch(header))
        assert path.read_bytes() == corrupt, (offset, mask)


# ---------------------------------------------------------------- zero tails, bounds


@pytest.mark.parametrize("zeros", [1, 7, 8, 15, 16, 4096, 65536])
def test_zero_filled_tail_is_recovered(tmp_path: Path, zeros: int) -> None:
    store, arn, path, _ = _journal_with(tmp_path, 3)
    data = path.read_bytes()
    path.write_bytes(data + bytes(zeros))
    fresh = FileStore(store.root)
    assert fresh.header(arn).revision == 4
    batch = next_batch(fresh.header(arn))
    fresh.commit(batch)
    assert path.read_bytes() == data + encode_record(batch)
    _reads_back(store.root, arn, 5)


def test_zero_filled_tail_after_a_torn_record_is_recovered(tmp_path: Path) -> None:
    store, arn, path, bounds = _journal_with(tmp_path, 3)
    start, _ = bounds[-1]
    path.write_bytes(path.read_bytes()[: start + 20] + bytes(4096))
    assert FileStore(store.root).header(arn).revision == 3


def test_zeros_before_a_whole_record_are_corruption(tmp_path: Path) -> None:
    store, arn, path, bounds = _journal_with(tmp_path, 3)
    data = path.read_bytes()
    start, end = bounds[2]
    path.write_bytes(data[:start] + bytes(end - start) + data[end:])
    with pytest.raises(JournalCorruptError, match=f"offset {start}\\b"):
        FileStore(store.root).header(arn)


@pytest.mark.parametrize("length", [512 * 1024 * 1024 + 1, 0xFFFFFFFF])
def test_length_over_the_limit(tmp_path: Path, length: int) -> None:
    store, arn, path, bounds = _journal_with(tmp_path, 3)
    data = path.read_bytes()
    last = data[bounds[-1][0] :]
    for huge in (_v2_header(length) + b'{"header":', struct.pack(">II", length, 0) + b"{"):
        path.write_bytes(data + huge)
        tracemalloc.start()
        try:
            assert FileStore(store.root).header(arn).revision == 4  # the end: a torn tail
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * 1024 * 1024  # the length never sized a buffer
        # Followed by a whole record it is corruption at its offset.
        path.write_bytes(data + huge + last)
        with pytest.raises(JournalCorruptError, match=f"offset {len(data)}\\b"):
            FileStore(store.root).header(arn)


def test_newer_record_format_is_refused_not_cut(tmp_path: Path) -> None:
    store, arn, path, _ = _journal_with(tmp_path, 3)
    data = path.read_bytes()
    newer = data + _v2_header(2, zlib.crc32(b"{}"), version=3) + b"{}"
    path.write_bytes(newer)
    with pytest.raises(StoreError, match="format version 3"):
        FileStore(store.root).header(arn)
    with pytest.raises(StoreError, match="format version 3"):
        FileStore(store.root).commit(next_batch(store.header(arn)))
    assert path.read_bytes() == newer


# ---------------------------------------------------------------- journals of the old layout


def _old_journal(tmp_path: Path, commits: int) -> tuple[FileStore, str, Path, list[bytes]]:
    store = FileStore(tmp_path / "s")
    b = make_create()
    batches = [b]
    for _ in range(commits):
        batches.append(next_batch(batches[-1].header))
    records = [_old_record(x) for x in batches]
    path = _journal(store, b)
    path.write_bytes(b"".join(records))
    return store, b.header.arn, path, records


def test_old_layout_journal_reads_and_takes_new_records(tmp_path: Path) -> None:
    store, arn, path, records = _old_journal(tmp_path, 2)
    old = b"".join(records)
    assert store.header(arn).revision == 3
    store.commit(next_batch(store.header(arn)))
    after = path.read_bytes()
    assert after.startswith(old) and after[len(old) : len(old) + 3] == b"\xd7DX"
    _reads_back(store.root, arn, 4)
    # A torn old-layout tail is recovered like any other.
    path.write_bytes(old + records[1][:30])
    assert FileStore(store.root).header(arn).revision == 3


@pytest.mark.parametrize("bit", range(32))
def test_old_layout_flipped_length_in_the_middle_never_rolls_back(tmp_path: Path, bit: int) -> None:
    store, arn, path, records = _old_journal(tmp_path, 3)
    start = len(records[0])
    data = _flipped(b"".join(records), start + (31 - bit) // 8, 1 << (bit % 8))
    path.write_bytes(data)
    with pytest.raises(JournalCorruptError, match=f"offset {start}\\b"):
        FileStore(store.root).header(arn)
    assert path.read_bytes() == data


def test_old_layout_records_in_the_middle_of_a_mixed_journal_are_checked(
    tmp_path: Path,
) -> None:
    store, arn, path, records = _old_journal(tmp_path, 1)
    store.commit(next_batch(store.header(arn)))
    mixed = path.read_bytes()
    # The second old record claims to run past the end: the new record after it says no.
    data = _flipped(mixed, len(records[0]), 0x10)
    path.write_bytes(data)
    with pytest.raises(JournalCorruptError, match=f"offset {len(records[0])}\\b"):
        FileStore(store.root).header(arn)
