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
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar, NoReturn

from aws_durable_execution_sdk_python.concurrency.models import BatchResult

from durable_ext._deps import require
from durable_ext.errors import ConfigError, SerializationError, SpecError
from durable_ext.serializers._field_marks import (
    OPEN,
    SEALED,
    Deferred,
    OpenFields,
    RawObject,
    Redacted,
    open_count,
)
from durable_ext.serializers._msgpack_bounds import _counting_hooks, _NestedState
from durable_ext.serializers._msgpack_ext import (
    _DATE,
    _UTC,
    EXT_BATCH_RESULT,
    EXT_BIGINT,
    EXT_DATE,
    EXT_DATETIME,
    EXT_DATETIME_STATE,
    EXT_DECIMAL,
    EXT_ENUM,
    EXT_FROZENSET,
    EXT_MARK,
    EXT_OBJECT,
    EXT_REDACTED,
    EXT_SEALED,
    EXT_SET,
    EXT_TIME,
    EXT_TIMEDELTA,
    EXT_TUPLE,
    EXT_UUID,
    ExtType,
    _datetime,
    _dec_bigint,
    _dec_datetime,
    _dec_datetime_state,
    _dec_time,
    _dec_timedelta,
    _enc_bigint,
    _enc_datetime_state,
    _enc_time,
    _enc_timedelta,
    _ext,
    _new_tuple,
    _Unsupported,
)
from durable_ext.serializers._msgpack_marks import (
    _FROZENSET_END,
    _MARKS,
    _SET_END,
    _TUPLE_END,
    _container_rebuilder,
)
from durable_ext.serializers.base import Role, SerDesContext
from durable_ext.serializers.limits import (
    COUNTED_BODY_BYTES,
    CURRENT_BUDGET,
    DecodeBudget,
    counting_budget,
    current_budget,
    decoding,
    has_budget,
)
from durable_ext.serializers.types import TypeRegistry, Unregistered

msgpack = require("msgpack", extra="msgpack", feature="the msgpack serializer")

__all__ = [
    "EXT_BATCH_RESULT",
    "EXT_BIGINT",
    "EXT_DATE",
    "EXT_DATETIME",
    "EXT_DATETIME_STATE",
    "EXT_DECIMAL",
    "EXT_ENUM",
    "EXT_FROZENSET",
    "EXT_MARK",
    "EXT_OBJECT",
    "EXT_REDACTED",
    "EXT_SEALED",
    "EXT_SET",
    "EXT_TIME",
    "EXT_TIMEDELTA",
    "EXT_TUPLE",
    "EXT_UUID",
    "LAYOUT_MARKED",
    "LAYOUT_PLAIN",
    "MsgpackFormat",
]

#: the layout of payloads whose arrays carry no container markers
LAYOUT_PLAIN = 2
#: the layout of payloads with container markers (see the module docstring)
LAYOUT_MARKED = 3

