"""Compression codecs: zstd (via ``zstandard``) and zlib (standard library).

A codec compresses only payloads of at least ``threshold`` bytes, and keeps the
result only when it is smaller; otherwise it writes no frame at all, so the frame
chain of a payload says whether it was compressed and with what.

Decompression is bounded by the payload's decode budget
(:mod:`durable_ext.serializers.limits`): a codec never inflates past the bytes the
payload may still produce, so a small bomb is refused, not inflated.
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
from durable_ext.serializers.limits import current_budget

__all__ = ["ZlibCodec", "ZstdCodec"]

#: input fed to a zstd decoder at a time when the frame does not declare its size: at most
#: ~64 blocks of 128 KiB come out of one slice, so the output never overshoots the budget by
#: more than that before it is checked
_ZSTD_SLICE = 256


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
    #: a payload may go out without this stage's frame: only its size depends on it
    skippable: ClassVar[bool] = True
    #: its frames are binary (entropy-coded): armored in base64 without the text test
    opaque: ClassVar[bool] = True

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
        """Inflate, within the payload's decode budget."""
        budget = current_budget()
        try:
            d = zlib.decompressobj()
            out = d.decompress(body, max(budget.remaining, 1))
            if d.unconsumed_tail:
                raise budget.too_many_bytes("the zlib stream")
            if not d.eof or d.unused_data:
                raise zlib.error("truncated stream" if not d.eof else "data after the stream")
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
        budget = current_budget()
        zstd = self._zstd
        try:
            d = getattr(self._local, "d", None)
            if d is None:
                d = self._local.d = zstd.ZstdDecompressor()
            size = zstd.get_frame_parameters(body).content_size
            if size == zstd.CONTENTSIZE_UNKNOWN:
                return self._decode_unsized(d, body, budget)
            if size > budget.remaining:
                raise budget.too_many_bytes(f"the zstd frame (declaring {size} bytes)")
            # decompress() writes into a buffer of the declared size and fails past it
            return d.decompress(body)  # type: ignore[no-any-return]
        except zstd.ZstdError as exc:
            raise SerializationError(
                f"operation {ctx.operation_id!r}: corrupt zstd payload ({exc})"
            ) from None

    def _decode_unsized(self, d: Any, body: bytes, budget: Any) -> bytes:
        # Frames written by streaming encoders do not declare their size: feed the input in
        # small slices and stop as soon as the output passes the budget.
        obj = d.decompressobj()
        parts: list[bytes] = []
        produced = 0
        view = memoryview(body)
        for start in range(0, len(body), _ZSTD_SLICE):
            chunk = obj.decompress(view[start : start + _ZSTD_SLICE])
            produced += len(chunk)
            if produced > budget.remaining:
                raise budget.too_many_bytes("the zstd frame")
            parts.append(chunk)
            if obj.eof:
                if start + _ZSTD_SLICE < len(body) or obj.unused_data:
                    raise self._zstd.ZstdError("data after the frame")
                return b"".join(parts)
        raise self._zstd.ZstdError("truncated frame")
