"""The values field protection puts into a payload, shared by the fields stage and the formats.

* :data:`SEALED`: what an encrypted field decodes to until the ``fields`` stage puts its
  value back (a msgpack extension with an empty body; the values travel together in one
  envelope, see :mod:`durable_ext.serializers.fields`);
* :class:`Redacted`: a value that must never be stored, replaced by a keyed hash of it; a
  ``str``, so it fits the ``str`` fields PII lives in, model fields included;
* :class:`Deferred`: an object (dataclass, model, ``BatchResult``) holding sealed fields,
  kept as its raw field data until their values are back, because building it (validation)
  needs them;
* :class:`RawObject`: an object whose raw field data had fields replaced on the way out,
  for the format to pack as it packs the object.

A sealed field is only read inside a ``fields`` frame: :data:`OPEN` holds the count of the
payload being decoded, and without it the format refuses the mark.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final

__all__ = [
    "OPEN",
    "REDACTED_PREFIX",
    "SEALED",
    "VIEWING",
    "Deferred",
    "EncryptedField",
    "OpenFields",
    "RawObject",
    "Redacted",
]

#: the text every redacted value starts with
REDACTED_PREFIX = "redacted:"
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DIGEST_BYTES = 32


class _Sealed:
    """The one object every encrypted field decodes to before its value is put back."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<durable_ext encrypted field>"

    def __reduce__(self) -> str:
        return "SEALED"


SEALED: Final = _Sealed()


class OpenFields:
    """The sealed marks of the payload a ``fields`` frame is decoding, counted as read."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


OPEN: ContextVar[OpenFields | None] = ContextVar("durable_ext_open_fields", default=None)


def open_count() -> int:
    """Return the marks read so far in the current ``fields`` frame (0 outside one)."""
    state = OPEN.get()
    return 0 if state is None else state.count


class Redacted(str):
    """A value replaced by its keyed hash: ``redacted:KEYID:HEX`` (HMAC-SHA256).

    Equal values hash equal under one key, so a redacted field can still be compared
    (``stage.redact_value(candidate) == stored``) but not read back.
    """

    __slots__ = ()

    def __new__(cls, key_id: str, digest: bytes) -> Redacted:
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise ValueError("bad redaction key id")
        if not isinstance(digest, bytes) or len(digest) != _DIGEST_BYTES:
            raise ValueError("bad redaction digest")
        return super().__new__(cls, f"{REDACTED_PREFIX}{key_id}:{digest.hex()}")

    @property
    def key_id(self) -> str:
        """The id of the key that made the hash."""
        return self.split(":", 2)[1]

    @property
    def digest(self) -> bytes:
        """The HMAC-SHA256 digest."""
        return bytes.fromhex(self.rsplit(":", 1)[1])

    def body(self) -> bytes:
        """Return the bytes a format stores: key id length, key id, digest."""
        kid = self.key_id.encode("ascii")
        return bytes((len(kid),)) + kid + self.digest

    @classmethod
    def from_body(cls, data: bytes) -> Redacted:
        """Read a stored body, strictly (it may come from anyone)."""
        if not data or len(data) != 1 + data[0] + _DIGEST_BYTES:
            raise ValueError("bad redacted value length")
        try:
            kid = bytes(data[1 : 1 + data[0]]).decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("bad redaction key id") from None
        return cls(kid, bytes(data[1 + data[0] :]))

    def __repr__(self) -> str:
        return f"Redacted({str.__repr__(self)})"

    def __reduce__(self) -> Any:
        return (Redacted, (self.key_id, self.digest))


class Deferred:
    """An object holding sealed fields, as its raw field data until they are put back."""

    __slots__ = ("build", "fields", "keymap", "kind", "tag")

    def __init__(self, kind: str, tag: str, fields: Any, build: Callable[[Any], Any],
                 keymap: Mapping[str, Any] | None = None) -> None:
        #: "object" (fields are a map or a list) or "batch" (a BatchResult's dict)
        self.kind = kind
        self.tag = tag
        self.fields = fields
        self.build = build
        self.keymap = keymap

    def __repr__(self) -> str:
        return f"<durable_ext {self.tag} with encrypted fields>"


class RawObject:
    """An object to pack from raw field data (some fields replaced), as the format packs it."""

    __slots__ = ("fields", "keymap", "kind", "pack")

    def __init__(self, fields: Any, pack: Callable[[Any], Any], kind: str = "map",
                 keymap: Mapping[str, Any] | None = None) -> None:
        self.fields = fields
        self.pack = pack
        #: as in :class:`Deferred`, so a later walk sees the object as the first one did
        self.kind = kind
        self.keymap = keymap

    def rebuilt(self, fields: Any) -> RawObject:
        """Return the same object with other field data."""
        return RawObject(fields, self.pack, self.kind, self.keymap)


@dataclasses.dataclass(frozen=True, slots=True)
class EncryptedField:
    """What the decoder view shows for an encrypted field it cannot (or may not) decrypt."""

    path: str
    index: int
    stage: str
    key_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form: ``{"$encrypted": {...}}``."""
        body: dict[str, Any] = {"path": self.path, "field": self.index, "stage": self.stage}
        if self.key_id is not None:
            body["key_id"] = self.key_id
        if self.error is not None:
            body["error"] = self.error
        return {"$encrypted": body}


#: set while the decoder view (:mod:`durable_ext.serializers.fields_view`) decodes: sealed
#: fields it cannot open are shown, not raised
VIEWING: ContextVar[bool] = ContextVar("durable_ext_fields_view", default=False)
