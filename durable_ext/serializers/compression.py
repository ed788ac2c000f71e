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
from typing import Any, ClassVar

from durable_ext._deps import install_hint
from durable_ext.errors import ConfigError, SerializationError, SpecError
from durable_ext.serializers.base import Role, SerDesContext

__all__ = ["ZlibCodec", "ZstdCodec"]

#: refuse to inflate a payload past this size (a decompression bomb guard)
MAX_OUTPUT_BYTES = 1 << 30


@dataclass(frozen=True, slots=True, kw_only=True)
class _Settings:
    level: int
    threshold: int = 512

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ConfigError(f"compression threshold must be >= 0, got {self.threshold}")


def _settings(name: str, arg: str | None, default_level: int, options: dict[str, Any]) -> _Settings:
    if arg is not None:
        try:
            options = {"level": int(arg), **options}
        except ValueError:
            raise SpecError(f"{name}: the argument is a compression level, got {arg!r}") from None
    try:
        return _Settings(**{"level": default_level, **options})
    except TypeError as exc:
        raise ConfigError(f"{name}: {exc}") from None


class ZlibCodec:
    """Deflate with the standard library; always available.

    Example:
        >>> import durable_ext
        >>> durable_ext.serdes("msgpack+zlib:9")  # doctest: +ELLIPSIS
        Pipeline('msgpack+zlib')

    """

    name: ClassVar[str] = "zlib"
    role: ClassVar[Role] = "codec"
    wire: ClassVar[bytes] = b"l"
    version: ClassVar[int] = 1

    def __init__(self, *, level: int = 6, threshold: int = 512) -> None:
        self.settings = _Settings(level=level, threshold=threshold)
        if not -1 <= level <= 9:
            raise ConfigError(f"zlib level must be -1..9, got {level}")

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> ZlibCodec:
        """``zlib`` or ``zlib:LEVEL``."""
        s = _settings("zlib", arg, 6, options)
        return cls(level=s.level, threshold=s.threshold)

    def encode(self, data: bytes, ctx: SerDesContext) -> bytes | None:
        """Deflate, or ``None`` when it would not help."""
        if len(data) < self.settings.threshold:
            return None
        out = zlib.compress(data, self.settings.level)
        return out if len(out) < len(data) else None

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


class ZstdCodec:
    """Zstandard compression; falls back to zlib frames when ``zstandard`` is missing.

    Example:
        >>> import durable_ext
        >>> durable_ext.serdes("msgpack+zstd")  # doctest: +ELLIPSIS
        Pipeline('msgpack+zstd')

    """

    name: ClassVar[str] = "zstd"
    role: ClassVar[Role] = "codec"
    wire: ClassVar[bytes] = b"z"
    version: ClassVar[int] = 1

    def __init__(self, *, level: int = 3, threshold: int = 512) -> None:
        self.settings = _Settings(level=level, threshold=threshold)
        try:
            self._zstd: Any = importlib.import_module("zstandard")
        except ImportError:
            self._zstd = None
            self._fallback = ZlibCodec(level=6, threshold=threshold)
            # Frames must say what was really written: zlib, readable anywhere.
            self.wire = ZlibCodec.wire  # type: ignore[misc]
        self._local = threading.local()

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> ZstdCodec:
        """``zstd`` or ``zstd:LEVEL``."""
        s = _settings("zstd", arg, 3, options)
        return cls(level=s.level, threshold=s.threshold)

    def encode(self, data: bytes, ctx: SerDesContext) -> bytes | None:
        """Compress, or ``None`` when it would not help."""
        if self._zstd is None:
            return self._fallback.encode(data, ctx)
        if len(data) < self.settings.threshold:
            return None
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = self._zstd.ZstdCompressor(level=self.settings.level)
        out: bytes = c.compress(data)
        return out if len(out) < len(data) else None

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
