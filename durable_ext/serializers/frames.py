"""Frame headers and the ASCII armor of checkpoint strings.

A frame is ``0xC1 | len(wire) | wire | version | body``. 0xC1 is the one byte
msgpack never uses and no JSON text starts with, so a frame cannot be mistaken for
either. The armor is standard base64 (the fastest ASCII encoding CPython has in C),
unpadded for small payloads; an armored frame therefore always starts with ``w``, which
no JSON text does. Padded and unpadded armor are both read.
"""

from __future__ import annotations

import binascii

from durable_ext.errors import SerializationError

__all__ = [
    "ARMOR_PREFIX",
    "MAGIC",
    "PADDING",
    "UNPADDED_MAX",
    "armor",
    "frame",
    "is_armored",
    "read_frame",
    "repad",
    "unarmor",
]

MAGIC = 0xC1
ARMOR_PREFIX = "w"
#: what unpadded base64 of each length mod 4 lacks; "===" keeps length 1 an error
PADDING = ("", "===", "==", "=")
#: the largest frame whose armor is written without padding
UNPADDED_MAX = 4096
_HEADERS: dict[tuple[bytes, int], bytes] = {}


def frame(wire: bytes, version: int, body: bytes) -> bytes:
    """Prefix ``body`` with the header of stage ``wire`` at ``version``."""
    header = _HEADERS.get((wire, version))
    if header is None:
        header = bytes((MAGIC, len(wire))) + wire + bytes((version,))
        _HEADERS[(wire, version)] = header
    return header + body


def read_frame(data: bytes, where: str) -> tuple[bytes, int, bytes]:
    """Split a frame into ``(wire, version, body)``; raise if it is not a frame."""
    if len(data) < 4 or data[0] != MAGIC:
        raise SerializationError(f"{where}: not a durable_ext frame (bad magic byte)")
    end = 2 + data[1]
    if data[1] == 0 or len(data) <= end:
        raise SerializationError(f"{where}: truncated frame header")
    return bytes(data[2:end]), data[end], data[end + 1 :]


def armor(data: bytes) -> str:
    """Encode frame bytes as the ASCII string the SDK checkpoints (base64).

    Payloads of up to :data:`UNPADDED_MAX` bytes lose their padding, where one or two
    characters are a share worth saving; stripping a larger one would copy all of it.
    """
    text = binascii.b2a_base64(data, newline=False)
    if len(data) <= UNPADDED_MAX:
        text = text.rstrip(b"=")
    return text.decode("ascii")


def repad(data: str) -> str:
    """Restore the base64 padding :func:`armor` strips (a length of 1 mod 4 stays invalid)."""
    return data + PADDING[len(data) & 3]


def is_armored(data: str) -> bool:
    """Whether ``data`` looks like a durable_ext payload (and not JSON)."""
    return data[:1] == ARMOR_PREFIX


def unarmor(data: str, where: str) -> bytes:
    """Decode the base64 armor, strictly: any stray character is an error."""
    try:
        return binascii.a2b_base64(repad(data), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise SerializationError(f"{where}: payload is not valid base64 ({exc})") from None
