"""The decoder view: a checkpoint string as JSON, its protected fields shown as such.

What ``durable-ext`` commands and the console print for a payload: encrypted fields
decrypted when the pipeline given holds their key, ``{"$encrypted": {...}}`` otherwise (or
when they do not decrypt, with the reason), redacted ones as ``{"$redacted": ...}``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

from durable_ext.serializers._field_marks import (
    REDACTED_PREFIX,
    VIEWING,
    Deferred,
    EncryptedField,
    Redacted,
)
from durable_ext.serializers.base import SerDesContext

__all__ = ["to_jsonable", "view"]


def view(payload: str, ctx: SerDesContext | None = None, *, serdes: Any = None) -> Any:
    """Decode a checkpoint string for people: a JSON value, protected fields shown as such.

    Encrypted fields are decrypted when ``serdes`` (a pipeline with a ``fields`` stage
    and its key) can; otherwise each shows as ``{"$encrypted": {"path", "field", "stage",
    "key_id"[, "error"]}}``. Redacted fields show as ``{"$redacted": "redacted:ID:HEX"}``;
    bytes, datetimes, decimals, UUIDs, sets and objects get JSON forms too. This is what
    ``durable-ext`` commands and the console use to print a payload.

    Example:
        >>> import durable_ext
        >>> from durable_ext.serializers.fields_view import view
        >>> s = durable_ext.serdes("msgpack+fields:localkey;paths=card",
        ...                        options={"fields": {"key": b"k" * 32}})
        >>> text = s.serialize({"card": "4111", "qty": 2}, SerDesContext("op", "arn"))
        >>> view(text, SerDesContext("op", "arn"))["card"]["$encrypted"]["path"]
        'card'
        >>> view(text, SerDesContext("op", "arn"), serdes=s)
        {'card': '4111', 'qty': 2}

    """
    if serdes is None:
        from durable_ext.serializers.pipeline import build_pipeline

        serdes = build_pipeline("msgpack", options={"fields": {}})
    token = VIEWING.set(True)
    try:
        value = serdes.deserialize(payload, ctx or SerDesContext())
    finally:
        VIEWING.reset(token)
    return to_jsonable(value)


def to_jsonable(value: Any, depth: int = 0) -> Any:
    """Render a decoded value as JSON data (the view's forms for what JSON lacks)."""
    if depth > 200:
        return "..."
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        finite = value == value and value not in (float("inf"), float("-inf"))
        return value if finite else repr(value)
    if t is Redacted or (t is str and value.startswith(REDACTED_PREFIX)):
        return {"$redacted": str(value)}
    if t is EncryptedField:
        return value.to_json()
    if t is Deferred:
        return {"$object": value.tag, "fields": to_jsonable(value.fields, depth + 1)}
    if isinstance(value, dict):
        return {k if type(k) is str else repr(k): to_jsonable(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return [to_jsonable(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return {"$set": [to_jsonable(v, depth + 1) for v in value]}
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID | dt.timedelta):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, depth + 1)
    if isinstance(value, str):
        return str(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return {"$object": type(value).__qualname__, "fields": to_jsonable(dump(), depth + 1)}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return {"$object": type(value).__qualname__, "fields": to_jsonable(to_dict(), depth + 1)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"$object": type(value).__qualname__,
                "fields": {f.name: to_jsonable(getattr(value, f.name), depth + 1)
                           for f in dataclasses.fields(value)}}
    if hasattr(value, "_asdict"):
        return {"$object": type(value).__qualname__,
                "fields": to_jsonable(dict(value._asdict()), depth + 1)}
    return repr(value)[:200]