# Module-level aliases for the encode and decode paths below: the packer's default hook
# and the unpacker's extension hook run once per value and handle the hottest types inline.
_unpackb = msgpack.unpackb
_new_object = object.__new__
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_Timestamp = msgpack.Timestamp
_UUID = uuid.UUID
_UUID_SAFE_UNKNOWN = uuid.SafeUUID.unknown
# UUID is immutable through __setattr__; its slot descriptors are the way in.
_set_uuid_int = uuid.UUID.int.__set__  # type: ignore[attr-defined,misc]
_set_uuid_safe = uuid.UUID.is_safe.__set__  # type: ignore[attr-defined,misc]
_int_from_bytes = int.from_bytes
_Decimal = Decimal
_date = dt.date
_pack_date = _DATE.pack
_DATE_SIZE = _DATE.size
_unpack_date = _DATE.unpack
# Bound once: Python 3.11 compiles a method call on an imported name as an attribute
# load (a new bound method per call), not as LOAD_METHOD.
_mark_of = _MARKS.get
_current_budget = CURRENT_BUDGET.get
_open_fields = OPEN.get


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
    #: a value JSON carries exactly may be written as the plain JSON it reads back from
    json_exact: ClassVar[bool] = True
    version: ClassVar[int] = LAYOUT_MARKED

    def __init__(
        self, *, types: TypeRegistry | list[type] | tuple[type, ...] | None = None,
        unregistered: str = "error",
    ) -> None:
        if unregistered not in ("error", "keep"):
            raise ConfigError(f"unregistered must be 'error' or 'keep', got {unregistered!r}")
        self.types = TypeRegistry.coerce(types)
        #: objects of unregistered classes: an error, or kept as Unregistered (for tools)
        self._keep_unregistered = unregistered == "keep"
        # The hottest types (tuple, set, frozenset, datetime, date, UUID, Decimal) are handled
        # inline by the packer's default hook and the unpacker's extension hook: these
        # tables have the rest.
        self._encoders: dict[type, Callable[[Any], Any]] = {
            dt.time: _enc_time,
            dt.timedelta: _enc_timedelta,
            int: _enc_bigint,
            BatchResult: lambda o: _ext(EXT_BATCH_RESULT, self._pack(o.to_dict())),
            Redacted: lambda o: _ext(EXT_REDACTED, o.body()),
            RawObject: lambda o: o.pack(o.fields),
        }
        self._decoders: dict[int, Callable[[bytes], Any]] = {
            EXT_TUPLE: lambda d: tuple(self._unpack(d)),
            EXT_SET: lambda d: set(self._unpack(d)),
            EXT_FROZENSET: lambda d: frozenset(self._unpack(d)),
            EXT_DATETIME: _dec_datetime,
            EXT_DATETIME_STATE: _dec_datetime_state,
            EXT_TIME: _dec_time,
            EXT_TIMEDELTA: _dec_timedelta,
            EXT_BIGINT: _dec_bigint,
            EXT_OBJECT: self._dec_object,
            EXT_ENUM: self._dec_enum,
            EXT_BATCH_RESULT: self._dec_batch,
            EXT_SEALED: _dec_sealed,
            EXT_REDACTED: Redacted.from_body,
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
        version, body, _ = self.encode_layout(value, ctx)
        return version, body

    def encode_layout(self, value: Any, ctx: SerDesContext) -> tuple[int, bytes, bool]:
        """Pack ``value``; return the layout, the body, and whether JSON may carry it.

        The flag is False when the packer met a type JSON lacks (tuples, sets, datetimes,
        UUIDs, Decimals, registered classes...): the pipeline then never tries the value
        as JSON. True says only that no such type was met (bytes and non-string keys are
        native to msgpack and go unnoticed).
        """
        try:
            packer, flags = self._local.encoder
        except AttributeError:
            packer, flags = self._local.encoder = self._new_encoder()
        flags[0] = flags[1] = False
        try:
            try:
                body = packer.pack(value)
            except UnicodeEncodeError:
                packer.reset()
                flags[0] = flags[1] = False
                body = self._new_encoder(flags, surrogates=True)[0].pack(value)
        except _Unsupported as exc:
            packer.reset()
            self._unsupported(exc, ctx)
        except (ValueError, OverflowError, UnicodeError) as exc:
            packer.reset()
            raise SerializationError(
                f"msgpack cannot serialize the result of operation {ctx.operation_id!r}: {exc}"
            ) from exc
        if flags[0]:
            return LAYOUT_MARKED, body, False
        # bytes are native to msgpack, so the hook never sees them: a bare bytes value (a
        # common result) is told by its type
        return LAYOUT_PLAIN, body, not flags[1] and type(value) is not bytes

    def _new_encoder(
        self, flags: list[bool] | None = None, *, surrogates: bool = False
    ) -> tuple[Any, list[bool]]:
        # A packer and the flags its default hook raises: [0] when it writes a container
        # marker, [1] when it packs another type JSON lacks. Strings with lone surrogates
        # need unicode_errors, which makes msgpack copy every string through an encoder:
        # only the retry after a UnicodeEncodeError sets it.
        flags = [False, False] if flags is None else flags
        packer = msgpack.Packer(
            default=self._make_default(flags),
            strict_types=True,
            use_bin_type=True,
            unicode_errors="surrogatepass" if surrogates else None,
            autoreset=True,
        )
        return packer, flags

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

    def _make_default(self, flags: list[bool]) -> Callable[[Any], Any]:
        encoders = self._encoders
        registered = self._registered_default

        def default(obj: Any) -> Any:
            # Called by the C packer for every value it has no native form for.
            t = type(obj)
            if t is tuple:
                flags[0] = True
                return [*obj, _TUPLE_END]
            if t is _datetime:
                flags[1] = True
                if obj.tzinfo is not _UTC or obj.fold:
                    return _enc_datetime_state(obj)
                # msgpack's Timestamp, packed and unpacked in C (6 bytes for whole seconds)
                delta = obj - _EPOCH
                ts = _new_object(_Timestamp)
                ts.seconds = delta.days * 86400 + delta.seconds
                ts.nanoseconds = delta.microseconds * 1000
                return ts
            if t is _UUID:
                flags[1] = True
                return _new_tuple(ExtType, (EXT_UUID, obj.int.to_bytes(16, "big")))
            if t is _Decimal:
                flags[1] = True
                return _new_tuple(ExtType, (EXT_DECIMAL, str(obj).encode("ascii")))
            if t is _date:
                flags[1] = True
                return _new_tuple(ExtType, (EXT_DATE, _pack_date(obj.year, obj.month, obj.day)))
            if t is set:
                flags[0] = True
                return [*obj, _SET_END]
            if t is frozenset:
                flags[0] = True
                return [*obj, _FROZENSET_END]
            if t is not int:
                flags[1] = True  # JSON carries ints of any size, and nothing else met here
            enc = encoders.get(t)
            return enc(obj) if enc is not None else registered(obj)

        return default

    def _make_ext_hook(
        self, open_marks: list[int] | None, fields_state: OpenFields | None = None
    ) -> Callable[[int, bytes], Any]:
        # With open_marks (one marked body), container markers are counted as they are
        # read; without it a marker is an error. fields_state is the fields frame being
        # decoded, if any, looked up once per body by the caller, not once per mark.
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
                mark = _mark_of(data) if open_marks is not None else None
                if mark is None:
                    raise ValueError("container marker outside a marked payload")
                open_marks[0] += 1  # type: ignore[index]
                return mark
            if code == EXT_DATE:
                if len(data) != _DATE_SIZE:
                    raise ValueError("bad date length")
                return _date(*_unpack_date(data))
            if code == EXT_SEALED:
                if fields_state is None or data:
                    return _dec_sealed(data)
                fields_state.count += 1
                return SEALED
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

    # -- field protection (see durable_ext.serializers.fields) -------------------------

    #: what an encrypted field is packed as (a native msgpack value: no hook call)
    sealed_mark: ClassVar[Any] = ExtType(EXT_SEALED, b"")

    def object_data(self, obj: Any) -> tuple[str, Any, Any, Callable[[Any], Any]] | None:
        """Return how an object is stored, for selecting fields inside it, or ``None``.

        The result is ``(kind, fields, keymap, rebuild)``: the field data this format
        packs for ``obj``, the stored key of each field name that differs from it, and
        a function turning changed field data into something this format packs as it
        would pack ``obj``.
        """
        t = type(obj)
        if t is BatchResult:
            return ("batch", obj.to_dict(), None,
                    lambda f: RawObject(f, lambda d: _ext(EXT_BATCH_RESULT, self._pack(d)),
                                        "batch"))
        tag = self.types.tag_of(t)
        if tag is None or isinstance(obj, enum.Enum):
            return None

        def pack(fields: Any) -> Any:
            return _ext(EXT_OBJECT, self._pack([tag, fields]))

        if isinstance(obj, tuple):
            keymap = {n: i for i, n in enumerate(t._fields)}
            return "seq", list(obj), keymap, lambda f: RawObject(f, pack, "seq", keymap)
        names, _ = self._field_names(t)
        return "map", {n: getattr(obj, n) for n in names}, None, lambda f: RawObject(f, pack)

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
        if len(body) <= COUNTED_BODY_BYTES and LAYOUT_PLAIN <= version <= LAYOUT_MARKED:
            budget = _current_budget()
            if budget is None or budget.used <= COUNTED_BODY_BYTES:
                # The hot path, as _decode would take it: a body this small bounds what
                # it decodes to by its bytes, so it is unpacked without counting hooks.
                return self.decode_whole(body, version, ctx, _open_fields())
        if len(body) > COUNTED_BODY_BYTES and not has_budget():
            # Called outside a pipeline: the bodies nested in this one share one count.
            with decoding(DecodeBudget()):
                return self._decode(body, version, ctx)
        return self._decode(body, version, ctx)

    def decode_whole(
        self, body: bytes, version: int, ctx: SerDesContext,
        fields_state: OpenFields | None = None,
    ) -> Any:
        """Unpack a body that is a whole payload (a bare frame of this format).

        The pipeline's fast path calls this. Nothing of a decode in progress applies:
        the payload has a budget of its own (unused, so a body of up to
        ``COUNTED_BODY_BYTES`` is not counted), and no fields frame encloses it
        (``fields_state`` is the one :meth:`decode` found). That spares the two
        context-variable reads of :meth:`decode`.
        """
        if len(body) <= COUNTED_BODY_BYTES:
            try:
                if version == LAYOUT_PLAIN:
                    return _unpackb(body, ext_hook=self._ext_hook, timestamp=3,
                                    strict_map_key=False, unicode_errors="surrogatepass")
                if version == LAYOUT_MARKED:
                    return self._unpack_marked(body, None, fields_state)
            except Exception as exc:
                raise self._decode_error(exc, ctx) from None
        return self.decode(body, version, ctx)

    def _decode(self, body: bytes, version: int, ctx: SerDesContext) -> Any:
        try:
            if version == LAYOUT_MARKED:
                return self._unpack(body, nested=False)
            if 1 <= version < LAYOUT_MARKED:
                budget = counting_budget(len(body))
                if budget is None:
                    return _unpackb(body, **self._plain_options)
                return _unpackb(body, **self._plain_options, **_counting_hooks(budget, None))
        except Exception as exc:
            raise self._decode_error(exc, ctx) from None
        if version > self.version:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: msgpack payload version {version} is newer "
                f"than this library reads ({self.version}); upgrade durable-ext"
            )
        raise SerializationError(
            f"operation {ctx.operation_id!r}: msgpack payload has unknown layout {version}"
        )

    @staticmethod
    def _decode_error(exc: Exception, ctx: SerDesContext) -> Exception:
        """Return the error to raise for ``exc`` from unpacking a body, saying where."""
        where = f"operation {ctx.operation_id!r}"
        if isinstance(exc, SerializationError):
            # Extension hooks run without the context: say where here.
            if where in str(exc):
                return exc
            return _caused(SerializationError(f"{where}: {exc}"), exc)
        if isinstance(exc, ValueError) and "exceeds max_" in str(exc):
            # msgpack's own per-container bound (max_array_len / max_map_len), which
            # counted bodies set to max_items
            err = current_budget().too_many_items("a msgpack container")
            return SerializationError(str(err) if where in str(err) else f"{where}: {err}")
        return _caused(
            SerializationError(f"{where}: corrupt msgpack payload ({type(exc).__name__}: {exc})"),
            exc,
        )

    def _unpack(self, data: bytes, *, nested: bool = True) -> Any:
        # Marked bodies, and bodies nested in extension types (any layout: markers are
        # always honoured there).
        if nested:
            return self._unpack_nested(data)
        return self._unpack_marked(data, counting_budget(len(data)), _open_fields())

    def _unpack_marked(
        self, data: bytes, budget: DecodeBudget | None, fields_state: OpenFields | None
    ) -> Any:
        # Counted against ``budget`` when there is one; every marker must close an array.
        # ``fields_state`` is the fields frame the body is read in, if any.
        open_marks = [0]
        if budget is None:
            value = _unpackb(
                data,
                ext_hook=self._make_ext_hook(open_marks, fields_state),
                list_hook=_container_rebuilder(open_marks),
                timestamp=3,
                strict_map_key=False,
                unicode_errors="surrogatepass",
            )
        else:
            value = _unpackb(
                data,
                ext_hook=self._make_ext_hook(open_marks, fields_state),
                timestamp=3,
                strict_map_key=False,
                unicode_errors="surrogatepass",
                **_counting_hooks(budget, _container_rebuilder(open_marks)),
            )
        if open_marks[0]:
            raise ValueError("container marker out of place")
        return value

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
        try:
            return self._unpack_marked(data, counting_budget(len(data)), _open_fields())
        finally:
            state.depth -= 1
            state.live -= len(data)
            if outermost:
                state.budget = None

    def _unknown(self, tag: object) -> bool:
        return not isinstance(tag, str) or self.types.class_of(tag) is None

    def _registered(self, tag: object) -> type:
        cls = self.types.class_of(tag) if isinstance(tag, str) else None
        if cls is None:
            raise SerializationError(
                f"payload holds an object of unregistered type tag {str(tag)[:80]!r}; "
                "register its class with durable_ext.serdes('msgpack', types=[...])"
            )
        return cls

    def _dec_object(self, data: bytes) -> Any:
        before = open_count()
        tag, fields = self._unpack(data)
        if self._keep_unregistered and self._unknown(tag):
            return Unregistered(str(tag), fields)
        cls = self._registered(tag)
        if open_count() != before:
            # Encrypted fields inside: built once the fields stage has put them back.
            keymap = ({n: i for i, n in enumerate(cls._fields)}  # type: ignore[attr-defined]
                      if isinstance(fields, list) else None)
            return Deferred("object", tag, fields, lambda f: self._build_object(cls, f), keymap)
        return self._build_object(cls, fields)

    def _dec_batch(self, data: bytes) -> Any:
        before = open_count()
        fields = self._unpack(data)
        if open_count() != before:
            return Deferred("batch", "BatchResult", fields, BatchResult.from_dict)
        return BatchResult.from_dict(fields)

    def _build_object(self, cls: type, fields: Any) -> Any:
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
        if self._keep_unregistered and self._unknown(tag):
            return Unregistered(str(tag), name, "enum")
        cls = self._registered(tag)
        return cls[name]  # type: ignore[index]


def _caused(err: Exception, cause: Exception) -> Exception:
    err.__cause__ = cause
    return err


def _dec_sealed(data: bytes) -> Any:
    # Only a fields frame may hold encrypted fields: it counts them, and puts every one back.
    state = OPEN.get()
    if state is None or data:
        raise ValueError("an encrypted field outside a fields frame (or a malformed one)")
    state.count += 1
    return SEALED
