"""The floor the msgpack pipeline is measured against.

Raw ``msgpack.packb``/``unpackb`` with the minimal extension hooks for the types the
payload families use, plus the same base64 armor: what any msgpack serializer must pay
before doing anything of its own.
"""

from __future__ import annotations

import binascii
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import msgpack


def _default(o: Any) -> Any:
    t = type(o)
    if t is tuple:
        return msgpack.ExtType(1, msgpack.packb(list(o), default=_default, strict_types=True))
    if t is dt.datetime:
        return msgpack.ExtType(4, o.isoformat().encode())
    if t is dt.date:
        return msgpack.ExtType(5, o.isoformat().encode())
    if t is Decimal:
        return msgpack.ExtType(8, str(o).encode())
    if t is uuid.UUID:
        return msgpack.ExtType(9, o.bytes)
    raise TypeError(t)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == 1:
        return tuple(msgpack.unpackb(data, ext_hook=_ext_hook, strict_map_key=False))
    if code == 4:
        return dt.datetime.fromisoformat(data.decode())
    if code == 5:
        return dt.date.fromisoformat(data.decode())
    if code == 8:
        return Decimal(data.decode())
    if code == 9:
        return uuid.UUID(bytes=data)
    raise ValueError(code)


def serialize(value: Any) -> str:
    packed = msgpack.packb(value, default=_default, strict_types=True, use_bin_type=True)
    return binascii.b2a_base64(packed, newline=False).decode("ascii")


def deserialize(text: str) -> Any:
    return msgpack.unpackb(binascii.a2b_base64(text), ext_hook=_ext_hook, strict_map_key=False)
