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

_TZ_NAIVE, _TZ_FIXED, _TZ_ZONE = 0, 1, 2
_DATETIME = struct.Struct("<HBBBBBIB")
_DATE = struct.Struct("<HBB")
_TIME = struct.Struct("<BBBIB")
_TIMEDELTA = struct.Struct("<iii")
_OFFSET = struct.Struct("<q")
ExtType = msgpack.ExtType


class _Unsupported(TypeError):
    """Raised inside the packer's default hook; turned into a SerializationError."""

    def __init__(self, obj: object, why: str = "") -> None:
        super().__init__(why)
        self.obj_type = type(obj)
        self.why = why


def _pack_tz(tz: dt.tzinfo | None, obj: object) -> tuple[int, bytes]:
    if tz is None:
        return _TZ_NAIVE, b""
    if isinstance(tz, dt.timezone):
        offset = tz.utcoffset(None)
        name = tz.tzname(None)
        if name == dt.timezone(offset).tzname(None):
            name = ""
        micros = (offset.days * 86400 + offset.seconds) * 1_000_000 + offset.microseconds
        return _TZ_FIXED, _OFFSET.pack(micros) + name.encode()
    if isinstance(tz, ZoneInfo):
        return _TZ_ZONE, tz.key.encode()
    raise _Unsupported(obj, f"its tzinfo {type(tz).__qualname__} is neither datetime.timezone nor ZoneInfo")


def _unpack_tz(kind: int, data: bytes) -> dt.tzinfo | None:
    if kind == _TZ_NAIVE:
        return None
    if kind == _TZ_FIXED:
        (micros,) = _OFFSET.unpack_from(data)
        offset = dt.timedelta(microseconds=micros)
        name = data[_OFFSET.size :].decode()
        return dt.timezone(offset, name) if name else dt.timezone(offset)
    if kind == _TZ_ZONE:
        try:
            return ZoneInfo(data.decode())
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {data[:64]!r}") from exc
    raise ValueError(f"unknown time zone kind {kind}")


def _enc_datetime(o: dt.datetime) -> Any:
    kind, tz = _pack_tz(o.tzinfo, o)
    head = _DATETIME.pack(o.year, o.month, o.day, o.hour, o.minute, o.second, o.microsecond,
                          o.fold | (kind << 1))
    return ExtType(EXT_DATETIME, head + tz)


def _dec_datetime(data: bytes) -> dt.datetime:
    y, mo, d, h, mi, s, us, flags = _DATETIME.unpack_from(data)
    tz = _unpack_tz(flags >> 1, data[_DATETIME.size :])
    return dt.datetime(y, mo, d, h, mi, s, us, tzinfo=tz, fold=flags & 1)


def _enc_time(o: dt.time) -> Any:
    kind, tz = _pack_tz(o.tzinfo, o)
    return ExtType(EXT_TIME, _TIME.pack(o.hour, o.minute, o.second, o.microsecond,
                                        o.fold | (kind << 1)) + tz)


def _dec_time(data: bytes) -> dt.time:
    h, mi, s, us, flags = _TIME.unpack_from(data)
    return dt.time(h, mi, s, us, tzinfo=_unpack_tz(flags >> 1, data[_TIME.size :]), fold=flags & 1)


def _enc_date(o: dt.date) -> Any:
    return ExtType(EXT_DATE, _DATE.pack(o.year, o.month, o.day))


def _dec_date(data: bytes) -> dt.date:
    if len(data) != _DATE.size:
        raise ValueError("bad date length")
    return dt.date(*_DATE.unpack(data))


def _enc_timedelta(o: dt.timedelta) -> Any:
    return ExtType(EXT_TIMEDELTA, _TIMEDELTA.pack(o.days, o.seconds, o.microseconds))


def _dec_timedelta(data: bytes) -> dt.timedelta:
    days, seconds, micros = _TIMEDELTA.unpack(data)
    return dt.timedelta(days=days, seconds=seconds, microseconds=micros)


