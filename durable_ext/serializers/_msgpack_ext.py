"""The msgpack format's extension types: their codes, and the bodies not built inline.

The format's packer and unpacker hooks encode the hottest types inline; the others are
here: time zones (inside datetimes and times), datetimes other than UTC (the layout
written today and the one the first release wrote), times, dates, timedeltas and integers
beyond 64 bits. Each encoder returns the ``ExtType`` the packer writes; each decoder takes
an extension body and raises ``ValueError`` on a malformed one.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from durable_ext._deps import require

msgpack = require("msgpack", extra="msgpack", feature="the msgpack serializer")

# Extension type codes. They are part of the wire format: never renumber.
EXT_TUPLE = 1
EXT_SET = 2
EXT_FROZENSET = 3
EXT_DATETIME = 4
EXT_DATE = 5
EXT_TIME = 6
EXT_TIMEDELTA = 7
EXT_DECIMAL = 8
EXT_UUID = 9
EXT_BIGINT = 10
EXT_OBJECT = 11
EXT_ENUM = 12
EXT_BATCH_RESULT = 13
EXT_DATETIME_STATE = 14
EXT_MARK = 15
EXT_SEALED = 16
EXT_REDACTED = 17
# UTC datetimes use msgpack's own Timestamp extension (-1).

_TZ_NAIVE, _TZ_UTC, _TZ_FIXED, _TZ_ZONE = 0, 1, 2, 3
# Times keep fold (bit 20) and the zone kind (bits 21-22) above the microseconds.
_DATE = struct.Struct("<HBB")
_TIME = struct.Struct("<BBBI")
_TIMEDELTA = struct.Struct("<iii")
_OFFSET = struct.Struct("<q")
_MICROS = 0xFFFFF
_TZ_CACHE_MAX = 256
ExtType = msgpack.ExtType
_new_tuple = tuple.__new__


def _ext(code: int, data: bytes) -> Any:
    # ExtType's constructor re-validates in Python; our codes and bodies are known good.
    return _new_tuple(ExtType, (code, data))


class _Unsupported(TypeError):
    """Raised inside the packer's default hook; turned into a SerializationError."""

    def __init__(self, obj: object, why: str = "") -> None:
        super().__init__(why)
        self.obj_type = type(obj)
        self.why = why


_zone_encoded: dict[str, tuple[int, bytes]] = {}
_tz_decoded: dict[tuple[int, bytes], dt.tzinfo] = {}


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(cache) >= _TZ_CACHE_MAX:
        cache.clear()  # a bound, not an LRU: distinct zones in one process are few
    cache[key] = value
    return value


def _pack_tz(tz: dt.tzinfo | None, obj: object) -> tuple[int, bytes]:
    if tz is None:
        return _TZ_NAIVE, b""
    if tz is dt.UTC:
        return _TZ_UTC, b""
    if isinstance(tz, ZoneInfo):
        known = _zone_encoded.get(tz.key)
        return (
            known
            if known is not None
            else _remember(_zone_encoded, tz.key, (_TZ_ZONE, tz.key.encode()))
        )
    if isinstance(tz, dt.timezone):
        # Not cached: timezones with equal offsets compare equal whatever their names.
        offset = tz.utcoffset(None)
        name = tz.tzname(None)
        if name == dt.timezone(offset).tzname(None):
            name = ""
        micros = (offset.days * 86400 + offset.seconds) * 1_000_000 + offset.microseconds
        return _TZ_FIXED, _OFFSET.pack(micros) + name.encode()
    raise _Unsupported(
        obj, f"its tzinfo {type(tz).__qualname__} is neither datetime.timezone nor ZoneInfo"
    )


def _unpack_tz(kind: int, data: bytes) -> dt.tzinfo | None:
    if not data:
        if kind == _TZ_NAIVE:
            return None
        if kind == _TZ_UTC:
            return dt.UTC
    key = (kind, data)
    try:
        return _tz_decoded[key]
    except KeyError:
        pass
    tz: dt.tzinfo
    if kind == _TZ_FIXED:
        (micros,) = _OFFSET.unpack_from(data)
        offset = dt.timedelta(microseconds=micros)
        name = data[_OFFSET.size :].decode()
        tz = dt.timezone(offset, name) if name else dt.timezone(offset)
    elif kind == _TZ_ZONE:
        try:
            tz = ZoneInfo(data.decode())
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {data[:64]!r}") from exc
    else:
        raise ValueError(f"bad time zone field (kind {kind}, {len(data)} bytes)")
    return _remember(_tz_decoded, key, tz)  # type: ignore[no-any-return]


