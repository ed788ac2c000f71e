"""The msgpack format: compact, fast and type-preserving.

Everything msgpack has natively (None, bool, int64, float, str, bytes, list, dict with
any keys) goes through its C packer untouched. UTC datetimes travel as msgpack's own
Timestamp extension, which the C unpacker turns back into datetimes by itself. Tuples,
sets and frozensets are msgpack arrays ending in a 3-byte marker, so their items are
packed by the same C call as everything else. The other types travel as extension types
with compact binary bodies.

Body layouts (the frame version):

1. the first release: containers and datetimes as self-contained extension bodies;
2. no container markers: decoded without a Python call per array;
3. container markers: decoded with a list hook that turns marked arrays back.

The encoder writes 2 or 3, whichever the value needs; every layout stays readable.
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
from durable_ext.serializers.limits import COUNTED_BODY_BYTES, DecodeBudget, current_budget
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
EXT_DATETIME_STATE = 14
EXT_MARK = 15
# UTC datetimes use msgpack's own Timestamp extension (-1).

#: the layout of payloads whose arrays carry no container markers
LAYOUT_PLAIN = 2
#: the layout of payloads with container markers (see the module docstring)
LAYOUT_MARKED = 3

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
_new_object = object.__new__


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
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_Timestamp = msgpack.Timestamp
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


_UUID = uuid.UUID
_UUID_SAFE_UNKNOWN = uuid.SafeUUID.unknown
# UUID is immutable through __setattr__; its slot descriptors are the way in.
_set_uuid_int = uuid.UUID.int.__set__  # type: ignore[attr-defined,misc]
_set_uuid_safe = uuid.UUID.is_safe.__set__  # type: ignore[attr-defined,misc]
_int_from_bytes = int.from_bytes


class _ContainerMark:
    """What a container marker decodes to, until the list hook rebuilds its array."""

    __slots__ = ("build", "kind")

    def __init__(self, kind: str, build: Callable[[list[Any]], Any]) -> None:
        self.kind = kind
        self.build = build

    def __repr__(self) -> str:
        return f"<durable_ext {self.kind} marker>"


# A tuple, set or frozenset is packed as an array of its items plus one of these
# 3-byte markers at the end: the items go through the same C pack call as the rest.
_TUPLE_END = ExtType(EXT_MARK, b"\x00")
_SET_END = ExtType(EXT_MARK, b"\x01")
_FROZENSET_END = ExtType(EXT_MARK, b"\x02")
_MARKS: dict[bytes, _ContainerMark] = {
    _TUPLE_END.data: _ContainerMark("tuple", tuple),
    _SET_END.data: _ContainerMark("set", set),
    _FROZENSET_END.data: _ContainerMark("frozenset", frozenset),
}
_Decimal = Decimal


def _container_rebuilder(open_marks: list[int]) -> Callable[[list[Any]], Any]:
    # The list hook of one marked body: called by the C unpacker for every array. It counts
    # the markers it consumes, so a marker a corrupt body left elsewhere is caught.
    def rebuild(items: list[Any]) -> Any:
        if items:
            last = items[-1]
            if type(last) is _ContainerMark:
                del items[-1]
                open_marks[0] -= 1
                return last.build(items)
        return items

    return rebuild


def _counting_hooks(
    budget: DecodeBudget, list_hook: Callable[[list[Any]], Any] | None
) -> dict[str, Any]:
    # Large bodies only: every array and map (and its slots) counts against max_items, so
    # a body of empty containers (1 byte each, ~60 bytes of Python object each) is bounded.
    left = [budget.limits.max_items]

    def spend(n: int) -> None:
        left[0] -= n + 1
        if left[0] < 0:
            raise budget.too_many_items("the msgpack body")

    def on_list(items: list[Any]) -> Any:
        spend(len(items))
        return items if list_hook is None else list_hook(items)

    def on_map(items: dict[Any, Any]) -> Any:
        spend(len(items))
        return items

    n = budget.limits.max_items
    return {"list_hook": on_list, "object_hook": on_map, "max_array_len": n, "max_map_len": n}


class _NestedState:
    """Per thread: the nesting of extension bodies being decoded, and their live bytes.

    Every body nested in an extension type is a copy and a native ``unpackb`` call (about
    40 KB of C stack): the depth and the bytes held by the bodies being decoded at once are
    what a hostile payload would inflate.
    """

    __slots__ = ("budget", "depth", "live")

    def __init__(self) -> None:
        self.depth = 0
        self.live = 0
        self.budget: DecodeBudget | None = None


class MsgpackFormat:
    """Serialize values with msgpack, preserving Python types.

    Native: None, bool, int (any size), float (nan/inf), str, bytes, list, dict (any
    keys), and UTC datetimes as msgpack Timestamps. As marked arrays: tuple, set,
    frozenset. As extension types: other datetimes (naive, fixed offset or ZoneInfo; fold
    kept), date, time, timedelta, Decimal, UUID, the SDK's BatchResult, and the
    dataclasses, NamedTuples and Enums given in ``types``.

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
    version: ClassVar[int] = LAYOUT_MARKED

    def __init__(
        self, *, types: TypeRegistry | list[type] | tuple[type, ...] | None = None
    ) -> None:
        self.types = TypeRegistry.coerce(types)
        # The hottest types (tuple, set, frozenset, datetime, UUID, Decimal) are handled
        # inline by the packer's default hook and the unpacker's extension hook: these
        # tables have the rest.
        self._encoders: dict[type, Callable[[Any], Any]] = {
            dt.date: _enc_date,
            dt.time: _enc_time,
            dt.timedelta: _enc_timedelta,
            int: _enc_bigint,
            BatchResult: lambda o: _ext(EXT_BATCH_RESULT, self._pack(o.to_dict())),
        }
        self._decoders: dict[int, Callable[[bytes], Any]] = {
            EXT_TUPLE: lambda d: tuple(self._unpack(d)),
            EXT_SET: lambda d: set(self._unpack(d)),
            EXT_FROZENSET: lambda d: frozenset(self._unpack(d)),
            EXT_DATETIME: _dec_datetime,
            EXT_DATETIME_STATE: _dec_datetime_state,
            EXT_DATE: _dec_date,
            EXT_TIME: _dec_time,
            EXT_TIMEDELTA: _dec_timedelta,
            EXT_BIGINT: _dec_bigint,
            EXT_OBJECT: self._dec_object,
            EXT_ENUM: self._dec_enum,
            EXT_BATCH_RESULT: lambda d: BatchResult.from_dict(self._unpack(d)),
        }
        self._fields: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._local = threading.local()
        self._ext_hook = self._make_ext_hook(None)
        self._plain_options: dict[str, Any] = {
            "ext_hook": self._ext_hook,
            "timestamp": 3,
            "strict_map_key": False,
            "unicode_errors": "surrogatepass",
        }

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> MsgpackFormat:
        """Build from a spec stage; ``msgpack`` takes no argument."""
        if arg is not None:
            raise SpecError(f"the msgpack format takes no argument, got {arg!r}")
        return cls(**options)

    # -- encoding -------------------------------------------------------------------

    def encode(self, value: Any, ctx: SerDesContext) -> bytes:
        """Pack ``value`` into a body that ``decode(body, version)`` reads."""
        return self.encode_versioned(value, ctx)[1]

    def encode_versioned(self, value: Any, ctx: SerDesContext) -> tuple[int, bytes]:
        """Pack ``value``; return the layout it needs and the body.

        Unsupported types raise naming the type and the operation.
        """
        try:
            packer, marked = self._local.encoder
        except AttributeError:
            packer, marked = self._local.encoder = self._new_encoder()
        marked[0] = False
        try:
            try:
                body = packer.pack(value)
            except UnicodeEncodeError:
                packer.reset()
                marked[0] = False
                body = self._new_encoder(marked, surrogates=True)[0].pack(value)
        except _Unsupported as exc:
            packer.reset()
            self._unsupported(exc, ctx)
        except (ValueError, OverflowError, UnicodeError) as exc:
            packer.reset()
            raise SerializationError(
                f"msgpack cannot serialize the result of operation {ctx.operation_id!r}: {exc}"
            ) from exc
        return (LAYOUT_MARKED if marked[0] else LAYOUT_PLAIN), body

    def _new_encoder(
        self, marked: list[bool] | None = None, *, surrogates: bool = False
    ) -> tuple[Any, list[bool]]:
        # A packer and the flag its default hook raises when it writes a container marker.
        # Strings with lone surrogates need unicode_errors, which makes msgpack copy every
        # string through an encoder: only the retry after a UnicodeEncodeError sets it.
        marked = [False] if marked is None else marked
        packer = msgpack.Packer(
            default=self._make_default(marked),
            strict_types=True,
            use_bin_type=True,
            unicode_errors="surrogatepass" if surrogates else None,
            autoreset=True,
        )
        return packer, marked

    def _pack(self, value: Any) -> bytes:
        # Packing from inside the default hook needs another packer: the thread's
        # packer is in the middle of a pack() call. Keep one per nesting depth. Nested
        # bodies are always read as marked (see _unpack), so their flags are not kept.
        local = self._local
        depth = getattr(local, "depth", 0)
        stack = getattr(local, "nested", None)
        if stack is None:
            stack = local.nested = []
            local.weights = []
        if depth == len(stack):
            stack.append(self._new_encoder()[0])
            local.weights.append(0)
        packer = stack[depth]
        weights: list[int] = local.weights
        weights[depth] = 0
        local.depth = depth + 1
        try:
            try:
                body: bytes = packer.pack(value)
            except UnicodeEncodeError:
                packer.reset()
                body = self._new_encoder(surrogates=True)[0].pack(value)
        except BaseException:
            packer.reset()
            raise
        finally:
            local.depth = depth
        # The bytes of the nested bodies a decoder holds at once along the deepest path
        # (see _unpack): refuse now what the decode limits would refuse later.
        weight = len(body) + weights[depth]
        if depth:
            weights[depth - 1] = max(weights[depth - 1], weight)
        elif weight > COUNTED_BODY_BYTES and weight > current_budget().limits.max_bytes:
            raise _Unsupported(
                value,
                f"its nested bodies need {weight} bytes at once to decode, over the decode "
                f"limit of {current_budget().limits.max_bytes} bytes (max_bytes)",
            )
        return body

    def _make_default(self, marked: list[bool]) -> Callable[[Any], Any]:
        encoders = self._encoders
        registered = self._registered_default

        def default(obj: Any) -> Any:
            # Called by the C packer for every value it has no native form for.
            t = type(obj)
            if t is tuple:
                marked[0] = True
                return [*obj, _TUPLE_END]
            if t is _datetime:
                if obj.tzinfo is not _UTC or obj.fold:
                    return _enc_datetime_state(obj)
                # msgpack's Timestamp, packed and unpacked in C (6 bytes for whole seconds)
                delta = obj - _EPOCH
                ts = _new_object(_Timestamp)
                ts.seconds = delta.days * 86400 + delta.seconds
                ts.nanoseconds = delta.microseconds * 1000
                return ts
            if t is _UUID:
                return _new_tuple(ExtType, (EXT_UUID, obj.int.to_bytes(16, "big")))
            if t is _Decimal:
                return _new_tuple(ExtType, (EXT_DECIMAL, str(obj).encode("ascii")))
            if t is set:
                marked[0] = True
                return [*obj, _SET_END]
            if t is frozenset:
                marked[0] = True
                return [*obj, _FROZENSET_END]
            enc = encoders.get(t)
            return enc(obj) if enc is not None else registered(obj)

        return default

    def _make_ext_hook(self, open_marks: list[int] | None) -> Callable[[int, bytes], Any]:
        # With open_marks (one marked body), container markers are counted as they are
        # read; without it a marker is an error.
        decoders = self._decoders

        def ext_hook(code: int, data: bytes) -> Any:
            if code == EXT_UUID:
                # UUID(bytes=...) spends most of its time checking what is known here.
                if len(data) != 16:
                    raise ValueError("bad UUID length")
                u = _new_object(_UUID)
                _set_uuid_int(u, _int_from_bytes(data, "big"))
                _set_uuid_safe(u, _UUID_SAFE_UNKNOWN)
                return u
            if code == EXT_DECIMAL:
                return _Decimal(data.decode("ascii"))
            if code == EXT_MARK:
                mark = _MARKS.get(data) if open_marks is not None else None
                if mark is None:
                    raise ValueError("container marker outside a marked payload")
                open_marks[0] += 1  # type: ignore[index]
                return mark
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
        """Unpack a body of any layout up to this version, within the decode limits."""
        try:
            if version == LAYOUT_MARKED:
                return self._unpack(body, nested=False)
            if 1 <= version < LAYOUT_MARKED:
                if len(body) <= COUNTED_BODY_BYTES:
                    return _unpackb(
                        body,
                        ext_hook=self._ext_hook,
                        timestamp=3,
                        strict_map_key=False,
                        unicode_errors="surrogatepass",
                    )
                return _unpackb(
                    body, **self._plain_options, **_counting_hooks(current_budget(), None)
                )
        except SerializationError as exc:
            # Extension hooks run without the context: say where here.
            where = f"operation {ctx.operation_id!r}"
            if where in str(exc):
                raise
            raise SerializationError(f"{where}: {exc}") from exc
        except Exception as exc:
            if isinstance(exc, ValueError) and "exceeds max_" in str(exc):
                # msgpack's own per-container bound (max_array_len / max_map_len), which
                # counted bodies set to max_items
                exc = current_budget().too_many_items("a msgpack container")
                where = f"operation {ctx.operation_id!r}"
                raise SerializationError(
                    str(exc) if where in str(exc) else f"{where}: {exc}"
                ) from None
            raise SerializationError(
                f"operation {ctx.operation_id!r}: corrupt msgpack payload "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        if version > self.version:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: msgpack payload version {version} is newer "
                f"than this library reads ({self.version}); upgrade durable-ext"
            )
        raise SerializationError(
            f"operation {ctx.operation_id!r}: msgpack payload has unknown layout {version}"
        )

    def _unpack(self, data: bytes, *, nested: bool = True) -> Any:
        # Marked bodies, and bodies nested in extension types (any layout: markers are
        # always honoured there).
        if nested:
            return self._unpack_nested(data)
        open_marks = [0]
        if len(data) <= COUNTED_BODY_BYTES:
            value = _unpackb(
                data,
                ext_hook=self._make_ext_hook(open_marks),
                list_hook=_container_rebuilder(open_marks),
                timestamp=3,
                strict_map_key=False,
                unicode_errors="surrogatepass",
            )
        else:
            value = self._unpack_counted(data, open_marks, current_budget())
        if open_marks[0]:
            raise ValueError("container marker out of place")
        return value

    def _unpack_counted(self, data: bytes, open_marks: list[int], budget: DecodeBudget) -> Any:
        return _unpackb(
            data,
            ext_hook=self._make_ext_hook(open_marks),
            timestamp=3,
            strict_map_key=False,
            unicode_errors="surrogatepass",
            **_counting_hooks(budget, _container_rebuilder(open_marks)),
        )

    def _unpack_nested(self, data: bytes) -> Any:
        # A body nested in an extension type: counted in depth and in the bytes the bodies
        # being decoded at once hold, against the current budget's limits.
        try:
            state: _NestedState = self._local.nested_state
        except AttributeError:
            state = self._local.nested_state = _NestedState()
        outermost = state.budget is None
        budget = current_budget() if state.budget is None else state.budget
        if state.depth >= budget.limits.max_depth:
            raise budget.too_deep("msgpack extension types")
        live = state.live + len(data)
        if live > budget.limits.max_bytes:
            raise budget.nested_too_large("msgpack extension types", live)
        state.budget = budget
        state.depth += 1
        state.live = live
        open_marks = [0]
        try:
            if len(data) <= COUNTED_BODY_BYTES:
                value = _unpackb(
                    data,
                    ext_hook=self._make_ext_hook(open_marks),
                    list_hook=_container_rebuilder(open_marks),
                    timestamp=3,
                    strict_map_key=False,
                    unicode_errors="surrogatepass",
                )
            else:
                value = self._unpack_counted(data, open_marks, budget)
        finally:
            state.depth -= 1
            state.live -= len(data)
            if outermost:
                state.budget = None
        if open_marks[0]:
            raise ValueError("container marker out of place")
        return value

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