def _enc_bigint(o: int) -> Any:
    return ExtType(EXT_BIGINT, o.to_bytes(o.bit_length() // 8 + 1, "big", signed=True))


def _dec_bigint(data: bytes) -> int:
    if not data:
        raise ValueError("empty integer")
    return int.from_bytes(data, "big", signed=True)


def _dec_uuid(data: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=data)


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

    def __init__(self, *, types: TypeRegistry | list[type] | tuple[type, ...] | None = None) -> None:
        self.types = TypeRegistry.coerce(types)
        self._encoders: dict[type, Callable[[Any], Any]] = {
            tuple: self._enc_seq(EXT_TUPLE),
            set: self._enc_seq(EXT_SET),
            frozenset: self._enc_seq(EXT_FROZENSET),
            dt.datetime: _enc_datetime,
            dt.date: _enc_date,
            dt.time: _enc_time,
            dt.timedelta: _enc_timedelta,
            Decimal: lambda o: ExtType(EXT_DECIMAL, str(o).encode("ascii")),
            uuid.UUID: lambda o: ExtType(EXT_UUID, o.bytes),
            int: _enc_bigint,
            BatchResult: lambda o: ExtType(EXT_BATCH_RESULT, self._pack(o.to_dict())),
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

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> MsgpackFormat:
        """Build from a spec stage; ``msgpack`` takes no argument."""
        if arg is not None:
            raise SpecError(f"the msgpack format takes no argument, got {arg!r}")
        return cls(**options)

    # -- encoding -------------------------------------------------------------------

    def encode(self, value: Any, ctx: SerDesContext) -> bytes:
        """Pack ``value``; unsupported types raise naming the type and operation."""
        packer = getattr(self._local, "packer", None)
        if packer is None:
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
        return msgpack.Packer(default=self._default, strict_types=True, use_bin_type=True,
                              unicode_errors="surrogatepass", autoreset=True)

    def _pack(self, value: Any) -> bytes:
        # Nested packing from inside the default hook needs its own packer: the
        # thread's packer is in the middle of a pack() call.
        return msgpack.packb(value, default=self._default, strict_types=True,  # type: ignore[no-any-return]
                             use_bin_type=True, unicode_errors="surrogatepass")

    def _enc_seq(self, code: int) -> Callable[[Any], Any]:
        return lambda o: ExtType(code, self._pack(list(o)))

    def _default(self, obj: Any) -> Any:
        enc = self._encoders.get(type(obj))
        if enc is not None:
            return enc(obj)
        cls = type(obj)
        tag = self.types.tag_of(cls)
        if tag is not None:
            if isinstance(obj, enum.Enum):
                return ExtType(EXT_ENUM, self._pack([tag, obj.name]))
            if isinstance(obj, tuple):
                return ExtType(EXT_OBJECT, self._pack([tag, list(obj)]))
            names, _ = self._field_names(cls)
            return ExtType(EXT_OBJECT, self._pack([tag, {n: getattr(obj, n) for n in names}]))
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
        if dataclasses.is_dataclass(t) or issubclass(t, enum.Enum) or (
            issubclass(t, tuple) and hasattr(t, "_fields")
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
            return self._unpack(body)
        except SerializationError:
            raise
        except Exception as exc:  # noqa: BLE001 - every decoder fault is a data fault here
            raise SerializationError(
                f"operation {ctx.operation_id!r}: corrupt msgpack payload "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    def _unpack(self, data: bytes) -> Any:
        return msgpack.unpackb(data, ext_hook=self._ext_hook, strict_map_key=False,
                               raw=False, use_list=True, unicode_errors="surrogatepass")

    def _ext_hook(self, code: int, data: bytes) -> Any:
        dec = self._decoders.get(code)
        if dec is None:
            raise ValueError(f"unknown msgpack extension type {code}")
        return dec(data)

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
        names, no_init = self._field_names(cls)
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
