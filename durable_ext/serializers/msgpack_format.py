"""The msgpack format: compact, fast and type-preserving.

Everything msgpack has natively (None, bool, int64, float, str, bytes, list, dict with
any keys) goes through its C packer untouched; the types it lacks travel as msgpack
extension types with compact binary bodies, so the only Python work per value is one
table lookup for those types.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import struct
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aws_durable_execution_sdk_python.concurrency.models import BatchResult

from durable_ext._deps import require
from durable_ext.errors import SerializationError, SpecError
from durable_ext.serializers.base import Role, SerDesContext
from durable_ext.serializers.types import TypeRegistry

msgpack = require("msgpack", extra="msgpack", feature="the msgpack serializer")

__all__ = ["MsgpackFormat"]

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

_TZ_NAIVE, _TZ_UTC, _TZ_FIXED, _TZ_ZONE = 0, 1, 2, 3
# Times keep fold (bit 20) and the zone kind (bits 21-22) above the microseconds.
_DATE = struct.Struct("<HBB")
_TIME = struct.Struct("<BBBI")
_TIMEDELTA = struct.Struct("<iii")
_OFFSET = struct.Struct("<q")
_MICROS = 0xFFFFF
_TZ_CACHE_MAX = 256
ExtType = msgpack.ExtType
_unpackb = msgpack.unpackb
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


# A datetime is one little-endian u64 of bit fields (year 14, month 4, day 5, hour 5,
# minute 6, second 6, microsecond 20, fold 1, zone kind 2), followed by the zone for
# fixed offsets and ZoneInfo: the common naive/UTC value packs as a 10-byte fixext.
_U64 = struct.Struct("<Q")
_pack_u64 = _U64.pack
_unpack_u64 = _U64.unpack_from
_datetime = dt.datetime
_UTC = dt.UTC


def _enc_datetime(o: dt.datetime) -> Any:
    tz = o.tzinfo
    if tz is None:
        kind, extra = _TZ_NAIVE, b""
    elif tz is _UTC:
        kind, extra = _TZ_UTC, b""
    else:
        kind, extra = _pack_tz(tz, o)
    n = (
        o.year << 50
        | o.month << 46
        | o.day << 41
        | o.hour << 36
        | o.minute << 30
        | o.second << 24
        | o.microsecond << 3
        | o.fold << 2
        | kind
    )
    return _new_tuple(ExtType, (EXT_DATETIME, _pack_u64(n) + extra if extra else _pack_u64(n)))


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


def _enc_date(o: dt.date) -> Any:
    return _ext(EXT_DATE, _DATE.pack(o.year, o.month, o.day))


def _dec_date(data: bytes) -> dt.date:
    if len(data) != _DATE.size:
        raise ValueError("bad date length")
    return dt.date(*_DATE.unpack(data))


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


def _enc_uuid(o: uuid.UUID) -> Any:
    return _ext(EXT_UUID, o.int.to_bytes(16, "big"))


_UUID_SAFE_UNKNOWN = uuid.SafeUUID.unknown
_set_attr = object.__setattr__
_new_object = object.__new__


def _dec_uuid(data: bytes) -> uuid.UUID:
    # UUID(bytes=...) spends most of its time validating arguments we already know.
    if len(data) != 16:
        raise ValueError("bad UUID length")
    u = _new_object(uuid.UUID)
    _set_attr(u, "int", int.from_bytes(data, "big"))
    _set_attr(u, "is_safe", _UUID_SAFE_UNKNOWN)
    return u


def _enc_decimal(o: Decimal) -> Any:
    return _ext(EXT_DECIMAL, str(o).encode("ascii"))


def _dec_decimal(data: bytes) -> Decimal:
    return Decimal(data.decode("ascii"))


class MsgpackFormat:
    """Serialize values with msgpack, preserving Python types.

    Native: None, bool, int (any size), float (nan/inf), str, bytes, list, dict (any
    keys). As extension types: tuple, set, frozenset, datetime (naive, fixed offset or
    ZoneInfo; fold kept), date, time, timedelta, Decimal, UUID, the SDK's BatchResult,
    and the dataclasses, NamedTuples and Enums given in ``types``.

    Example:
        >>> import durable_ext
        >>> s = durable_ext.serdes("msgpack")
        >>> from aws_durable_execution_sdk_python.serdes import SerDesContext
        >>> s.deserialize(s.serialize((1, {2: b"x"}), SerDesContext()), SerDesContext())
        (1, {2: b'x'})

    """

    name: ClassVar[str] = "msgpack"
    role: ClassVar[Role] = "format"
    wire: ClassVar[bytes] = b"m"
    version: ClassVar[int] = 1

    def __init__(
        self, *, types: TypeRegistry | list[type] | tuple[type, ...] | None = None
    ) -> None:
        self.types = TypeRegistry.coerce(types)
        self._encoders: dict[type, Callable[[Any], Any]] = {
            tuple: self._enc_seq(EXT_TUPLE),
            set: self._enc_seq(EXT_SET),
            frozenset: self._enc_seq(EXT_FROZENSET),
            dt.datetime: _enc_datetime,
            dt.date: _enc_date,
            dt.time: _enc_time,
            dt.timedelta: _enc_timedelta,
            Decimal: _enc_decimal,
            uuid.UUID: _enc_uuid,
            int: _enc_bigint,
            BatchResult: lambda o: _ext(EXT_BATCH_RESULT, self._pack(o.to_dict())),
        }
        self._decoders: dict[int, Callable[[bytes], Any]] = {
            EXT_TUPLE: lambda d: tuple(self._unpack(d)),
            EXT_SET: lambda d: set(self._unpack(d)),
            EXT_FROZENSET: lambda d: frozenset(self._unpack(d)),
            EXT_DATETIME: _dec_datetime,
            EXT_DATE: _dec_date,
            EXT_TIME: _dec_time,
            EXT_TIMEDELTA: _dec_timedelta,
            EXT_DECIMAL: _dec_decimal,
            EXT_UUID: _dec_uuid,
            EXT_BIGINT: _dec_bigint,
            EXT_OBJECT: self._dec_object,
            EXT_ENUM: self._dec_enum,
            EXT_BATCH_RESULT: lambda d: BatchResult.from_dict(self._unpack(d)),
        }
        self._fields: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._local = threading.local()
        self._default = self._make_default()
        self._ext_hook = self._make_ext_hook()

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> MsgpackFormat:
        """Build from a spec stage; ``msgpack`` takes no argument."""
        if arg is not None:
            raise SpecError(f"the msgpack format takes no argument, got {arg!r}")
        return cls(**options)

    # -- encoding -------------------------------------------------------------------

    def encode(self, value: Any, ctx: SerDesContext) -> bytes:
        """Pack ``value``; unsupported types raise naming the type and operation."""
        try:
            packer = self._local.packer
        except AttributeError:
            packer = self._local.packer = self._new_packer()
        try:
            return packer.pack(value)  # type: ignore[no-any-return]
        except _Unsupported as exc:
            packer.reset()
            self._unsupported(exc, ctx)
        except (ValueError, OverflowError, UnicodeError) as exc:
            packer.reset()
            raise SerializationError(
                f"msgpack cannot serialize the result of operation {ctx.operation_id!r}: {exc}"
            ) from exc

    def _new_packer(self) -> Any:
        return msgpack.Packer(
            default=self._default,
            strict_types=True,
            use_bin_type=True,
            unicode_errors="surrogatepass",
            autoreset=True,
        )

    def _pack(self, value: Any) -> bytes:
        # Packing from inside the default hook needs another packer: the thread's
        # packer is in the middle of a pack() call. Keep one per nesting depth.
        local = self._local
        depth = getattr(local, "depth", 0)
        stack = getattr(local, "nested", None)
        if stack is None:
            stack = local.nested = []
        if depth == len(stack):
            stack.append(self._new_packer())
        packer = stack[depth]
        local.depth = depth + 1
        try:
            return packer.pack(value)  # type: ignore[no-any-return]
        except BaseException:
            packer.reset()
            raise
        finally:
            local.depth = depth

    def _enc_seq(self, code: int) -> Callable[[Any], Any]:
        pack = self._pack
        return lambda o: _ext(code, pack(list(o)))

    def _make_default(self) -> Callable[[Any], Any]:
        encoders = self._encoders
        registered = self._registered_default

        def default(obj: Any) -> Any:
            # Called by the C packer for every value it has no native form for.
            enc = encoders.get(type(obj))
            return enc(obj) if enc is not None else registered(obj)

        return default

    def _make_ext_hook(self) -> Callable[[int, bytes], Any]:
        decoders = self._decoders

        def ext_hook(code: int, data: bytes) -> Any:
            dec = decoders.get(code)
            if dec is None:
                raise ValueError(f"unknown msgpack extension type {code}")
            return dec(data)

        return ext_hook

    def _registered_default(self, obj: Any) -> Any:
        cls = type(obj)
        tag = self.types.tag_of(cls)
        if tag is not None:
            if isinstance(obj, enum.Enum):
                return _ext(EXT_ENUM, self._pack([tag, obj.name]))
            if isinstance(obj, tuple):
                return _ext(EXT_OBJECT, self._pack([tag, list(obj)]))
            names, _ = self._field_names(cls)
            return _ext(EXT_OBJECT, self._pack([tag, {n: getattr(obj, n) for n in names}]))
        raise _Unsupported(obj)

    def _field_names(self, cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
        known = self._fields.get(cls)
        if known is None:
            fields = dataclasses.fields(cls)
            known = (tuple(f.name for f in fields), tuple(f.name for f in fields if not f.init))
            self._fields[cls] = known
        return known

    def _unsupported(self, exc: _Unsupported, ctx: SerDesContext) -> NoReturn:
        t = exc.obj_type
        why = f" ({exc.why})" if exc.why else ""
        hint = ""
        if (
            dataclasses.is_dataclass(t)
            or issubclass(t, enum.Enum)
            or (issubclass(t, tuple) and hasattr(t, "_fields"))
        ):
            hint = "; register the class: durable_ext.serdes('msgpack', types=[...])"
        raise SerializationError(
            f"msgpack cannot serialize a value of type {t.__module__}.{t.__qualname__} "
            f"in operation {ctx.operation_id!r}{why}{hint}"
        ) from None

    # -- decoding -------------------------------------------------------------------

    def decode(self, body: bytes, version: int, ctx: SerDesContext) -> Any:
        """Unpack a body written by any version up to this one."""
        if version > self.version:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: msgpack payload version {version} is newer "
                f"than this library reads ({self.version}); upgrade durable-ext"
            )
        try:
            return _unpackb(
                body, ext_hook=self._ext_hook, strict_map_key=False, unicode_errors="surrogatepass"
            )
        except SerializationError as exc:
            # Extension hooks run without the context: say where here.
            where = f"operation {ctx.operation_id!r}"
            if where in str(exc):
                raise
            raise SerializationError(f"{where}: {exc}") from exc
        except Exception as exc:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: corrupt msgpack payload "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    def _unpack(self, data: bytes) -> Any:
        return _unpackb(
            data, ext_hook=self._ext_hook, strict_map_key=False, unicode_errors="surrogatepass"
        )

    def _registered(self, tag: object) -> type:
        cls = self.types.class_of(tag) if isinstance(tag, str) else None
        if cls is None:
            raise SerializationError(
                f"payload holds an object of unregistered type tag {str(tag)[:80]!r}; "
                "register its class with durable_ext.serdes('msgpack', types=[...])"
            )
        return cls

    def _dec_object(self, data: bytes) -> Any:
        tag, fields = self._unpack(data)
        cls = self._registered(tag)
        if isinstance(fields, list):
            return cls(*fields)
        _, no_init = self._field_names(cls)
        init = {k: v for k, v in fields.items() if k not in no_init}
        obj = cls(**init)
        for k in no_init:
            if k in fields:
                object.__setattr__(obj, k, fields[k])
        return obj

    def _dec_enum(self, data: bytes) -> Any:
        tag, name = self._unpack(data)
        cls = self._registered(tag)
        return cls[name]  # type: ignore[index]
