"""The shortest checkpoint string for a value: never longer than the SDK's JSON, nearly.

The SDK measures a checkpoint by its length and stores an over-limit result empty (to be
rebuilt by replay), so a serializer that is longer than the SDK's own JSON on some values
changes behaviour on them. Two choices keep a pipeline's string within
:data:`SLACK` characters of the SDK's JSON for every value that JSON carries:

* **compression is kept only when it shortens the string**, not merely the bytes: a
  compressed body is binary (base64, 4/3 of its bytes) where the text it replaced may
  have gone out as text armor (one character per byte);
* **float-heavy values may go out as JSON.** msgpack spends 9 bytes on every float, JSON
  as few as 3 characters (``0.5``). When a body holds floats whose JSON is short enough
  for the difference to matter, the pipeline also renders the value as compact JSON and
  keeps it when it is shorter and reads back to exactly the same value (every pipeline
  reads the SDK's JSON). Values JSON cannot carry exactly (tuples, bytes, non-string
  keys, datetimes...) never take this path.

Everything else already is within the bound: msgpack spends at most the characters JSON
does on every other value, and text armor keeps text-heavy payloads one character per
byte (see :mod:`durable_ext.serializers.frames`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

from durable_ext.serializers.base import SerDesContext
from durable_ext.serializers.frames import armor

__all__ = [
    "COMPACT",
    "FLOAT64",
    "MEASURED_MAX",
    "SDK_SPACED",
    "SLACK",
    "armor_within_bound",
    "shorter_as_json",
    "string_json_floor",
]

SLACK = 16
"""Most characters a pipeline's string may exceed the SDK's JSON of the same value by."""
FLOAT64 = b"\xcb"
"""msgpack's float64 marker: a body holding none has no float to lose characters on."""
_SAMPLE = 64
#: the frame header, in base64 characters: the part of the excess that is not floats
_HEADER_CHARS = 6
#: armored payloads up to this long are measured against the SDK's JSON when in doubt
MEASURED_MAX = 512
#: the most characters the SDK's JSON of a float is shorter than its 9 msgpack bytes by
#: ("0.0"). On any other value JSON carries, a body of at most MEASURED_MAX bytes is no
#: longer than the JSON: ints, true/false/null and fixstr headers take fewer characters
#: than JSON spends on them, a str8 header as many as the quotes, and the brackets of the
#: container around a str16 pay for its third header byte.
_FLOAT_GAIN = 6
_unpack_float = struct.Struct(">d").unpack_from
#: JSON text as the SDK spaces it, and compact; NaN and Infinity are refused (not JSON).
#: Encoders made once: json.dumps with options builds one per call.
SDK_SPACED = json.JSONEncoder(allow_nan=False).encode
COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: compact JSON as the SDK's encoders write it, NaN and Infinity included
_COMPACT_NAN = json.JSONEncoder(separators=(",", ":")).encode


def _json_saving(body: bytes, chars_per_byte: float, count: int) -> float:
    """Estimate how many characters JSON would save on the body's floats.

    What armor spends on each float's 9 bytes, against its JSON text and a separator:
    summed over every float when there are few, over :data:`_SAMPLE` spread across the
    body otherwise. A marker byte inside a string is counted too: the estimate errs
    towards trying JSON, which the length comparison then settles.
    """
    spent = 9 * chars_per_byte
    saved = 0.0
    seen = 0
    step = 0 if count <= _SAMPLE else len(body) // _SAMPLE
    at = body.find(FLOAT64)
    while at >= 0 and seen < _SAMPLE and at + 9 <= len(body):
        saved += spent - (len(repr(_unpack_float(body, at + 1)[0])) + 1)
        seen += 1
        at = body.find(FLOAT64, max(at + 9, seen * step))
    return saved / seen * count if seen else 0.0


