"""The :class:`DataKeyCache`: data keys kept for encryption and decrypted ones for replay.

The current data key of each provider and encryption context seals payloads until it
reaches a bound of age, messages or bytes (like the AWS Encryption SDK's caching
materials manager); decrypted data keys are kept too, so a workflow that checkpoints
1,000 times makes one ``GenerateDataKey`` and, on replay in a new process, one
``Decrypt`` per data key. Entries are filed under the provider's
:attr:`~durable_ext.serializers.kms.KeyProvider.cache_id` (see :func:`material_key`
and :func:`decrypt_key`), so a shared cache serves a data key only to a provider that
holds the same key material with the same access to it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping

from durable_ext._deps import require
from durable_ext.errors import ConfigError
from durable_ext.serializers._aws import BoundedCache
from durable_ext.serializers._envelope_wire import context_items
from durable_ext.serializers._key_providers import DataKey, KeyProvider

require("cryptography", extra="kms", feature="the kms and localkey codecs")
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

__all__ = ["DataKeyCache", "Material", "decrypt_key", "material_key"]


class Material:
    """The data key currently used for encryption, with its usage counters."""

    __slots__ = ("aead", "created", "data_key", "headers", "messages", "nbytes")

    def __init__(self, data_key: DataKey, now: float) -> None:
        self.data_key = data_key
        self.aead = AESGCM(data_key.plaintext)
        self.created = now
        self.messages = 0
        self.nbytes = 0
        self.headers: dict[tuple[bytes, int, int], tuple[bytes, bytes]] = {}

    def __repr__(self) -> str:
        return f"Material(key_id={self.data_key.key_id!r}, messages={self.messages})"


class DataKeyCache:
    """Caches data keys: the current one for encryption, and decrypted ones for replay.

    A data key is used for encryption until it is ``max_age`` seconds old, has
    sealed ``max_messages`` payloads, or would exceed ``max_bytes`` of plaintext;
    then a new one is generated. Decrypted data keys are kept for
    ``decrypt_max_age`` seconds, at most ``decrypt_max_entries`` of them. Share one
    cache between codecs to share data keys; give ``max_messages=1`` to use a fresh
    data key per payload.

    Args:
        max_age: seconds a data key encrypts for.
        max_messages: payloads per data key (at most 2**32: nonces are random).
        max_bytes: plaintext bytes per data key.
        decrypt_max_entries: decrypted data keys kept.
        decrypt_max_age: seconds a decrypted data key is kept.
        clock: monotonic time source.

    Example:
        >>> DataKeyCache(max_age=60, max_messages=10_000)
        DataKeyCache(max_age=60, max_messages=10000, max_bytes=4294967296)

    """

    def __init__(self, *, max_age: float = 300.0, max_messages: int = 100_000,
                 max_bytes: int = 1 << 32, decrypt_max_entries: int = 1000,
                 decrypt_max_age: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not max_age > 0:
            raise ConfigError(f"kms cache: max_age must be > 0 seconds, got {max_age!r}")
        if not 1 <= max_messages <= 1 << 32:
            raise ConfigError(f"kms cache: max_messages must be 1..2**32, got {max_messages!r}")
        if max_bytes < 1:
            raise ConfigError(f"kms cache: max_bytes must be >= 1, got {max_bytes!r}")
        if decrypt_max_entries < 0 or not decrypt_max_age > 0:
            raise ConfigError("kms cache: decrypt_max_entries must be >= 0 and "
                              "decrypt_max_age > 0")
        self.max_age = max_age
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._clock = clock
        self._current: dict[Hashable, Material] = {}
        self._lock = threading.Lock()
        self._decrypted: BoundedCache[Hashable, AESGCM] = BoundedCache(
            max_entries=decrypt_max_entries, max_bytes=decrypt_max_entries or 1,
            max_age=decrypt_max_age, clock=clock,
        )
        #: provider calls made so far: {"generate": n, "decrypt": n}
        self.calls = {"generate": 0, "decrypt": 0}

    def __repr__(self) -> str:
        return (f"DataKeyCache(max_age={self.max_age!r}, max_messages={self.max_messages!r}, "
                f"max_bytes={self.max_bytes!r})")

    def material(self, provider: KeyProvider, context: Mapping[str, str], size: int,
                 where: str) -> Material:
        """Return the data key to seal ``size`` more bytes with, counting the use."""
        return self._material(material_key(provider, context), provider, context, size, where)

    def _material(self, key: Hashable, provider: KeyProvider, context: Mapping[str, str],
                  size: int, where: str) -> Material:
        # ``key`` is material_key(provider, context), computed once by a codec.
        with self._lock:
            m = self._current.get(key)
            now = self._clock()
            if (
                m is None
                or now - m.created >= self.max_age
                or m.messages >= self.max_messages
                or (m.nbytes + size > self.max_bytes and m.messages > 0)
            ):
                # Held across the provider call on purpose: concurrent branches wait
                # for this one data key rather than each generating their own.
                data_key = provider.generate(context, where)
                self.calls["generate"] += 1
                # Providers come and go while a shared cache lives on: drop what no
                # provider may encrypt with any more.
                for old in [k for k, v in self._current.items()
                            if now - v.created >= self.max_age]:
                    del self._current[old]
                m = Material(data_key, self._clock())
                self._current[key] = m
                self._decrypted.put(
                    decrypt_key(provider, data_key.key_id, data_key.encrypted, context),
                    m.aead, 1,
                )
            m.messages += 1
            m.nbytes += size
            return m

    def aead(self, provider: KeyProvider, key_id: str, encrypted: bytes,
             context: Mapping[str, str], where: str) -> AESGCM:
        """Return the cipher of an encrypted data key, decrypting it at most once."""
        return self._aead(decrypt_key(provider, key_id, encrypted, context), provider,
                          key_id, encrypted, context, where)

    def _aead(self, key: Hashable, provider: KeyProvider, key_id: str, encrypted: bytes,
              context: Mapping[str, str], where: str) -> AESGCM:
        # ``key`` is decrypt_key(provider, key_id, encrypted, context), computed once
        # per header by a codec.
        cached = self._decrypted.get(key)
        if cached is not None:
            return cached

        def load() -> tuple[AESGCM, int]:
            plaintext = provider.decrypt(key_id, encrypted, context, where)
            with self._lock:
                self.calls["decrypt"] += 1
            return AESGCM(plaintext), 1

        return self._decrypted.get_or_load(key, load)

    def clear(self) -> None:
        """Forget every data key (the next payload generates a new one)."""
        with self._lock:
            self._current.clear()
        self._decrypted.clear()


def material_key(provider: KeyProvider, context: Mapping[str, str]) -> Hashable:
    """Name, in a cache, the data key ``provider`` encrypts with under ``context``."""
    return (provider.cache_id, context_items(context))


def decrypt_key(provider: KeyProvider, key_id: str, encrypted: bytes,
                context: Mapping[str, str]) -> Hashable:
    """Name, in a cache, the plaintext ``provider`` would decrypt ``encrypted`` to."""
    return (provider.decrypt_cache_id(key_id), encrypted, context_items(context))
