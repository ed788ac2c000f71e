r"""Frame headers and the two armors of checkpoint strings.

A frame is ``0xC1 | len(wire) | wire | version | body``. 0xC1 is the one byte
msgpack never uses and no JSON text starts with, so a frame cannot be mistaken for
either. The SDK checkpoints strings, and measures them by their length, so each payload
gets the shorter of two armors:

* **text**: one character per byte (``bytes.decode("latin-1")``), so a payload is as long
  as its frames; chosen when at most a fifth of the bytes are not printable ASCII, which
  is what text-heavy payloads (prose, HTML, documents held as strings) look like. It
  starts with ``"\xc1"``;
* **base64** otherwise (binary data, encrypted or compressed bodies), unpadded for small
  payloads; it starts with ``"w"``. Padded and unpadded base64 are both read.

No JSON text starts with either character, and both directions of both armors run in C.
"""

from __future__ import annotations

import binascii

from durable_ext.errors import SerializationError

__all__ = [
    "ARMOR_PREFIX",
    "BUILTIN_NAMES",
    "BUILTIN_WIRES",
    "MAGIC",
    "PADDING",
    "TEXT_PREFIX",
    "UNPADDED_MAX",
    "armor",
    "armor_counting",
    "frame",
    "is_armored",
    "read_frame",
    "repad",
    "stage_name_of",
    "unarmor",
]

MAGIC = 0xC1
ARMOR_PREFIX = "w"
TEXT_PREFIX = chr(MAGIC)
"""The first character of a text-armored payload: its frame's magic byte as latin-1."""
_PRINTABLE = bytes(range(0x20, 0x7F))
#: the bytes the text-armor test counts at a time
_SCAN_SLICE = 8192
#: what unpadded base64 of each length mod 4 lacks; "===" keeps length 1 an error
PADDING = ("", "===", "==", "=")
#: the largest frame whose armor is written without padding
UNPADDED_MAX = 4096
_HEADERS: dict[tuple[bytes, int], bytes] = {}
_b2a = binascii.b2a_base64

#: the frame id of each built-in stage -> its registry name; a third-party stage's id is its
#: ``wire`` attribute (by convention its name). Each stage has exactly one id.
BUILTIN_WIRES: dict[bytes, str] = {
    b"m": "msgpack",
    b"j": "json",
    b"z": "zstd",
    b"l": "zlib",
    b"k": "kms",
    b"K": "localkey",
    b"F": "fields",
    b"s": "s3",
    b"p": "pickle",
    b"M": "model",
}
BUILTIN_NAMES = frozenset(BUILTIN_WIRES.values())


def stage_name_of(wire: bytes) -> str | None:
    """Return the registry name frames of id ``wire`` are read by, None for no stage.

    A built-in stage has one short id (``s3`` is no id of the S3 stage); a third-party
    stage's id is its name.
    """
    name = BUILTIN_WIRES.get(wire)
    if name is not None:
        return name
    if not wire.isascii():
        return None
    name = wire.decode("ascii")
    return None if name in BUILTIN_NAMES else name


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


def armor(data: bytes, binary: bool = False) -> str:
    """Encode frame bytes as the string the SDK checkpoints: text or base64 armor.

    Text armor keeps a payload as long as its bytes; it is chosen when no more than a
    fifth of them are outside printable ASCII, so the bytes it costs where strings are
    stored escaped (JSON) stay below base64's. ``binary`` says the payload is binary by
    its type (a ``bytes`` value, which the SDK's JSON writes in base64 too, or a
    compressed or encrypted frame): base64 without the test. Base64 payloads of up to
    :data:`UNPADDED_MAX` bytes lose their padding, where one or two characters are a
    share worth saving; stripping a larger one would copy all of it.
    """
    if binary:
        printable = False
    elif len(data) <= _SCAN_SLICE:
        printable = len(data.translate(None, _PRINTABLE)) * 5 <= len(data)
    else:
        printable = _text_test(data, None)[0]
    if printable:
        return data.decode("latin-1")
    text = _b2a(data, newline=False)
    if len(data) <= UNPADDED_MAX:
        text = text.rstrip(b"=")
    return text.decode("ascii")


def armor_counting(data: bytes, byte: bytes) -> tuple[str, int]:
    """Return :func:`armor` of ``data`` and how often ``byte`` occurs in it.

    ``byte`` is one byte outside printable ASCII (msgpack's float marker, say): it is
    counted in what the text test keeps of each slice, at most a fifth of a text-heavy
    payload, rather than in all of it; and in all of it only past a slice that settled
    the payload as binary.
    """
    printable, count = _text_test(data, byte)
    return (data.decode("latin-1") if printable else armor(data, binary=True)), count


def _text_test(data: bytes, byte: bytes | None) -> tuple[bool, int]:
    # At most a fifth outside printable ASCII? Counted a slice at a time, so binary data
    # (random bytes are 63% outside) is settled after about a third of it; ``byte`` is
    # counted on the way.
    allowed = len(data) // 5
    outside = count = 0
    for start in range(0, len(data), _SCAN_SLICE):
        kept = data[start:start + _SCAN_SLICE].translate(None, _PRINTABLE)
        outside += len(kept)
        if byte is not None:
            count += kept.count(byte)
        if outside > allowed:
            if byte is not None:
                count += data.count(byte, start + _SCAN_SLICE)
            return False, count
    return True, count


def repad(data: str) -> str:
    """Restore the base64 padding :func:`armor` strips (a length of 1 mod 4 stays invalid)."""
    return data + PADDING[len(data) & 3]


def is_armored(data: str) -> bool:
    """Whether ``data`` looks like a durable_ext payload (and not JSON)."""
    return data[:1] in (ARMOR_PREFIX, TEXT_PREFIX)


def unarmor(data: str, where: str) -> bytes:
    """Decode either armor, strictly: any stray character is an error."""
    if data[:1] == TEXT_PREFIX:
        try:
            return data.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise SerializationError(
                f"{where}: text-armored payload holds a character above U+00FF at {exc.start}"
            ) from None
    try:
        return binascii.a2b_base64(repad(data), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise SerializationError(f"{where}: payload is not valid base64 ({exc})") from None
