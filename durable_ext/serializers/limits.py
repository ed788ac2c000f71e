"""Bounds on decoding: how deep a payload may nest and how many bytes it may expand to.

A checkpoint, a callback result or an S3 object can come from somebody else, so every
decoder runs against a per-payload :class:`DecodeBudget` made from the pipeline's
:class:`DecodeLimits`:

* ``max_depth`` bounds nesting that costs native stack: extension types nested in
  extension types (each level is a nested ``unpackb`` call), and JSON nesting;
* ``max_bytes`` bounds the bytes a payload may produce across all of its frames together:
  every codec's output (decompression), every offloaded object fetched, every nested body
  copied out of an extension type, and the payload itself;
* ``max_items`` bounds the container slots (array items, map entries) a payload decodes,
  counted across all of its bodies once it is past :data:`COUNTED_BODY_BYTES` (a large
  body, or many bodies, or a body out of a decompressor), where a few bytes per empty
  container would otherwise become tens of bytes of Python objects each.

With the defaults no payload crashes the interpreter, takes more than a few seconds or
needs more than a few hundred MiB to decode. The pipeline refuses to *write* a payload
over ``max_bytes`` as well, so a pipeline never stores what it would refuse to read.
Exceeding a bound raises :class:`~durable_ext.errors.SerializationError` naming the
operation and the bound.

Stages find the budget of the payload being decoded with :func:`current_budget`; outside
a pipeline (a stage called directly) they get a fresh budget with the default limits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

from durable_ext.errors import ConfigError, SerializationError

__all__ = [
    "COUNTED_BODY_BYTES",
    "CURRENT_BUDGET",
    "DEFAULT_LIMITS",
    "NOT_JSON",
    "DecodeBudget",
    "DecodeLimits",
    "check_json_text",
    "counting_budget",
    "current_budget",
    "decoding",
    "has_budget",
    "load_json",
]

#: payloads past this many bytes have their container items counted against ``max_items``
COUNTED_BODY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodeLimits:
    """Bounds applied to every payload a pipeline decodes.

    Attributes:
        max_depth: Most levels of nested extension types (and of JSON containers).
        max_bytes: Most bytes one payload may produce across all its frames.
        max_items: Most container items one payload past ``COUNTED_BODY_BYTES`` may decode.

    Example:
        >>> import durable_ext
        >>> durable_ext.serdes("msgpack+zstd", limits={"max_bytes": 256 << 20})
        Pipeline('msgpack+zstd')

    """

    max_depth: int = 32
    max_bytes: int = 32 << 20
    max_items: int = 8_000_000

    @classmethod
    def coerce(cls, value: DecodeLimits | Mapping[str, int] | None) -> DecodeLimits:
        """Accept limits, a mapping of their fields, or ``None`` for the defaults."""
        if value is None:
            return DEFAULT_LIMITS
        if isinstance(value, DecodeLimits):
            return value
        try:
            return cls(**value)
        except TypeError as exc:
            raise ConfigError(
                f"decode limits: {exc}; known: max_depth, max_bytes, max_items"
            ) from None

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_bytes", "max_items"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"decode limits: {name} must be an int >= 1, got {value!r}")


DEFAULT_LIMITS = DecodeLimits()


class DecodeBudget:
    """What one payload has used of its :class:`DecodeLimits` so far."""

    __slots__ = ("items_left", "limits", "used", "where")

    def __init__(self, limits: DecodeLimits = DEFAULT_LIMITS, where: str = "") -> None:
        self.limits = limits
        self.where = where
        self.used = 0
        # One count for every body of the payload: a payload of many bodies, each under
        # COUNTED_BODY_BYTES, cannot hold max_items containers per body.
        self.items_left = limits.max_items

    @property
    def _at(self) -> str:
        return f"{self.where}: " if self.where else ""

    @property
    def remaining(self) -> int:
        """Bytes this payload may still produce."""
        return self.limits.max_bytes - self.used

    def check(self, n: int, what: str) -> None:
        """Raise if ``what`` producing ``n`` more bytes would exceed ``max_bytes``.

        Stages call this before they allocate (an object's size before fetching it); the
        pipeline charges what each stage produced.
        """
        if n > self.limits.max_bytes - self.used:
            raise self.too_many_bytes(what)

    def charge(self, n: int, what: str) -> None:
        """Count ``n`` more bytes produced by ``what``; raise once over ``max_bytes``."""
        self.used += n
        if self.used > self.limits.max_bytes:
            raise self.too_many_bytes(what)

    def spend_items(self, n: int, what: str) -> None:
        """Count ``n`` more container items decoded by ``what``; raise once over ``max_items``."""
        self.items_left -= n
        if self.items_left < 0:
            raise self.too_many_items(what)

    def too_many_bytes(self, what: str) -> SerializationError:
        """Return the error for ``what`` producing more than the bytes still allowed."""
        return SerializationError(
            f"{self._at}{what} would exceed the decode limit of {self.limits.max_bytes} "
            "bytes per payload (max_bytes); raise it with limits={'max_bytes': N} if such "
            "payloads are expected"
        )

    def too_deep(self, what: str) -> SerializationError:
        """Return the error for nesting past ``max_depth``."""
        return SerializationError(
            f"{self._at}{what} nested more than {self.limits.max_depth} levels deep "
            "(max_depth); raise it with limits={'max_depth': N}"
        )

    def nested_too_large(self, what: str, n: int) -> SerializationError:
        """Return the error for nested bodies holding more than ``max_bytes`` at once."""
        return SerializationError(
            f"{self._at}{what} hold {n} bytes of nested bodies at once, over the decode "
            f"limit of {self.limits.max_bytes} bytes (max_bytes); raise it with "
            "limits={'max_bytes': N}"
        )

    def too_many_items(self, what: str) -> SerializationError:
        """Return the error for a body with more container items than ``max_items``."""
        return SerializationError(
            f"{self._at}{what} takes the payload over {self.limits.max_items} container "
            "items (max_items, counted across its bodies); raise it with "
            "limits={'max_items': N}"
        )


_current: ContextVar[DecodeBudget | None] = ContextVar("durable_ext_decode_budget", default=None)
CURRENT_BUDGET = _current
"""The budget of the payload being decoded, or None: read directly on hot paths."""


def counting_budget(body_bytes: int) -> DecodeBudget | None:
    """Return the budget a body of ``body_bytes`` must count its containers against, if any.

    Bodies are counted once they are large, or once the payload they belong to has produced
    more than ``COUNTED_BODY_BYTES`` (many small bodies, or a body out of a decompressor).
    Below both, the bytes bound the containers and decoding runs without hooks.
    """
    budget = _current.get()
    if body_bytes > COUNTED_BODY_BYTES:
        return budget if budget is not None else DecodeBudget()
    if budget is not None and budget.used > COUNTED_BODY_BYTES:
        return budget
    return None


def has_budget() -> bool:
    """Return whether a payload's budget is current (a pipeline is decoding)."""
    return _current.get() is not None


def current_budget() -> DecodeBudget:
    """Return the budget of the payload being decoded (a fresh default one outside a pipeline)."""
    budget = _current.get()
    return budget if budget is not None else DecodeBudget()


class decoding:
    """Make ``budget`` the current one while a payload is decoded (``with decoding(b):``).

    A class rather than a generator: every slow-path decode enters one, and a
    ``contextmanager`` costs a generator and two more frames per payload.
    """

    __slots__ = ("_budget", "_token")

    def __init__(self, budget: DecodeBudget) -> None:
        self._budget = budget

    def __enter__(self) -> DecodeBudget:
        self._token = _current.set(self._budget)
        return self._budget

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)


NOT_JSON: Final = object()
"""What :func:`load_json` returns for text that does not parse as JSON."""


def check_json_text(text: str | bytes) -> None:
    """Refuse JSON text that would expand past the current decode limits.

    Nesting is bounded by the interpreter's recursion limit (the C parser checks it and
    raises ``RecursionError``). Text over ``COUNTED_BODY_BYTES`` has its containers counted
    against ``max_items`` first, by its brackets (an upper bound, found at C speed), so
    ``[],`` repeated cannot become 20 times its size in Python objects unchecked.
    """
    if len(text) > COUNTED_BODY_BYTES:
        if isinstance(text, str):
            brackets = text.count("[") + text.count("{")
        else:
            brackets = text.count(b"[") + text.count(b"{")
        current_budget().spend_items(brackets, "the JSON text")


def load_json(text: str | bytes, where: str) -> Any:
    """Parse JSON within the decode limits; :data:`NOT_JSON` if it is not JSON at all."""
    check_json_text(text)
    try:
        return json.loads(text)
    except RecursionError:
        raise SerializationError(f"{where}: JSON nested too deeply to decode") from None
    except ValueError:
        return NOT_JSON
