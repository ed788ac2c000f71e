"""Compression codecs: zstd (via ``zstandard``) and zlib (standard library).

A codec compresses only payloads of at least ``threshold`` bytes, and keeps the
result only when it is smaller; otherwise it writes no frame at all, so the frame
chain of a payload says whether it was compressed and with what.
"""

from __future__ import annotations

import importlib
import threading
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from durable_ext._deps import install_hint
from durable_ext.errors import ConfigError, SerializationError, SpecError
from durable_ext.serializers.base import Role, SerDesContext

__all__ = ["ZlibCodec", "ZstdCodec"]

#: refuse to inflate a payload past this size (a decompression bomb guard)
MAX_OUTPUT_BYTES = 1 << 30


@dataclass(frozen=True, slots=True, kw_only=True)
class CompressionSettings:
    """Compression level, and the payload size below which nothing is compressed."""

    level: int
    threshold: int = 512

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ConfigError(f"compression threshold must be >= 0, got {self.threshold}")


class _CompressionCodec:
    """Shared behaviour: compress above the threshold, keep the result only if smaller."""

    name: ClassVar[str]
    role: ClassVar[Role] = "codec"
    wire: ClassVar[bytes]
    version: ClassVar[int] = 1
    default_level: ClassVar[int]

    def __init__(self, *, level: int | None = None, threshold: int = 512) -> None:
        self.settings = CompressionSettings(
            level=self.default_level if level is None else level, threshold=threshold
        )

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> Self:
        """``NAME`` or ``NAME:LEVEL``; options ``level`` and ``threshold``."""
        if arg is not None:
            try:
                options = {"level": int(arg), **options}
            except ValueError:
                raise SpecError(
                    f"{cls.name}: the argument is a compression level, got {arg!r}"
                ) from None
        try:
            return cls(**options)
        except TypeError as exc:
            raise ConfigError(f"{cls.name}: {exc}") from None

    def encode(self, data: bytes, ctx: SerDesContext) -> bytes | None:
        """Compress, or return ``None`` when it would not help."""
        if len(data) < self.settings.threshold:
            return None
        out = self._compress(data)
        return out if len(out) < len(data) else None

    def _compress(self, data: bytes) -> bytes:
        raise NotImplementedError


class ZlibCodec(_CompressionCodec):
    """Deflate with the standard library; always available.

    Example:
        >>> import durable_ext
        >>> durable_ext.serdes("msgpack+zlib:9")  # doctest: +ELLIPSIS
        Pipeline('msgpack+zlib')

    """

    name: ClassVar[str] = "zlib"
    wire: ClassVar[bytes] = b"l"
    default_level: ClassVar[int] = 6

    def __init__(self, *, level: int | None = None, threshold: int = 512) -> None:
        super().__init__(level=level, threshold=threshold)
        if not -1 <= self.settings.level <= 9:
            raise ConfigError(f"zlib level must be -1..9, got {self.settings.level}")

    def _compress(self, data: bytes) -> bytes:
        return zlib.compress(data, self.settings.level)

    def decode(self, body: bytes, version: int, ctx: SerDesContext) -> bytes:
        """Inflate, bounded by :data:`MAX_OUTPUT_BYTES`."""
        try:
            d = zlib.decompressobj()
            out = d.decompress(body, MAX_OUTPUT_BYTES)
            if d.unconsumed_tail or not d.eof:
                raise zlib.error("truncated or oversized stream")
            return out
        except zlib.error as exc:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: corrupt zlib payload ({exc})"
            ) from None


class ZstdCodec(_CompressionCodec):
    """Zstandard compression; writes zlib frames instead when ``zstandard`` is missing.

    Example:
        >>> import durable_ext
        >>> durable_ext.serdes("msgpack+zstd")  # doctest: +ELLIPSIS
        Pipeline('msgpack+zstd')

    """

    name: ClassVar[str] = "zstd"
    wire: ClassVar[bytes] = b"z"
    default_level: ClassVar[int] = 3

    def __init__(self, *, level: int | None = None, threshold: int = 512) -> None:
        super().__init__(level=level, threshold=threshold)
        try:
            self._zstd: Any = importlib.import_module("zstandard")
        except ImportError:
            self._zstd = None
            # Frames must say what was really written: zlib, readable anywhere.
            self.wire = ZlibCodec.wire  # type: ignore[misc]
        self._local = threading.local()

    def _compress(self, data: bytes) -> bytes:
        if self._zstd is None:
            return zlib.compress(data, ZlibCodec.default_level)
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = self._zstd.ZstdCompressor(level=self.settings.level)
        out: bytes = c.compress(data)
        return out

    def decode(self, body: bytes, version: int, ctx: SerDesContext) -> bytes:
        """Decompress a zstd frame body."""
        if self._zstd is None:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: payload is zstd-compressed but the "
                f"'zstandard' package is missing; run: {install_hint('zstd')}"
            )
        try:
            d = getattr(self._local, "d", None)
            if d is None:
                d = self._local.d = self._zstd.ZstdDecompressor()
            params = self._zstd.get_frame_parameters(body)
            if params.content_size > MAX_OUTPUT_BYTES:
                raise self._zstd.ZstdError("declared size is over the limit")
            return d.decompress(body, max_output_size=MAX_OUTPUT_BYTES)  # type: ignore[no-any-return]
        except self._zstd.ZstdError as exc:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: corrupt zstd payload ({exc})"
            ) from None
