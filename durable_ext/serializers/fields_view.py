"""The decoder view: a checkpoint string as JSON, its protected fields shown as such.

What ``durable-ext`` commands and the console print for a payload: encrypted fields
decrypted when the pipeline given holds their key, ``{"$encrypted": {...}}`` otherwise (or
when they do not decrypt, with the reason), redacted ones as ``{"$redacted": ...}``.
"""

from __future__ import annotations

from typing import Any

from durable_ext.serializers._field_marks import VIEWING
from durable_ext.serializers.base import SerDesContext
from durable_ext.serializers.readable import readable

__all__ = ["view"]


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
    return readable(value)
