"""Fields marked for encryption or redaction on model and dataclass classes.

A field is marked by :class:`~durable_ext.serializers.fields.FieldMark` in its
``Annotated[...]`` metadata, or by ``{"durable_ext": "encrypt" | "redact"}`` in a pydantic
``Field(json_schema_extra=...)`` or a dataclass ``field(metadata=...)``. A class's marks
become patterns relative to an instance of it, reaching into the models its fields hold
(``list[Card]``, ``dict[str, Card]``, ``Card | None``), by the keys the format stores.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from durable_ext.errors import ConfigError
from durable_ext.serializers._field_paths import ANY_INDEX, ANY_KEY, Pattern

__all__ = ["METADATA_KEY", "FieldMark", "Mode", "marks_of"]

Mode = Literal["encrypt", "redact"]
#: the key of the marker in ``json_schema_extra`` (pydantic) and ``metadata`` (dataclasses)
METADATA_KEY = "durable_ext"


@dataclasses.dataclass(frozen=True, slots=True)
class FieldMark:
    """A marker for ``Annotated[...]`` fields of models and dataclasses."""

    mode: Mode

    def __post_init__(self) -> None:
        if self.mode not in ("encrypt", "redact"):
            raise ConfigError(f"fields: a field mark is 'encrypt' or 'redact', not {self.mode!r}")


def _mode_of(meta: Iterable[Any], extra: Any) -> Mode | None:
    for m in meta:
        if isinstance(m, FieldMark):
            return m.mode
    if isinstance(extra, Mapping):
        mode = extra.get(METADATA_KEY)
        if mode is not None:
            if mode not in ("encrypt", "redact"):
                raise ConfigError(f"fields: {METADATA_KEY}={mode!r}; expected 'encrypt' or "
                                  "'redact'")
            return typing.cast(Mode, mode)
    return None


def marks_of(cls: type, depth: int = 0) -> Iterable[tuple[Pattern, Mode]]:
    """Relative patterns of the marked fields of ``cls`` and of the models it holds."""
    if depth > 8:
        return
    for key, annotation, meta, extra in _declared_fields(cls):
        mode = _mode_of(meta, extra)
        if mode is not None:
            yield (key,), mode
            continue
        for sub, inner in _nested(annotation, 0):
            for pattern, m in marks_of(inner, depth + 1):
                yield (key, *sub, *pattern), m


def _declared_fields(cls: type) -> Iterable[tuple[str, Any, tuple[Any, ...], Any]]:
    model_fields = getattr(cls, "model_fields", None)
    if isinstance(model_fields, dict) and hasattr(cls, "model_validate"):
        for name, info in model_fields.items():
            key = info.serialization_alias or info.alias or name
            yield key, info.annotation, tuple(info.metadata), info.json_schema_extra
        return
    if dataclasses.is_dataclass(cls):
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception:
            hints = {}
        for f in dataclasses.fields(cls):
            ann = hints.get(f.name, f.type)
            meta = typing.get_args(ann)[1:] if typing.get_origin(ann) is typing.Annotated else ()
            yield f.name, ann, meta, f.metadata


def _nested(annotation: Any, depth: int) -> Iterable[tuple[Pattern, type]]:
    """Where models sit inside a field's type: (segments from the field, model class)."""
    if depth > 4 or annotation is None:
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        yield from _nested(args[0], depth)
    elif origin in (list, tuple, typing.Union, types.UnionType):
        seg: Pattern = (ANY_INDEX,) if origin in (list, tuple) else ()
        for a in args:
            if a is not Ellipsis and a is not type(None):
                for sub, cls in _nested(a, depth + 1):
                    yield (*seg, *sub), cls
    elif origin is dict and len(args) == 2:
        for sub, cls in _nested(args[1], depth + 1):
            yield (ANY_KEY, *sub), cls
    elif (isinstance(annotation, type) and not issubclass(annotation, enum.Enum)
          and (dataclasses.is_dataclass(annotation) or hasattr(annotation, "model_fields"))):
        yield (), annotation
