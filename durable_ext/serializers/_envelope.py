"""The envelope codec shared by ``kms`` and ``localkey``: AES-256-GCM under cached data keys.

:class:`EnvelopeCodec` seals each payload under the current data key of its
:class:`~durable_ext.serializers.kms.KeyProvider`, taken from a
:class:`~durable_ext.serializers.kms.DataKeyCache`, and opens a payload by the key id
and encrypted data key its header carries (layout in
:mod:`durable_ext.serializers._envelope_wire`). The AEAD associated data binds the frame
header, the whole envelope header and, when ``bind`` is on, the execution ARN and the
operation id. Subclasses pick the provider and the stage's name and wire id.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from durable_ext._deps import require
from durable_ext.errors import (
    ConfigError,
    DisallowedContentError,
    IntegrityError,
    SerializationError,
)
from durable_ext.serializers._aws import BoundedCache
from durable_ext.serializers._datakey_cache import DataKeyCache, Material, decrypt_key, material_key
from durable_ext.serializers._envelope_wire import (
    DEFAULT_CONTEXT,
    FLAG_BOUND,
    FLAG_CONTEXT,
    NONCE_BYTES,
    TAG_BYTES,
    binding,
    check_context,
    header_end,
    pack_header,
    read_header,
)
from durable_ext.serializers._key_providers import KeyProvider
from durable_ext.serializers.base import Role, SerDesContext
from durable_ext.serializers.frames import frame

require("cryptography", extra="kms", feature="the kms and localkey codecs")
from cryptography.exceptions import InvalidTag  # noqa: E402

__all__ = ["CACHE_OPTIONS", "CODEC_OPTIONS", "EnvelopeCodec"]

#: options of a codec that configure its own :class:`DataKeyCache`
CACHE_OPTIONS = frozenset({"max_age", "max_messages", "max_bytes", "decrypt_max_entries",
                           "decrypt_max_age"})
#: options of a codec that are neither the provider's nor the cache's
CODEC_OPTIONS = frozenset({"reuse_min_bytes"})
_MAX_PARSED = 4096
#: bytes of sealed large payloads kept for reuse (see ``reuse_min_bytes``)
_REUSE_BYTES = 64 << 20

#: a parsed envelope header: key id, context, encrypted data key, flags, its cache key
_Parsed = tuple[str, dict[str, str], bytes, int, Hashable]


class EnvelopeCodec:
    """The envelope format shared by ``kms`` and ``localkey``; subclasses pick the provider."""

    name: ClassVar[str]
    role: ClassVar[Role] = "codec"
    wire: ClassVar[bytes]
    version: ClassVar[int] = 1
    #: its frames are ciphertext: armored in base64 without the text test
    opaque: ClassVar[bool] = True

    def __init__(self, provider: KeyProvider, *,
                 encryption_context: Mapping[str, str] | None = None, bind: bool = True,
                 cache: DataKeyCache | None = None, reuse_min_bytes: int | None = 128 << 10,
                 **cache_limits: Any) -> None:
        if cache is not None and set(cache_limits) & CACHE_OPTIONS:
            raise ConfigError(f"{self.name}: give cache=... or cache limits "
                              f"{sorted(cache_limits)}, not both")
        try:
            self.cache = cache if cache is not None else DataKeyCache(**cache_limits)
        except TypeError as exc:
            raise ConfigError(f"{self.name}: {exc}") from None
        if reuse_min_bytes is not None and (
                not isinstance(reuse_min_bytes, int) or reuse_min_bytes < 1):
            raise ConfigError(f"{self.name}: reuse_min_bytes must be an int >= 1 or None, "
                              f"got {reuse_min_bytes!r}")
        self.provider = provider
        self.bind = bool(bind)
        self.reuse_min_bytes = reuse_min_bytes
        # (execution, operation, sha256 of the plaintext) -> the body sealed for it. A large
        # result serialized again for the same operation (a FLAT branch on replay, a step
        # retried in this process) gets the same ciphertext, so an S3 offload after this
        # stage finds the same content-addressed object instead of writing another.
        self._reuse: BoundedCache[tuple[str, str, bytes], bytes] = BoundedCache(
            max_entries=1024, max_bytes=_REUSE_BYTES, max_age=self.cache.max_age)
        context = DEFAULT_CONTEXT if encryption_context is None else encryption_context
        self.encryption_context = check_context(context)
        explicit = self.encryption_context != dict(DEFAULT_CONTEXT)
        self._flags = (FLAG_BOUND if self.bind else 0) | (FLAG_CONTEXT if explicit else 0)
        self._prefix = frame(self.wire, self.version, b"")
        self._material_key = material_key(provider, self.encryption_context)
        # header bytes -> parsed fields and their data key's cache key: replay reads the
        # same few headers many times
        self._parsed: dict[bytes, _Parsed] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider!r}, bind={self.bind})"

    @staticmethod
    def _where(ctx: SerDesContext) -> str:
        return f"operation {ctx.operation_id!r} of execution {ctx.durable_execution_arn!r}"

    def _header(self, m: Material) -> tuple[bytes, bytes]:
        key = (self.wire, self.version, self._flags)
        cached = m.headers.get(key)
        if cached is None:
            dk = m.data_key
            header = pack_header(self._flags, dk.key_id, self.encryption_context,
                                 dk.encrypted)
            cached = m.headers[key] = (header, self._prefix + header)
        return cached

    def encode(self, data: bytes, ctx: SerDesContext, aad: bytes = b"") -> bytes:
        """Seal ``data`` under the current data key.

        ``aad`` is more associated data, after the binding (the ``fields`` stage binds
        the field paths with it); ``decode`` must be given the same.
        """
        reuse_key = None
        if self.reuse_min_bytes is not None and len(data) >= self.reuse_min_bytes:
            digest = hashlib.sha256(data)
            if aad:
                digest.update(hashlib.sha256(aad).digest())
            reuse_key = (ctx.durable_execution_arn, ctx.operation_id, digest.digest())
            sealed = self._reuse.get(reuse_key)
            if sealed is not None:
                return sealed
        m = self.cache._material(self._material_key, self.provider, self.encryption_context,
                                 len(data), self._where(ctx))
        header, prefix = self._header(m)
        nonce = os.urandom(NONCE_BYTES)
        sealed = header + nonce + m.aead.encrypt(nonce, data,
                                                 prefix + binding(self._flags, ctx) + aad)
        if reuse_key is not None:
            self._reuse.put(reuse_key, sealed, len(sealed))
        return sealed

    def decode(self, body: bytes, version: int, ctx: SerDesContext, aad: bytes = b"") -> bytes:
        """Open a sealed body: decrypt its data key (cached), then verify and decrypt."""
        where = self._where(ctx)
        if version != self.version:
            raise SerializationError(
                f"{where}: {self.name} payload version {version} is not one this library "
                f"reads ({self.version}); upgrade durable-ext"
            )
        end = header_end(body, where)
        header = bytes(body[:end])
        parsed = self._parsed.get(header)
        if parsed is None:
            parsed = self._parse(header, where)
        key_id, context, edk, flags, cache_key = parsed
        if len(body) - end < NONCE_BYTES + TAG_BYTES:
            raise IntegrityError(f"{where}: {self.name} payload is truncated")
        if not self.provider.allows(key_id):
            # Checked here too, not only when KMS is asked: a data key this process
            # already holds must not open a payload under a key no longer allowed.
            raise DisallowedContentError(
                f"{where}: payload was encrypted under key {key_id[:200]!r}, which is not "
                f"configured or not allowed for this {self.name} stage (see allowed_key_ids, "
                "verify_keys)"
            )
        aead = self.cache._aead(cache_key, self.provider, key_id, edk, context, where)
        aad = self._prefix + header + binding(flags, ctx) + aad
        try:
            # Views, not slices: a slice would copy the whole ciphertext once more.
            view = memoryview(body)
            return aead.decrypt(view[end : end + NONCE_BYTES], view[end + NONCE_BYTES :], aad)
        except InvalidTag:
            raise IntegrityError(
                f"{where}: {self.name} payload does not decrypt: it was altered or truncated, "
                "or copied from another operation or execution"
            ) from None

    def _parse(self, header: bytes, where: str) -> _Parsed:
        key_id, context, edk, flags = read_header(header, self.name, where)
        parsed = (key_id, context, edk, flags,
                  decrypt_key(self.provider, key_id, edk, context))
        if len(self._parsed) >= _MAX_PARSED:
            self._parsed.clear()
        self._parsed[header] = parsed
        return parsed

