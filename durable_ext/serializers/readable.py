"""Checkpoint payloads as people read them: decoded with the handler's serdes, shown as JSON.

A :class:`Decoder` is configured once, with what the handler uses (a pipeline, or its
spec, types and options: keys and buckets included), and turns any payload of an
execution into a JSON-ready view::

    {"Value": ..., "Encoding": "msgpack+zstd", "Chars": 812}

Values become plain JSON (tuples and sets as lists, dates as ISO text, bytes as base64,
objects as their fields with a ``"$type"``); a payload it cannot open is shown as what it
is, never raised::

    {"Undecoded": {"Encoding": "msgpack+kms", "Chars": 4100, "Reason": "..."}}

(with ``"S3"`` and ``"Preview"`` for an offloaded one). Objects of classes the decoder was
not given are shown by their tag and fields, so a history is readable without the
handler's code. :meth:`Decoder.history` adds a ``"Decoded"`` view beside every payload of
a ``GetDurableExecutionHistory`` answer, whichever store or service it came from.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from aws_durable_execution_sdk_python.exceptions import SerDesError
from aws_durable_execution_sdk_python.serdes import SerDes

from durable_ext.serializers._field_marks import VIEWING, Deferred, EncryptedField, Redacted
from durable_ext.serializers.base import SerDesContext
from durable_ext.serializers.callbacks import is_framed
from durable_ext.serializers.frames import (
    is_armored,
    read_frame,
    stage_name_of,
    unarmor,
)
from durable_ext.serializers.limits import NOT_JSON, DecodeBudget, decoding, load_json
from durable_ext.serializers.types import Unregistered

__all__ = ["VIEW_CHARS", "Decoder", "ViewBudget", "readable"]

#: most levels of a value shown; deeper parts are cut (values decode within their limits,
#: JSON text may nest to the interpreter's limit)
MAX_SHOWN_DEPTH = 64
_DEFAULT_SPEC = "msgpack"
#: most characters of decoded views one answer carries (a page of history, a codec
#: request): each payload decodes within its own limits, but a hundred small payloads
#: may each inflate to those limits
VIEW_CHARS = 64 << 20
#: stages whose frames the chain walk opens on its own: they act on nothing outside
_OPENED = frozenset({"zstd", "zlib"})
_ENCRYPTED = frozenset({"kms", "localkey"})
_FORMATS = frozenset({"msgpack", "json", "pickle", "model"})


class ViewBudget:
    """What one answer may still carry of decoded views, in characters of JSON."""

    __slots__ = ("left", "total")

    def __init__(self, chars: int | None = None) -> None:
        self.total = VIEW_CHARS if chars is None else chars
        self.left = self.total

    def charge(self, view: dict[str, Any], text: str) -> dict[str, Any]:
        """Return ``view`` if it fits (and count it), else what is known of ``text``."""
        size = len(json.dumps(view, ensure_ascii=False, default=str))
        if size <= self.left:
            self.left -= size
            return view
        return {"Undecoded": {**describe(text), "Reason": (
            f"decoded views of one answer are limited to {self.total} characters; "
            "ask for fewer payloads")}}


class Decoder:
    """Decode checkpoint payloads into readable JSON views, as the handler's serdes does.

    Args:
        serdes: The handler's SDK ``SerDes`` (a durable_ext pipeline), or its spec string
            (default ``"msgpack"``, which reads every self-contained stage).
        types: Classes to decode objects as (built from a spec only); objects of other
            classes are shown by tag and fields.
        options: Stage options, as for :func:`durable_ext.serdes` (keys, buckets).

    Example:
        >>> import durable_ext
        >>> text = durable_ext.serdes("msgpack").serialize((1, b"x"), None)
        >>> Decoder().payload(text)["Value"]
        [1, {'$bytes': 'eA=='}]

    """

    def __init__(self, serdes: SerDes[Any] | str | None = None, *,
                 types: Sequence[type] | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        if serdes is None or isinstance(serdes, str):
            import durable_ext

            opts = {k: dict(v) for k, v in (options or {}).items()}
            opts.setdefault("msgpack", {}).setdefault("unregistered", "keep")
            opts.setdefault("fields", {})  # protected fields shown as such, without keys
            spec = serdes or _DEFAULT_SPEC
            self.serdes: SerDes[Any] = durable_ext.serdes(spec, types=list(types or ()),
                                                          options=opts)
        else:
            if types or options:
                raise TypeError("types= and options= go with a spec string, not a SerDes")
            self.serdes = serdes

    def __repr__(self) -> str:
        return f"Decoder({self.serdes!r})"

    def value(self, text: str, *, operation_id: str | None = None,
              execution_arn: str = "") -> Any:
        """Return the Python value of one payload (outside text as it is).

        Raises:
            SerDesError: the payload cannot be decoded (no key, tampered, ...).

        """
        if not is_framed(text) and load_json(text, "payload") is NOT_JSON:
            return text  # outside text, such as a callback result
        # Viewing: fields encrypted under a key not at hand come back as markers, not errors.
        token = VIEWING.set(True)
        try:
            return self.serdes.deserialize(text, SerDesContext(operation_id or "",
                                                               execution_arn))
        finally:
            VIEWING.reset(token)

    def payload(self, text: str | None, *, operation_id: str | None = None,
                execution_arn: str = "",
                budget: ViewBudget | None = None) -> dict[str, Any] | None:
        """Return the view of one payload (``None`` for no payload), within ``budget``."""
        if text is None:
            return None
        try:
            value = self.value(text, operation_id=operation_id, execution_arn=execution_arn)
        except SerDesError as exc:
            return {"Undecoded": {**describe(text), "Reason": str(exc)}}
        encoding = "text" if value is text and not is_framed(text) else encoding_of(text)
        view = {"Value": readable(value), "Encoding": encoding, "Chars": len(text)}
        return view if budget is None else budget.charge(view, text)

    def history(self, history: Mapping[str, Any], *,
                execution_arn: str = "") -> dict[str, Any]:
        """Return a copy of a history answer with a ``"Decoded"`` view beside each payload."""
        out = copy.deepcopy(dict(history))
        budget = ViewBudget()
        for event in out.get("Events", ()):
            for key, details in event.items():
                if key.endswith("Details") and isinstance(details, dict):
                    self._decode_details(details, event.get("Id"), execution_arn, budget)
        return out

    def _decode_details(self, details: dict[str, Any], operation_id: str | None,
                        execution_arn: str, budget: ViewBudget) -> None:
        for value in details.values():
            if isinstance(value, dict) and isinstance(value.get("Payload"), str):
                value["Decoded"] = self.payload(value["Payload"], operation_id=operation_id,
                                                execution_arn=execution_arn, budget=budget)


def encoding_of(text: str) -> str:
    """Return the stage chain of a payload (``"json"`` for plain JSON), outermost last."""
    return describe(text)["Encoding"]  # type: ignore[no-any-return]


def describe(text: str) -> dict[str, Any]:
    """Say what a payload is without its keys: stages, size, and where it lives.

    Compression is opened (within the decode limits) to see what it holds; encryption,
    offload and formats are named and not opened.
    """
    out: dict[str, Any] = {"Chars": len(text)}
    if not is_armored(text):
        out["Encoding"] = "json"
        return out
    chain: list[str] = []
    try:
        data = unarmor(text, "payload")
        with decoding(DecodeBudget()):
            for _ in range(16):
                wire, version, body = read_frame(data, "payload")
                name = stage_name_of(wire) or f"unknown stage {wire[:16]!r}"
                chain.append(name)
                if name == "s3":
                    _describe_pointer(text, out)
                    break
                if name not in _OPENED:
                    if name in _ENCRYPTED:
                        out["Encrypted"] = True
                    break
                data = _open(name, body, version)
    except SerDesError as exc:
        out["Problem"] = str(exc)
    if chain and chain[-1] not in _FORMATS:
        chain.append("…")  # what is inside an unopened stage is not known here
    out["Encoding"] = "+".join(reversed(chain)) or "unknown"
    return out


def _open(name: str, body: bytes, version: int) -> bytes:
    from durable_ext.registry import SERIALIZERS

    stage = SERIALIZERS.load(name).from_spec(None)
    data: bytes = stage.decode(body, version, SerDesContext("", ""))
    return data


def _describe_pointer(text: str, out: dict[str, Any]) -> None:
    from durable_ext.serializers.s3 import read_pointer

    pointer = read_pointer(text)
    if pointer is not None:
        out["S3"] = pointer.url
        out["Bytes"] = pointer.size
        if pointer.preview is not None:
            out["Preview"] = readable(pointer.preview)


def readable(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` as plain JSON data: what a person reading a payload needs to see.

    Fields a ``fields`` stage protects show as ``{"$encrypted": {...}}`` (when their key
    was not at hand) and ``{"$redacted": "redacted:ID:HEX"}``.
    """
    if type(value) is Redacted:
        return {"$redacted": str(value)}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return readable(value.value, _depth)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if _depth >= MAX_SHOWN_DEPTH:
        return "…"
    nxt = _depth + 1
    if isinstance(value, Mapping):
        return {_key(k): readable(v, nxt) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [readable(v, nxt) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [readable(v, nxt) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    return _scalar(value, nxt)


def _scalar(value: Any, depth: int) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return {"$seconds": value.total_seconds()}
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, EncryptedField):
        return value.to_json()
    if isinstance(value, Deferred):  # an object whose encrypted fields stayed closed
        return {"$type": value.tag, **readable(_as_fields(value.fields), depth)}
    if isinstance(value, Unregistered):
        if value.kind == "enum":
            return {"$type": value.tag, "$member": value.fields}
        return {"$type": value.tag, **readable(_as_fields(value.fields), depth)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        return {"$type": type(value).__name__,
                **{n: readable(getattr(value, n), depth) for n in names}}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return {"$type": type(value).__name__, **readable(dump(mode="json"), depth)}
    to_dict = getattr(value, "to_dict", None)  # the SDK's BatchResult
    if callable(to_dict):
        return {"$type": type(value).__name__, **readable(to_dict(), depth)}
    return {"$repr": repr(value)[:200]}


def _as_fields(fields: Any) -> dict[str, Any]:
    return fields if isinstance(fields, dict) else {"$fields": fields}


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(readable(key, MAX_SHOWN_DEPTH))
