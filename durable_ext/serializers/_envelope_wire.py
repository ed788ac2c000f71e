"""The bytes of the ``kms`` / ``localkey`` envelope: its header and what the AEAD binds.

Frame body (version 1)::

    suite (1) | flags (1) | key id | [encryption context] | edk length (2) | edk
    | nonce (12) | ciphertext and GCM tag (16)

``flags`` bit 0: bound to execution and operation; bit 1: an explicit encryption
context follows (otherwise :data:`DEFAULT_CONTEXT`). A key id of the form
``arn:PARTITION:kms:REGION:ACCOUNT:key/UUID`` packs into 20-40 bytes; any other is
written as length-prefixed UTF-8.

This module only packs and parses: it holds no keys and imports no cryptography.
Every read is bounds-checked and a malformed header is an
:class:`~durable_ext.errors.IntegrityError`.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Mapping

from durable_ext.errors import ConfigError, IntegrityError, SerializationError
from durable_ext.serializers.base import SerDesContext

__all__ = [
    "DEFAULT_CONTEXT",
    "FLAG_BOUND",
    "FLAG_CONTEXT",
    "KEY_BYTES",
    "NONCE_BYTES",
    "SUITE_AES256_GCM",
    "TAG_BYTES",
    "Reader",
    "binding",
    "check_context",
    "context_items",
    "encode_key_id",
    "header_end",
    "pack_context",
    "pack_header",
    "pack_str",
    "read_header",
]

#: the KMS encryption context used when none is configured
DEFAULT_CONTEXT: Mapping[str, str] = {"durable-ext": "checkpoint"}

SUITE_AES256_GCM = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
FLAG_BOUND = 1
FLAG_CONTEXT = 2
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U32X2 = struct.Struct(">II")

#: key ids of the form arn:PARTITION:kms:REGION:ACCOUNT:key/UUID pack into 20-40 bytes
_KEY_ARN = re.compile(r"arn:([a-z-]{1,32}):kms:([a-z0-9-]{1,32}):(\d{12}):key/([0-9a-f-]{36})")
_KID_RAW = 0
_KID_ARN = 1


def pack_str(s: str) -> bytes:
    """Pack ``s`` as UTF-8 after its 4-byte length."""
    b = s.encode("utf-8", "surrogatepass")
    return _U32.pack(len(b)) + b


def context_items(context: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Return an encryption context's items in the one order they are packed in."""
    return tuple(sorted(context.items()))


def pack_context(context: Mapping[str, str]) -> bytes:
    """Pack an encryption context: a count, then length-prefixed keys and values."""
    items = context_items(context)
    out = [bytes((len(items),))]
    for k, v in items:
        kb, vb = k.encode("utf-8"), v.encode("utf-8")
        out += [_U16.pack(len(kb)), kb, _U16.pack(len(vb)), vb]
    return b"".join(out)


def check_context(context: Mapping[str, str]) -> dict[str, str]:
    """Return a configured encryption context as a dict, if the header can hold it."""
    if not isinstance(context, Mapping):
        raise ConfigError("kms: encryption_context must be a mapping of str to str")
    items = dict(context)
    if len(items) > 255 or not all(
        isinstance(k, str) and isinstance(v, str) and k and len(k.encode()) < 65536
        and len(v.encode()) < 65536 for k, v in items.items()
    ):
        raise ConfigError("kms: encryption_context must map at most 255 non-empty str keys "
                          "to str values")
    return items


def encode_key_id(key_id: str) -> bytes:
    """Pack a key id: a KMS key ARN in its compact form, anything else as UTF-8."""
    m = _KEY_ARN.fullmatch(key_id)
    if m is not None and str(uuid.UUID(m.group(4))) == m.group(4):
        partition, region = m.group(1).encode(), m.group(2).encode()
        return (bytes((_KID_ARN, len(partition))) + partition + bytes((len(region),)) + region
                + int(m.group(3)).to_bytes(5, "big") + uuid.UUID(m.group(4)).bytes)
    raw = key_id.encode("utf-8")
    if len(raw) > 2048:
        raise SerializationError(f"key id is too long ({len(raw)} bytes)")
    return bytes((_KID_RAW,)) + _U16.pack(len(raw)) + raw