def armor_within_bound(
    body: bytes, frame_bytes: bytes, count: int, text: str | None = None
) -> str | None:
    """Return an armor of a short frame with few floats that keeps the bound, else None.

    Such a body's JSON has at least ``len(body)`` less :data:`_FLOAT_GAIN` a float
    characters, so its text armor (the frame, one character a byte) is within the bound,
    and base64 is when no longer than that floor allows; no JSON is made. None for long
    frames and float-heavy ones: their JSON may be shorter, and is measured. ``count``
    is the body's float markers; ``text`` the armor already made (of a compressed chain,
    say), made here if None.
    """
    size = len(frame_bytes)
    # the fewest characters the body's JSON takes, plus the slack: what an armor may take
    limit = len(body) - _FLOAT_GAIN * count + SLACK
    if size > MEASURED_MAX or size > limit:
        return None
    if text is None:
        if (size * 4 + 2) // 3 <= limit:
            return armor(frame_bytes)  # base64 (unpadded) fits, so either armor does
        return frame_bytes.decode("latin-1")
    if len(text) <= limit:
        return text
    plain = frame_bytes.decode("latin-1")
    return plain if len(plain) < len(text) else text


def shorter_as_json(
    value: Any,
    version: int,
    body: bytes,
    text: str,
    frame_bytes: bytes,
    encode_format: Callable[[Any, SerDesContext], tuple[int, bytes]],
    ctx: SerDesContext,
    count: int,
) -> str:
    """Return the value's compact JSON when it is shorter than ``text`` and exact.

    ``version`` and ``body`` are the format's encoding of ``value``, ``count`` the float
    markers in the body; exact means the JSON read back encodes to the same body, so it
    is the same value to every reader.
    """
    short = armor_within_bound(body, frame_bytes, count, text)
    if short is not None:
        return short
    ratio = len(text) / len(frame_bytes)
    excess = _json_saving(body, ratio, count) + _HEADER_CHARS
    over_bound = False
    if excess <= SLACK:
        # In a short payload, base64's third on every other byte (whose JSON is otherwise
        # at least as long as its msgpack) may still take the armor past the bound. Then it
        # goes out in text armor instead, one character per byte: within the bound by the
        # estimate (exact for the few floats a short payload holds), and nothing encoded
        # twice. In a long one the SDK's spacing outgrows the header and the few floats.
        if len(text) > MEASURED_MAX or excess + max(ratio - 1.0, 0.0) * (
            len(body) - 9 * count
        ) <= SLACK:
            return text
        plain = frame_bytes.decode("latin-1")
        return plain if len(plain) < len(text) else text
    try:
        candidate = COMPACT(value)
    except ValueError:
        # NaN and Infinity are not JSON: readers other than Python's refuse them, so they
        # are written only where the SDK would write them too and the armor is too long.
        try:
            over_bound = over_bound or len(text) > len(_COMPACT_NAN(value)) + SLACK
            if not over_bound:
                return text
            candidate = _COMPACT_NAN(value)
        except (TypeError, ValueError, RecursionError):
            return text
    except (TypeError, RecursionError):
        return text  # not a JSON value
    if len(candidate) >= len(text):
        return text
    back = json.loads(candidate)
    # A two-key {"t", "v"} object reads back as the SDK's type envelope.
    if isinstance(back, dict) and set(back) == {"t", "v"}:
        return text
    try:
        same = encode_format(back, ctx) == (version, body)
    except Exception:
        return text
    return candidate if same else text


def string_json_floor(value: str, beat: int | None = None) -> int:
    r"""Return the fewest characters the SDK's JSON of ``value`` can take, unencoded.

    Its quotes; six characters (``\uXXXX``) for every character outside ASCII, of which
    there are at least a third of the bytes UTF-8 adds (1 to 3 for each); and two (``\"``)
    for every double quote (JSON held as a string is full of them). ``isascii`` is a flag
    of the string; the other two parts take a pass over it each, in C. With ``beat`` the
    floor is returned as soon as it passes ``beat``, before the passes it does not need.
    """
    floor = len(value) + 2
    if beat is not None and floor > beat:
        return floor
    if not value.isascii():
        extra = len(value.encode("utf-8", "surrogatepass")) - len(value)
        floor += 5 * ((extra + 2) // 3)
        if beat is not None and floor > beat:
            return floor
    return floor + value.count('"')


def shorter_armor(plain: bytes, layered: bytes, opaque: bool = False) -> str:
    """Armor whichever of an uncompressed and a compressed frame chain is shorter.

    ``opaque`` says the compressed chain is binary by construction (base64, untested).
    """
    compressed = armor(layered, opaque)
    if len(compressed) < len(plain):
        return compressed  # at least 1 char per byte either way: no need to armor plain
    uncompressed = armor(plain)
    return compressed if len(compressed) < len(uncompressed) else uncompressed
