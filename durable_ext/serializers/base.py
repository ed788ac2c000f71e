"""The three seams of a serializer pipeline: formats, codecs and offloads.

A pipeline turns a value into a checkpoint string in three layers::

    value --Format--> bytes --Codec--> bytes ... --Offload--> pointer bytes --armor--> str

A ``fields`` stage (:mod:`durable_ext.serializers.fields`) may sit between the value and
the format: it encrypts or redacts chosen fields of the value, and wraps the format's frame
in its own.

Every layer's output is wrapped in a *frame* that names the stage and its version,
so a payload says how to decode it: decoding follows the frames, not the pipeline
configured today. A stage only produces and consumes frame *bodies*; the pipeline
writes and reads the frame headers.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from aws_durable_execution_sdk_python.serdes import SerDesContext

__all__ = ["Codec", "Format", "Offload", "Role", "SerDesContext", "Stage", "VersionedFormat"]

Role = Literal["format", "fields", "codec", "offload"]


@runtime_checkable
class Stage(Protocol):
    """What every stage class declares."""

    #: registry name, as written in specs
    name: ClassVar[str]
    #: where the stage may appear in a pipeline
    role: ClassVar[Role]
    #: the id written in frame headers (short for built-ins)
    wire: ClassVar[bytes]
    #: the body layout version this class writes; it must read every older one
    version: ClassVar[int]


class Format(Stage, Protocol):
    """Value <-> bytes.

    Law: ``decode(encode(v, ctx), version, ctx) == v`` for every supported ``v``; an
    unsupported value raises :class:`~durable_ext.errors.SerializationError` naming its type.
    """

    def encode(self, value: Any, ctx: SerDesContext) -> bytes:
        """Encode ``value`` into a frame body."""
        ...

    def decode(self, body: bytes, version: int, ctx: SerDesContext) -> Any:
        """Decode a frame body written by ``encode`` (of this or an older version)."""
        ...


@runtime_checkable
class VersionedFormat(Format, Protocol):
    """A format that picks a body layout per value.

    The pipeline calls ``encode_versioned`` instead of ``encode`` and writes the layout
    it returns (at most ``version``) in the frame header, so ``decode`` learns which
    layout a body has without an extra byte in the body. ``encode`` must still return
    a body that ``decode(body, version, ctx)`` reads.
    """

    def encode_versioned(self, value: Any, ctx: SerDesContext) -> tuple[int, bytes]:
        """Encode ``value``; return the layout version used and the frame body."""
        ...


class Codec(Stage, Protocol):
    """Bytes <-> bytes (compression, encryption).

    Law: if ``encode(b, ctx)`` returns ``x`` then ``decode(x, version, ctx) == b``; it may
    return ``None`` to leave ``b`` as it is (no frame is written then).
    """

    def encode(self, data: bytes, ctx: SerDesContext) -> bytes | None:
        """Transform ``data`` into a frame body, or return ``None`` to pass it through."""
        ...

    def decode(self, body: bytes, version: int, ctx: SerDesContext) -> bytes:
        """Invert ``encode``."""
        ...


class Offload(Stage, Protocol):
    """Bytes <-> a small pointer to bytes stored elsewhere.

    Law: if ``store(b, ctx)`` returns ``p`` then ``load(p, version, ctx) == b``; it
    returns ``None`` to keep ``b`` inline (small payloads).
    """

    def store(self, data: bytes, ctx: SerDesContext) -> bytes | None:
        """Store ``data`` elsewhere and return a pointer body, or ``None`` to keep it inline."""
        ...

    def load(self, body: bytes, version: int, ctx: SerDesContext) -> bytes:
        """Fetch and verify the bytes a pointer body refers to."""
        ...