def pack_header(flags: int, key_id: str, context: Mapping[str, str], encrypted: bytes) -> bytes:
    """Pack the envelope header of a data key (everything before the nonce)."""
    return (bytes((SUITE_AES256_GCM, flags)) + encode_key_id(key_id)
            + (pack_context(context) if flags & FLAG_CONTEXT else b"")
            + _U16.pack(len(encrypted)) + encrypted)


def binding(flags: int, ctx: SerDesContext) -> bytes:
    """Return the associated data that binds a payload to its execution and operation."""
    if not flags & FLAG_BOUND:
        return b""
    arn = ctx.durable_execution_arn.encode("utf-8", "surrogatepass")
    op = ctx.operation_id.encode("utf-8", "surrogatepass")
    # Length-prefixed, so no two (arn, operation) pairs give the same bytes.
    return _U32X2.pack(len(arn), len(op)) + arn + op


def header_end(body: bytes, where: str) -> int:
    """Where the envelope header ends, found from its length fields alone."""
    try:
        flags = body[1]
        pos = 2
        kind = body[pos]
        if kind == _KID_RAW:
            pos += 3 + (body[pos + 1] << 8 | body[pos + 2])
        elif kind == _KID_ARN:
            pos += 2 + body[pos + 1]
            pos += 1 + body[pos] + 21
        else:
            raise IntegrityError(f"{where}: encrypted payload has an unknown key id form")
        if flags & FLAG_CONTEXT:
            n = body[pos]
            pos += 1
            for _ in range(2 * n):
                pos += 2 + (body[pos] << 8 | body[pos + 1])
        pos += 2 + (body[pos] << 8 | body[pos + 1])
    except IndexError:
        pos = len(body) + 1
    if pos > len(body):
        raise IntegrityError(f"{where}: encrypted payload is truncated")
    return pos


def read_header(header: bytes, name: str,
                where: str) -> tuple[str, dict[str, str], bytes, int]:
    """Parse an envelope header: its key id, encryption context, encrypted data key, flags."""
    r = Reader(header, where)
    suite, flags = r.u8(), r.u8()
    if suite != SUITE_AES256_GCM or flags & ~(FLAG_BOUND | FLAG_CONTEXT):
        raise IntegrityError(f"{where}: {name} payload has an unknown suite or flags")
    key_id = r.key_id()
    context = r.context() if flags & FLAG_CONTEXT else dict(DEFAULT_CONTEXT)
    edk = r.take(r.u16())
    return key_id, context, edk, flags


class Reader:
    """Bounds-checked reads from a frame body."""

    __slots__ = ("body", "pos", "where")

    def __init__(self, body: bytes, where: str) -> None:
        self.body = body
        self.pos = 0
        self.where = where

    def take(self, n: int) -> bytes:
        """Read ``n`` bytes."""
        end = self.pos + n
        if end > len(self.body):
            raise IntegrityError(f"{self.where}: encrypted payload is truncated")
        out = self.body[self.pos : end]
        self.pos = end
        return bytes(out)

    def u8(self) -> int:
        """Read one unsigned byte."""
        return self.take(1)[0]

    def u16(self) -> int:
        """Read a big-endian unsigned 16-bit integer."""
        return int(_U16.unpack(self.take(2))[0])

    def text(self, n: int) -> str:
        """Read ``n`` bytes of UTF-8."""
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise IntegrityError(f"{self.where}: encrypted payload header is malformed") from None

    def key_id(self) -> str:
        """Read a key id written by :func:`encode_key_id`."""
        kind = self.u8()
        if kind == _KID_RAW:
            return self.text(self.u16())
        if kind == _KID_ARN:
            partition = self.text(self.u8())
            region = self.text(self.u8())
            account = int.from_bytes(self.take(5), "big")
            key = uuid.UUID(bytes=self.take(16))
            return f"arn:{partition}:kms:{region}:{account:012d}:key/{key}"
        raise IntegrityError(f"{self.where}: encrypted payload has an unknown key id form")

    def context(self) -> dict[str, str]:
        """Read an encryption context written by :func:`pack_context`."""
        return {self.text(self.u16()): self.text(self.u16()) for _ in range(self.u8())}
