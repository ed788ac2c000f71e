"""User classes a format may carry: dataclasses, NamedTuples and Enums, by explicit tag.

Decoding looks a tag up in this registry and nothing else: a payload can never make
the decoder import a module or build a class that was not registered.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from typing import Any, TypeVar

from durable_ext.errors import ConfigError

__all__ = ["TypeRegistry", "Unregistered"]

T = TypeVar("T", bound=type)


@dataclasses.dataclass(frozen=True, slots=True)
class Unregistered:
    """An object of a class the reader did not register, kept as its tag and its fields.

    What a format built with ``unregistered="keep"`` decodes such an object to, so tools
    can show a payload without the handler's classes; never built into the class itself.

    Attributes:
        tag: The class's tag, as written.
        fields: Its fields (a dict, or a list for a NamedTuple) or, for an Enum, its
            member's name.
        kind: ``"object"`` or ``"enum"``.

    """

    tag: str
    fields: Any
    kind: str = "object"


class TypeRegistry:
    """Two-way map between registered classes and their stable tags.

    Example:
        >>> from dataclasses import dataclass
        >>> types = TypeRegistry()
        >>> @types.register
        ... @dataclass
        ... class Order:
        ...     id: str
        >>> types.tag_of(Order)
        'Order'

    """

    def __init__(self, classes: Iterable[type] = ()) -> None:
        self._by_class: dict[type, str] = {}
        self._by_tag: dict[str, type] = {}
        for cls in classes:
            self.register(cls)

    @classmethod
    def coerce(cls, types: TypeRegistry | Iterable[type] | None) -> TypeRegistry:
        """Accept a registry, an iterable of classes, or ``None``."""
        if isinstance(types, TypeRegistry):
            return types
        return cls(types or ())

    def register(self, cls: T, tag: str | None = None) -> T:
        """Register ``cls`` under ``tag`` (default: its qualified name); usable as a decorator."""
        if not isinstance(cls, type):
            raise ConfigError(f"only classes can be registered, got {cls!r}")
        if not (dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum) or _is_namedtuple(cls)):
            raise ConfigError(
                f"{cls.__qualname__} is not a dataclass, NamedTuple or Enum; "
                "register one of those, or use the 'model' or 'pickle' format"
            )
        tag = tag or cls.__qualname__
        known = self._by_tag.get(tag)
        if known is not None and known is not cls:
            raise ConfigError(
                f"type tag {tag!r} already names {known.__module__}.{known.__qualname__}; "
                f"pass tag= to register {cls.__module__}.{cls.__qualname__}"
            )
        self._by_class[cls] = tag
        self._by_tag[tag] = cls
        return cls

    def tag_of(self, cls: type) -> str | None:
        """Return the tag of ``cls``, or ``None`` if it was not registered."""
        return self._by_class.get(cls)

    def class_of(self, tag: str) -> type | None:
        """Return the class registered under ``tag``, or ``None``."""
        return self._by_tag.get(tag)

    def __contains__(self, cls: object) -> bool:
        return cls in self._by_class

    def __len__(self) -> int:
        return len(self._by_class)

    def __iter__(self) -> Any:
        return iter(self._by_class)


def _is_namedtuple(cls: type) -> bool:
    return issubclass(cls, tuple) and hasattr(cls, "_fields")