# Layout 1 wrote datetimes as one little-endian u64 of bit fields (year 14, month 4,
# day 5, hour 5, minute 6, second 6, microsecond 20, fold 1, zone kind 2) followed by the
# zone; still read, no longer written: the bit arithmetic cost more than the packing.
_U64 = struct.Struct("<Q")
_unpack_u64 = _U64.unpack_from
_datetime = dt.datetime
_UTC = dt.UTC
_DATETIME_STATE_SIZE = 10
#: datetime(state, tzinfo): the pickle constructor, which checks nothing but the month
_datetime_from_state: Callable[[bytes, dt.tzinfo | None], dt.datetime]
_datetime_from_state = dt.datetime  # type: ignore[assignment]


def _enc_datetime_state(o: dt.datetime) -> Any:
    # Datetimes other than UTC (which the default hook sends as msgpack Timestamps): the
    # pickle state, 10 bytes made in C with fold in the month byte; the zone follows.
    state: bytes = o.__reduce_ex__(4)[1][0]  # type: ignore[assignment]
    tz = o.tzinfo
    if tz is None:
        return _ext(EXT_DATETIME_STATE, state)
    kind, extra = _pack_tz(tz, o)
    return _ext(EXT_DATETIME_STATE, state + bytes((kind,)) + extra)


def _dec_datetime_state(data: bytes) -> dt.datetime:
    if len(data) == _DATETIME_STATE_SIZE:
        tz = None
    elif len(data) > _DATETIME_STATE_SIZE:
        tz = _unpack_tz(data[_DATETIME_STATE_SIZE], data[_DATETIME_STATE_SIZE + 1 :])
    else:
        raise ValueError("bad datetime length")
    # Built from the state unchecked, so replace() runs the constructor's range checks.
    return _datetime_from_state(data[:_DATETIME_STATE_SIZE], tz).replace()


def _dec_datetime(data: bytes) -> dt.datetime:
    (n,) = _unpack_u64(data)
    kind = n & 3
    tz = _UTC if kind == _TZ_UTC and len(data) == 8 else _unpack_tz(kind, data[8:])
    return _datetime(
        n >> 50,
        n >> 46 & 15,
        n >> 41 & 31,
        n >> 36 & 31,
        n >> 30 & 63,
        n >> 24 & 63,
        n >> 3 & _MICROS,
        tz,
        fold=n >> 2 & 1,
    )


def _enc_time(o: dt.time) -> Any:
    kind, extra = _pack_tz(o.tzinfo, o)
    flags = (o.fold | kind << 1) << 20
    return _ext(EXT_TIME, _TIME.pack(o.hour, o.minute, o.second, o.microsecond | flags) + extra)


def _dec_time(data: bytes) -> dt.time:
    h, mi, s, us = _TIME.unpack_from(data)
    flags = us >> 20
    tz = _unpack_tz(flags >> 1, data[_TIME.size :])
    return dt.time(h, mi, s, us & _MICROS, tz, fold=flags & 1)


def _enc_timedelta(o: dt.timedelta) -> Any:
    return _ext(EXT_TIMEDELTA, _TIMEDELTA.pack(o.days, o.seconds, o.microseconds))


def _dec_timedelta(data: bytes) -> dt.timedelta:
    days, seconds, micros = _TIMEDELTA.unpack(data)
    return dt.timedelta(days=days, seconds=seconds, microseconds=micros)


def _enc_bigint(o: int) -> Any:
    return _ext(EXT_BIGINT, o.to_bytes(o.bit_length() // 8 + 1, "big", signed=True))


def _dec_bigint(data: bytes) -> int:
    if not data:
        raise ValueError("empty integer")
    return int.from_bytes(data, "big", signed=True)

