"""A JSON format for pipelines that must stay JSON: compact JSON where it is exact.

Layout 2 (written when JSON carries the value exactly: it reads back equal, so no tuple,
non-string key, set, date or bytes was turned into something else) is compact JSON text,
close to ``json``'s speed and shorter than the SDK's spaced JSON; ``serdes("json")`` alone
writes it unframed, as plain JSON any reader reads. Any other value is written in layout 1,
the SDK's own ``ExtendedTypeSerDes`` envelope, which keeps those types; both layouts are
read.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, SerDes

from durable_ext.errors import SerializationError, SpecError
from durable_ext.serializers.base import Role, SerDesContext
from durable_ext.serializers.limits import check_json_text

__all__ = ["JsonFormat"]

LAYOUT_ENVELOPE = 1
LAYOUT_COMPACT = 2
_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class JsonFormat:
    """JSON as a pipeline format: compact where exact, the SDK's envelope otherwise."""

    name: ClassVar[str] = "json"
    role: ClassVar[Role] = "format"
    wire: ClassVar[bytes] = b"j"
    #: a value JSON carries exactly may be written as the plain JSON it reads back from
    json_exact: ClassVar[bool] = True
    version: ClassVar[int] = LAYOUT_COMPACT
    #: bodies of this layout are compact ASCII JSON of the value: a pipeline of this
    #: format alone writes them as they are, unframed, like the SDK's own JSON
    plain_json_layout: ClassVar[int] = LAYOUT_COMPACT

    def __init__(self) -> None:
        self._sdk: SerDes[Any] = ExtendedTypeSerDes()  # type: ignore[no-untyped-call]

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> JsonFormat:
        """Build from a spec stage; ``json`` takes no argument or option."""
        if arg is not None or options:
            raise SpecError("the json format takes no argument or option")
        return cls()

    def encode(self, value: Any, ctx: SerDesContext) -> bytes:
        """Encode ``value`` into a body that ``decode(body, version)`` reads."""
        return self.encode_versioned(value, ctx)[1]

    def encode_versioned(self, value: Any, ctx: SerDesContext) -> tuple[int, bytes]:
        """Return the layout ``value`` needs and its body."""
        try:
            text = _compact(value)
        except (TypeError, ValueError, RecursionError):
            text = None  # a type JSON lacks, NaN, or nesting past the interpreter's
        # Equality tells a tuple from a list and 1 from "1" as keys: what JSON would
        # change reads back unequal and goes in the envelope.
        if text is not None and _reads_back(text, value):
            return LAYOUT_COMPACT, text.encode("ascii")
        try:
            envelope: str = self._sdk.serialize(value, ctx)
        except Exception as exc:
            raise SerializationError(
                f"json cannot serialize the result of operation {ctx.operation_id!r}: {exc}"
            ) from exc
        return LAYOUT_ENVELOPE, envelope.encode("utf-8")

    def decode(self, body: bytes, version: int, ctx: SerDesContext) -> Any:
        """Decode either layout."""
        try:
            check_json_text(body)
            if version == LAYOUT_COMPACT:
                return json.loads(body)
            return self._sdk.deserialize(bytes(body).decode("utf-8"), ctx)
        except SerializationError:
            raise
        except RecursionError:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: JSON nested too deeply to decode"
            ) from None
        except Exception as exc:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: corrupt JSON payload ({exc})"
            ) from exc


def _reads_back(text: str, value: Any) -> bool:
    try:
        same: bool = json.loads(text) == value
    except RecursionError:
        return False
    return same
