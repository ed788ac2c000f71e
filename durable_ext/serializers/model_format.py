"""The model format: pydantic v2 models, dataclasses and attrs classes over msgpack.

Registered classes travel as one msgpack extension type holding ``[tag, data]`` and
are validated when decoded, so a step that returns an ``Order`` gets an ``Order`` back
on replay. ``data`` is a field map whose values keep their exact Python types or, for
classes registered with ``json=True``, pydantic's own JSON. Everything else the msgpack
format carries still works, through the same packer and the same extension mechanism.

Schema drift between deploys follows pydantic's rules: a stored field the class no
longer has is dropped (unless the model forbids extra fields), a field the class
gained takes its default; anything else (a new required field, a value of the wrong
type) raises :class:`~durable_ext.errors.SerializationError` naming the model and field.
Dataclasses are validated with pydantic's ``TypeAdapter`` where their annotations
allow it; attrs classes are built through their ``__init__`` (so their validators and
converters run), with the same rules for missing and extra fields.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, NoReturn, TypeVar, overload

from durable_ext._deps import require
from durable_ext.errors import ConfigError, SerializationError, SpecError
from durable_ext.serializers._field_marks import Deferred, RawObject, open_count
from durable_ext.serializers._msgpack_ext import _Unsupported
from durable_ext.serializers.base import Role, SerDesContext
from durable_ext.serializers.msgpack_format import LAYOUT_MARKED, MsgpackFormat
from durable_ext.serializers.types import TypeRegistry

pydantic = require("pydantic", extra="models", feature="the model serializer")
msgpack = require("msgpack", extra="models", feature="the model serializer")

__all__ = ["ModelFormat", "ModelRegistry"]

T = TypeVar("T", bound=type)

#: Extension type of a registered model. Part of the wire format: never renumber. It is
#: far above the msgpack format's own codes, so that format can grow without a clash.
EXT_MODEL = 64


class _SchemaMismatch(SerializationError):
    """A stored object does not fit its class any more; the message names model and field.

    Raised inside msgpack's extension hook, which has no context; ``decode`` adds
    the operation.
    """


def _describe(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_attrs(cls: type) -> bool:
    return getattr(cls, "__attrs_attrs__", None) is not None


# -- adapters: one per kind of class --------------------------------------------------


class _Adapter:
    """Turns instances of one class into stored field data and back."""

    def __init__(self, cls: type, tag: str) -> None:
        self.cls = cls
        self.tag = tag

    def dump(self, obj: Any) -> dict[str, Any] | bytes:
        raise NotImplementedError

    def load(self, data: Any) -> Any:
        raise NotImplementedError

    def _mismatch(self, problems: Iterable[str]) -> NoReturn:
        raise _SchemaMismatch(
            f"stored {self.tag!r} does not fit model {_describe(self.cls)}: "
            + "; ".join(problems)
        )


class _PydanticAdapter(_Adapter):
    """Pydantic models and dataclasses pydantic can describe, via its Rust core.

    In ``json`` mode the field data is pydantic's own JSON (bytes), which is faster
    to write and validate but has JSON's limits; otherwise it is a field dict whose
    values keep their exact Python types through msgpack.
    """

    def __init__(self, cls: type, tag: str, *, json: bool = False) -> None:
        super().__init__(cls, tag)
        self._ta = pydantic.TypeAdapter(cls)
        self.json = json

    def dump(self, obj: Any) -> dict[str, Any] | bytes:
        # by_alias: validation reads aliases by default; round_trip: Json[...] fields
        # are dumped as the text they are validated from.
        if self.json:
            return self._ta.dump_json(obj, by_alias=True, round_trip=True)  # type: ignore[no-any-return]
        return self._ta.dump_python(obj, by_alias=True, round_trip=True)  # type: ignore[no-any-return]

    def load(self, data: Any) -> Any:
        # Follow the stored form, not today's registration: both decode.
        validate = self._ta.validate_json if isinstance(data, bytes) else self._ta.validate_python
        try:
            return validate(data)
        except pydantic.ValidationError as exc:
            self._mismatch(
                f"field {_loc(e['loc'])!r}: {e['msg']} ({e['type']})"
                for e in exc.errors(include_url=False, include_input=False)[:10]
            )


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str  # attribute name, also the key in the stored dict
    init_name: str | None  # keyword in __init__, or None if not an init argument
    required: bool


class _InitAdapter(_Adapter):
    """attrs classes, and dataclasses pydantic cannot describe: built via ``__init__``."""

    def __init__(self, cls: type, tag: str, fields: list[_Field]) -> None:
        super().__init__(cls, tag)
        self.fields = fields
        self._names = [f.name for f in fields]

    def dump(self, obj: Any) -> dict[str, Any]:
        return {n: getattr(obj, n) for n in self._names}

    def load(self, data: Any) -> Any:
        if not isinstance(data, dict):
            self._mismatch([f"expected a field map, got {type(data).__name__}"])
        missing = [f.name for f in self.fields if f.required and f.name not in data]
        if missing:
            self._mismatch(f"field {n!r}: required, not in the stored data" for n in missing)
        kwargs = {f.init_name: data[f.name] for f in self.fields
                  if f.init_name is not None and f.name in data}
        try:
            obj = self.cls(**kwargs)
        except (TypeError, ValueError) as exc:  # validators and converters reject a value
            self._mismatch([f"{type(exc).__name__}: {exc}"])
        for f in self.fields:
            if f.init_name is None and f.name in data:
                object.__setattr__(obj, f.name, data[f.name])
        return obj


def _attrs_fields(cls: type) -> list[_Field]:
    attrs = importlib.import_module("attrs")
    out = []
    for a in attrs.fields(cls):
        init_name = (a.alias or a.name.lstrip("_")) if a.init else None
        out.append(_Field(a.name, init_name, a.init and a.default is attrs.NOTHING))
    return out


def _dataclass_fields(cls: type) -> list[_Field]:
    missing = dataclasses.MISSING
    return [
        _Field(f.name, f.name if f.init else None,
               f.init and f.default is missing and f.default_factory is missing)
        for f in dataclasses.fields(cls)
    ]


def _adapter(cls: type, tag: str, json: bool) -> _Adapter:
    if issubclass(cls, pydantic.BaseModel):
        return _PydanticAdapter(cls, tag, json=json)
    try:
        if _is_attrs(cls):
            raise pydantic.PydanticSchemaGenerationError("attrs class")
        return _PydanticAdapter(cls, tag, json=json)
    except pydantic.PydanticSchemaGenerationError:
        if json:
            raise ConfigError(
                f"{_describe(cls)}: json=True needs a class pydantic can describe"
            ) from None
        # attrs classes, and annotations pydantic cannot validate: build via __init__.
        fields = _attrs_fields(cls) if _is_attrs(cls) else _dataclass_fields(cls)
        return _InitAdapter(cls, tag, fields)


# -- the registry -----------------------------------------------------------------------


class ModelRegistry:
    """Classes the model format may carry, each under a stable tag.

    Pydantic models, dataclasses and attrs classes are carried as validated models;
    Enums and NamedTuples are passed on to the msgpack format's
    :class:`~durable_ext.serializers.types.TypeRegistry`. A payload can only ever
    produce a class registered here: decoding never imports anything.

    Example:
        >>> from pydantic import BaseModel
        >>> models = ModelRegistry()
        >>> @models.register
        ... class Order(BaseModel):
        ...     id: str
        >>> @models.register(tag="Line.v2")
        ... class Line(BaseModel):
        ...     sku: str
        >>> models.tag_of(Order), models.tag_of(Line)
        ('Order', 'Line.v2')

    """

    def __init__(self, classes: Iterable[type] = ()) -> None:
        self.types = TypeRegistry()
        self._by_class: dict[type, str] = {}
        self._adapters: dict[str, _Adapter] = {}
        self._json: dict[str, bool] = {}
        self._classes: dict[str, type] = {}
        self._lock = threading.Lock()
        for cls in classes:
            self.register(cls)

    @classmethod
    def coerce(cls, types: ModelRegistry | TypeRegistry | Iterable[type] | None) -> ModelRegistry:
        """Accept a registry (of either kind), an iterable of classes, or ``None``."""
        if isinstance(types, ModelRegistry):
            return types
        reg = cls()
        if isinstance(types, TypeRegistry):
            for c in types:
                reg.register(c, tag=types.tag_of(c))
        else:
            for c in types or ():
                reg.register(c)
        return reg

    @overload
    def register(self, cls: T, /, *, tag: str | None = None, json: bool = False) -> T: ...

    @overload
    def register(
        self, cls: None = None, /, *, tag: str | None = None, json: bool = False
    ) -> Callable[[T], T]: ...

    def register(
        self, cls: T | None = None, /, *, tag: str | None = None, json: bool = False
    ) -> T | Callable[[T], T]:
        """Register ``cls`` under ``tag`` (default: its qualified name).

        Use it as ``@models.register``, ``@models.register(tag="Order.v1")`` or
        ``models.register(Order)``. Registering the same class again is a no-op.

        Args:
            cls: a pydantic model, dataclass or attrs class (or an Enum or NamedTuple).
            tag: the stable name written into payloads; keep it when the class moves.
            json: store a pydantic-describable class as pydantic's own JSON: faster for
                large models, but with JSON's limits (``Any`` fields come back as JSON
                types, non-UTF-8 bytes need ``ser_json_bytes="base64"``, NaN and
                infinity follow ``ser_json_inf_nan``). Payloads of either form decode
                whatever the current setting.

        """
        if cls is None:
            return lambda c: self.register(c, tag=tag, json=json)
        if not isinstance(cls, type):
            raise ConfigError(f"only classes can be registered, got {cls!r}")
        tag = tag or cls.__qualname__
        if issubclass(cls, enum.Enum) or (issubclass(cls, tuple) and hasattr(cls, "_fields")):
            self._check_free(tag, cls, self._classes)
            self.types.register(cls, tag)
            return cls
        if not (issubclass(cls, pydantic.BaseModel) or dataclasses.is_dataclass(cls)
                or _is_attrs(cls)):
            raise ConfigError(
                f"{_describe(cls)} is not a pydantic model, dataclass, attrs class, Enum or "
                "NamedTuple; use the 'pickle' format for arbitrary objects"
            )
        # json mode is checked now, so a class it cannot serve fails at import time.
        adapter = _adapter(cls, tag, json) if json else None
        with self._lock:
            known = self._by_class.get(cls)
            if known is not None and known != tag:
                raise ConfigError(f"{_describe(cls)} is already registered as {known!r}")
            self._check_free(tag, cls, self._classes)
            owner = self.types.class_of(tag)
            if owner is not None:
                raise ConfigError(f"type tag {tag!r} already names {_describe(owner)}")
            self._by_class[cls] = tag
            self._classes[tag] = cls
            self._json[tag] = json
            self._adapters.pop(tag, None)  # registered again with another json setting
            if adapter is not None:
                self._adapters[tag] = adapter
        return cls

    @staticmethod
    def _check_free(tag: str, cls: type, classes: dict[str, type]) -> None:
        known = classes.get(tag)
        if known is not None and known is not cls:
            raise ConfigError(
                f"type tag {tag!r} already names {_describe(known)}; "
                f"pass tag= to register {_describe(cls)}"
            )

    def tag_of(self, cls: type) -> str | None:
        """Return the tag of ``cls``, or ``None`` if it was not registered."""
        return self._by_class.get(cls) or self.types.tag_of(cls)

    def class_of(self, tag: str) -> type | None:
        """Return the class registered under ``tag``, or ``None``."""
        return self._classes.get(tag) or self.types.class_of(tag)

    def adapter_for_tag(self, tag: str) -> _Adapter | None:
        """Return the adapter of model ``tag``, built on first use (schemas cost time)."""
        adapter = self._adapters.get(tag)
        if adapter is None:
            cls = self._classes.get(tag)
            if cls is None:
                return None
            adapter = self._adapters[tag] = _adapter(cls, tag, self._json[tag])
        return adapter

    def adapter_for_class(self, cls: type) -> _Adapter | None:
        """Return the adapter of ``cls``, or ``None`` if it is not a registered model."""
        tag = self._by_class.get(cls)
        return None if tag is None else self.adapter_for_tag(tag)

    def __contains__(self, cls: object) -> bool:
        return cls in self._by_class or cls in self.types

    def __len__(self) -> int:
        return len(self._by_class) + len(self.types)

    def __iter__(self) -> Iterator[type]:
        yield from self._by_class
        yield from self.types


# -- the format -----------------------------------------------------------------------


class ModelFormat(MsgpackFormat):
    """The msgpack format plus validated pydantic models, dataclasses and attrs classes.

    Example:
        >>> import durable_ext
        >>> from pydantic import BaseModel
        >>> from aws_durable_execution_sdk_python.serdes import SerDesContext
        >>> models = ModelRegistry()
        >>> @models.register
        ... class Order(BaseModel):
        ...     id: str
        ...     qty: int = 1
        >>> s = durable_ext.serdes("model+zstd", types=models)
        >>> s.deserialize(s.serialize([Order(id="a")], SerDesContext()), SerDesContext())
        [Order(id='a', qty=1)]

    """

    name: ClassVar[str] = "model"
    role: ClassVar[Role] = "format"
    wire: ClassVar[bytes] = b"M"
    version: ClassVar[int] = LAYOUT_MARKED

    def __init__(
        self, *, types: ModelRegistry | TypeRegistry | Iterable[type] | None = None
    ) -> None:
        self.models = ModelRegistry.coerce(types)
        super().__init__(types=self.models.types)
        # how many model field dicts the current thread is packing (see _registered_default)
        self._in_model = threading.local()
        self._decoders[EXT_MODEL] = self._dec_model

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> ModelFormat:
        """Build from a spec stage; ``model`` takes no argument (classes go in ``types=``)."""
        if arg is not None:
            raise SpecError(f"the model format takes no argument, got {arg!r}; pass types=...")
        return cls(**options)

    def _registered_default(self, obj: Any) -> Any:
        # The msgpack format's hook for every type it has no built-in encoder for.
        adapter = self.models.adapter_for_class(type(obj))
        if adapter is None:
            # Inside a model's field dict, validation on decode turns a value back into
            # its Enum member, so the Enum class itself need not be registered.
            in_model: int = getattr(self._in_model, "depth", 0)
            if in_model and isinstance(obj, enum.Enum) and self.types.tag_of(type(obj)) is None:
                return obj.value
            return super()._registered_default(obj)
        local = self._in_model
        local.depth = getattr(local, "depth", 0) + 1
        try:
            try:
                fields = adapter.dump(obj)
            except Exception as exc:  # pydantic serializers raise many kinds on bad values
                raise _Unsupported(obj, f"{type(exc).__name__}: {exc}") from exc
            return msgpack.ExtType(EXT_MODEL, self._pack([adapter.tag, fields]))
        except _Unsupported as exc:
            exc.why = exc.why or f"found in a field of model {adapter.tag!r}"
            raise
        finally:
            local.depth -= 1

    def object_data(self, obj: Any) -> tuple[str, Any, Any, Callable[[Any], Any]] | None:
        """Models are selected into by their stored field data (see the base class)."""
        adapter = self.models.adapter_for_class(type(obj))
        if adapter is None:
            return super().object_data(obj)
        try:
            fields = adapter.dump(obj)
        except Exception as exc:
            raise SerializationError(
                f"the model format cannot dump {adapter.tag!r} ({type(exc).__name__}: {exc})"
            ) from exc
        if not isinstance(fields, dict):
            return None  # json=True models are one JSON text: nothing to select inside
        tag = adapter.tag

        def pack(data: Any) -> Any:
            local = self._in_model
            local.depth = getattr(local, "depth", 0) + 1
            try:
                return msgpack.ExtType(EXT_MODEL, self._pack([tag, data]))
            finally:
                local.depth -= 1

        keymap = _aliases(adapter.cls)
        return "map", fields, keymap, lambda f: RawObject(f, pack, "map", keymap)

    def _unsupported(self, exc: _Unsupported, ctx: SerDesContext) -> NoReturn:
        t = exc.obj_type
        if not exc.why and (issubclass(t, pydantic.BaseModel) or dataclasses.is_dataclass(t)
                            or _is_attrs(t)):
            raise SerializationError(
                f"the model format cannot serialize {_describe(t)} in operation "
                f"{ctx.operation_id!r}: it is not registered; register it with "
                "ModelRegistry.register and pass the registry as types="
            ) from None
        super()._unsupported(exc, ctx)

    def _dec_model(self, data: bytes) -> Any:
        before = open_count()
        tag, fields = self._unpack(data)
        adapter = self.models.adapter_for_tag(tag) if isinstance(tag, str) else None
        if adapter is None:
            raise SerializationError(
                f"payload holds a model of unregistered tag {str(tag)[:80]!r}; register its "
                "class in the ModelRegistry passed as types="
            )
        if open_count() != before:
            # Encrypted fields inside: validated once the fields stage has put them back.
            return Deferred("object", tag, fields, adapter.load, _aliases(adapter.cls))
        return adapter.load(fields)


_ALIASES: dict[type, dict[str, str] | None] = {}


def _aliases(cls: type) -> dict[str, str] | None:
    """Field name -> the key a model dumps it under (by alias), where they differ."""
    try:
        return _ALIASES[cls]
    except KeyError:
        pass
    fields = getattr(cls, "model_fields", None) if issubclass(cls, pydantic.BaseModel) else None
    out = {}
    for name, info in (fields or {}).items():
        key = info.serialization_alias or info.alias
        if key and key != name:
            out[name] = key
    if len(_ALIASES) > 4096:
        _ALIASES.clear()
    _ALIASES[cls] = out or None
    return _ALIASES[cls]
