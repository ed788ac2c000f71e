"""The file store's journal records: their format, the recovery rules, the checked append.

A journal is a sequence of records, one per commit::

    +----------+---------+--------+-------------+---------------+-------------------------+
    | magic    | version | length | crc32(body) | crc32(header) | body                    |
    | D7 44 58 | 02      | u32 BE | u32 BE      | of bytes 0-11 | CommitBatch JSON, ASCII |
    +----------+---------+--------+-------------+---------------+-------------------------+

The header checksum covers the magic, version, length and body checksum, so a damaged
length is caught before it is used. Journals written before this layout hold records of
``length (u32 BE) | crc32(body) | body``; they are still read, and new records are appended
after them in the new layout.

A record is appended at the end of the last whole record and flushed (``fdatasync``). A
short write is continued; if a write or the flush fails (``ENOSPC``, ``EFBIG``, ``EIO``)
the journal is cut back to its last whole record before :class:`JournalWriteError` is
raised: a record whose flush failed is treated as never written.

Recovery: a torn tail (a final record that is incomplete or does not verify, or zero bytes
left by a crash, with no whole record after it) is ignored by readers and cut off by the
next append. A bad record followed by a whole one is corruption: :class:`JournalCorruptError`
names the file and offset, and nothing is truncated.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

from durable_ext.backends._safe_files import cause, datasync, pwrite_all
from durable_ext.backends.store import CommitBatch
from durable_ext.errors import StoreError, StoreUnavailableError

__all__ = [
    "JournalCorruptError",
    "JournalWriteError",
    "append_record",
    "decode_records",
    "encode_record",
]

_MAGIC = b"\xd7DX"  # 0xD7 never occurs in an ASCII body nor starts an old record's length
_VERSION = 2
_HEAD = struct.Struct(">3sBII")  # magic, version, length, crc32(body): what the header CRC covers
_U32 = struct.Struct(">I")
_HEAD_SIZE = _HEAD.size + _U32.size
_OLD_HEAD = struct.Struct(">II")  # length, crc32(body)
_MAX_RECORD = 512 * 1024 * 1024

# Why a record at an offset does not verify, when that says it is the tail for certain.
_INCOMPLETE = "incomplete record"
_NEWER = "newer record format"


class JournalCorruptError(StoreError):
    """A journal record in the middle of a file does not verify."""


class JournalWriteError(StoreUnavailableError):
    """A write or flush failed; the journal and name claims are as they were before it."""


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


def append_record(fd: int, path: Path, record: bytes, offset: int, *, fsync: bool) -> None:
    """Write ``record`` at ``offset`` (the end of the last whole record) and flush it.

    On any failure the journal is cut back to ``offset``: after a failed flush the
    state of the written pages is unknown, so the record counts as not written.
    """
    try:
        if os.fstat(fd).st_size > offset:
            os.ftruncate(fd, offset)  # drops a torn or zero-filled tail left by a crash
        pwrite_all(fd, record, offset)
        if fsync:
            datasync(fd)
    except OSError as exc:
        raise JournalWriteError(
            f"{path}: commit not written at offset {offset}: {cause(exc)}"
            f"{_cut_back(fd, offset, fsync=fsync)}"
        ) from exc


def _cut_back(fd: int, offset: int, *, fsync: bool) -> str:
    """Truncate to ``offset`` after a failed append; say what else went wrong, if anything."""
    try:
        os.ftruncate(fd, offset)
    except OSError as exc:
        return (
            f"; cutting the journal back to {offset} bytes failed too ({cause(exc)}),"
            " so the record may still be read as committed"
        )
    if fsync:
        try:
            datasync(fd)
        except OSError as exc:
            return f"; the cut back to {offset} bytes could not be flushed ({cause(exc)})"
    return ""
