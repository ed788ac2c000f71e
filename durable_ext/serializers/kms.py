"""Envelope encryption of checkpoint payloads: ``kms`` (AWS KMS keys) and ``localkey``.

Each payload is sealed with AES-256-GCM under a *data key*. Data keys come from a
:class:`KeyProvider`: :class:`KmsKeyProvider` asks KMS ``GenerateDataKey`` for one
under a customer key (key id, alias or ARN), :class:`LocalKeyProvider` wraps a random
one under a local 256-bit key (from ``DURABLE_EXT_LOCAL_KEY`` or a key file) for
development and tests only. The encrypted data key travels in the payload, so any process
with access to the key can decrypt it, including after key rotation.

A :class:`DataKeyCache` keeps the current data key for encryption (bounded by age,
messages and bytes, like the AWS Encryption SDK's caching materials manager) and the
data keys it has decrypted, so a workflow that checkpoints 1,000 times makes one
``GenerateDataKey`` and, on replay in a new process, one ``Decrypt`` per data key.
Cached data keys are filed under the identity of the provider that produced them
(:attr:`KeyProvider.cache_id`): a local key's fingerprint, or a KMS provider's client
and grant tokens, so a shared cache serves a data key only to a provider that holds the
same key material with the same access to it.

The AEAD associated data binds the frame header, the whole envelope header (suite,
key id, encryption context, encrypted data key), the execution ARN and the
operation id: a ciphertext copied to another operation or execution, or a header
edited in any byte, does not decrypt. The KMS encryption context is fixed per data
key (data keys are shared by many operations) and configurable.

Frame body (version 1)::

    suite (1) | flags (1) | key id | [encryption context] | edk length (2) | edk
    | nonce (12) | ciphertext and GCM tag (16)

``flags`` bit 0: bound to execution and operation; bit 1: an explicit encryption
context follows (otherwise :data:`DEFAULT_CONTEXT`). Key material never appears in
messages, logs or reprs.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import re
import struct
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

from durable_ext._deps import require
from durable_ext.errors import (
    ConfigError,
    DisallowedContentError,
    IntegrityError,
    SerializationError,
)
from durable_ext.serializers._aws import BoundedCache, LazyClient, aws_errors
from durable_ext.serializers._signing import SigningKey, parse_keys
from durable_ext.serializers.base import Role, SerDesContext
from durable_ext.serializers.frames import frame

require("cryptography", extra="kms", feature="the kms and localkey codecs")
from cryptography.exceptions import InvalidTag  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

__all__ = [
    "DEFAULT_CONTEXT",
    "KMS_KEY_ENV",
    "LOCAL_KEY_ENV",
    "DataKey",
    "DataKeyCache",
    "KeyProvider",
    "KmsCodec",
    "KmsKeyProvider",
    "LocalKeyCodec",
    "LocalKeyProvider",
]

#: environment variable holding local keys (``[ID:]BASE64``, comma separated; first encrypts)
LOCAL_KEY_ENV = "DURABLE_EXT_LOCAL_KEY"
#: environment variable naming the KMS key when neither the spec nor options do
KMS_KEY_ENV = "DURABLE_EXT_KMS_KEY_ID"
#: the KMS encryption context used when none is configured
DEFAULT_CONTEXT: Mapping[str, str] = {"durable-ext": "checkpoint"}

_SUITE_AES256_GCM = 1
_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_FLAG_BOUND = 1
_FLAG_CONTEXT = 2
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U32X2 = struct.Struct(">II")
_MAX_PARSED = 4096
#: bytes of sealed large payloads kept for reuse (see ``reuse_min_bytes``)
_REUSE_BYTES = 64 << 20
_LOCAL_DOMAIN = b"durable-ext/localkey/1\x00"
#: HMAC-SHA256 of this label under a local key names the key in caches, never the key
_FINGERPRINT_LABEL = b"durable-ext/localkey/cache-id/1"

#: key ids of the form arn:PARTITION:kms:REGION:ACCOUNT:key/UUID pack into 20-40 bytes
_KEY_ARN = re.compile(r"arn:([a-z-]{1,32}):kms:([a-z0-9-]{1,32}):(\d{12}):key/([0-9a-f-]{36})")
_KID_RAW = 0
_KID_ARN = 1

log = logging.getLogger(__name__)


# -- data keys and providers ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataKey:
    """A data key: its plaintext (never printed) and its encrypted form."""

    key_id: str
    plaintext: bytes = field(repr=False)
    encrypted: bytes = field(repr=False)


class KeyProvider(Protocol):
    """Where data keys come from.

    ``generate`` returns a fresh data key under the provider's current key;
    ``decrypt`` returns the plaintext of an encrypted data key written under
    ``key_id`` (the current key or an older one). Both bind ``context``.

    A :class:`DataKeyCache` shares data keys between providers whose ids compare
    equal, so equal ids must mean provably the same key material *and* the same right
    to use it; when that cannot be proven, the id must be unique to the provider.
    """

    #: identifies the provider's current key, and its access to it, in a shared cache
    cache_id: Hashable

    def decrypt_cache_id(self, key_id: str) -> Hashable:
        """Identify, in a shared cache, what this provider would decrypt ``key_id`` with."""
        ...

    def generate(self, context: Mapping[str, str], where: str) -> DataKey:
        """Create a data key under the current key."""
        ...

    def allows(self, key_id: str) -> bool:
        """Whether payloads written under ``key_id`` may be decrypted at all."""
        ...

    def decrypt(self, key_id: str, encrypted: bytes, context: Mapping[str, str],
                where: str) -> bytes:
        """Decrypt a data key; raise :class:`SerializationError` when it cannot."""
        ...


class KmsKeyProvider:
    """Data keys from AWS KMS.

    Args:
        key_id: the customer key that encrypts: key id, key ARN, alias name
            (``alias/orders``) or alias ARN. ``None`` makes a decrypt-only provider.
        client: a boto3 KMS client to use (else one is built on first use).
        allowed_key_ids: if set, payloads are decrypted only when written under one
            of these keys (key ARNs or bare key ids; aliases cannot be matched).
        grant_tokens: KMS grant tokens sent with each request.
        region_name: region of a client built here.
        endpoint_url: endpoint of a client built here.
        config: botocore ``Config`` of a client built here.

    Example:
        >>> KmsKeyProvider("alias/orders")
        KmsKeyProvider(key_id='alias/orders')

    """

    def __init__(self, key_id: str | None = None, *, client: Any = None,
                 allowed_key_ids: Iterable[str] | None = None,
                 grant_tokens: Iterable[str] = (), region_name: str | None = None,
                 endpoint_url: str | None = None, config: Any = None) -> None:
        if key_id is not None and (not isinstance(key_id, str) or not key_id.strip()):
            raise ConfigError(f"kms: key_id must be a non-empty string, got {key_id!r}")
        self.key_id = key_id
        self.client = LazyClient("kms", client, config, region_name=region_name,
                                 endpoint_url=endpoint_url)
        self.grant_tokens = list(grant_tokens)
        # What KMS answers depends on the credentials (and grants) asking: one client
        # object is one set of credentials, so providers share cached data keys only
        # when built on the same client. A client built here reads its credentials
        # when first used, so nothing proves it equal to another: its own identity.
        access = (_identity(client if client is not None else self.client),
                  tuple(self.grant_tokens))
        self._access: tuple[Hashable, ...] = ("kms", *access)
        self.cache_id: Hashable = (*self._access, key_id or "")
        self.allowed_key_ids: frozenset[str] | None = None
        if allowed_key_ids is not None:
            allowed = frozenset(allowed_key_ids)
            aliases = sorted(a for a in allowed if "alias/" in a)
            if aliases:
                raise ConfigError(
                    f"kms: allowed_key_ids must be key ARNs or key ids, not aliases {aliases}: "
                    "a payload records the key ARN, which an alias cannot be matched against"
                )
            self.allowed_key_ids = allowed

    def __repr__(self) -> str:
        return f"KmsKeyProvider(key_id={self.key_id!r})"

    def _grants(self) -> dict[str, Any]:
        return {"GrantTokens": self.grant_tokens} if self.grant_tokens else {}

    def decrypt_cache_id(self, key_id: str) -> Hashable:
        """Name the client and grants that decrypt, and the key the payload names."""
        return (*self._access, key_id)

    def generate(self, context: Mapping[str, str], where: str) -> DataKey:
        """Call ``GenerateDataKey`` (AES_256) under the configured key."""
        if self.key_id is None:
            raise SerializationError(
                f"{where}: no KMS key to encrypt with: write the spec as 'kms:<key id, alias "
                f"or ARN>', pass options={{'kms': {{'key_id': ...}}}}, or set {KMS_KEY_ENV}"
            )
        with aws_errors("kms", "GenerateDataKey", f"{where}, key {self.key_id!r}"):
            resp = self.client.get().generate_data_key(
                KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=dict(context),
                **self._grants(),
            )
        plaintext, key_arn = resp.get("Plaintext"), resp.get("KeyId")
        if not isinstance(plaintext, bytes) or len(plaintext) != _KEY_BYTES or not key_arn:
            raise SerializationError(f"{where}: KMS GenerateDataKey returned no 256-bit data key")
        return DataKey(str(key_arn), plaintext, bytes(resp["CiphertextBlob"]))

    def allows(self, key_id: str) -> bool:
        """Whether payloads under ``key_id`` may be decrypted."""
        allowed = self.allowed_key_ids
        if allowed is None or key_id in allowed:
            return True
        return any(key_id.endswith(f":key/{k}") for k in allowed)

    def decrypt(self, key_id: str, encrypted: bytes, context: Mapping[str, str],
                where: str) -> bytes:
        """Call ``Decrypt``, naming the key the payload says it was written under."""
        if not self.allows(key_id):
            raise DisallowedContentError(
                f"{where}: payload was encrypted under KMS key {key_id!r}, which is not in "
                "allowed_key_ids"
            )
        with aws_errors("kms", "Decrypt", f"{where}, key {key_id!r}"):
            resp = self.client.get().decrypt(
                CiphertextBlob=encrypted, KeyId=key_id, EncryptionContext=dict(context),
                EncryptionAlgorithm="SYMMETRIC_DEFAULT", **self._grants(),
            )
        plaintext = resp.get("Plaintext")
        if not isinstance(plaintext, bytes) or len(plaintext) != _KEY_BYTES:
            raise IntegrityError(f"{where}: KMS Decrypt did not return a 256-bit data key")
        return plaintext


class LocalKeyProvider:
    """Data keys wrapped with AES-256-GCM under a local key; no network involved.

    A development key: whoever can read the key text (environment, file) can open every
    payload, and nothing records, limits or revokes its use as KMS does. Use
    :class:`KmsKeyProvider` in production.

    Args:
        key: the encrypting key: 32 bytes, ``[ID:]BASE64`` text (several entries:
            the first encrypts, all decrypt), or a path to a file of such text. When
            omitted, the ``DURABLE_EXT_LOCAL_KEY`` environment variable is read.
        verify_keys: further keys accepted for decryption (older keys after rotation).
        key_id: encrypt with the loaded key of this id (or name a bytes key so).
        env: the environment variable read when ``key`` is not given.

    Example:
        >>> LocalKeyProvider(b"k" * 32, key_id="dev")
        LocalKeyProvider(key_id='dev', keys=1)

    """

    def __init__(self, key: bytes | str | os.PathLike[str] | None = None, *,
                 verify_keys: Iterable[bytes | str | os.PathLike[str]] = (),
                 key_id: str | None = None, env: str = LOCAL_KEY_ENV) -> None:
        if key is None:
            text = os.environ.get(env)
            if not text:
                raise ConfigError(
                    f"localkey: no key: set {env} to [ID:]BASE64 of 32 random bytes "
                    "(e.g. `openssl rand -base64 32`), or pass key=... or key_file=..."
                )
            loaded = _signing_keys(parse_keys(text, f"environment variable {env}"))
        else:
            loaded = _local_keys(key, key_id)
        keys = [*loaded, *(k for src in verify_keys for k in _local_keys(src, None))]
        self._aeads: dict[str, AESGCM] = {}
        self._ids: dict[str, tuple[str, str, bytes]] = {}
        for k in keys:
            if len(k.secret) != _KEY_BYTES:
                raise ConfigError(f"localkey: key {k.key_id!r} must be exactly 32 bytes (AES-256)")
            # Two keyrings may name different keys alike: the fingerprint keeps their
            # data keys apart in a shared cache, and lets equal keys share.
            ident = ("local", k.key_id, _fingerprint(k.secret))
            known = self._ids.setdefault(k.key_id, ident)
            if known != ident:
                raise ConfigError(f"localkey: key id {k.key_id!r} is given twice with different "
                                  "secrets; give each key its own id")
            self._aeads.setdefault(k.key_id, AESGCM(k.secret))
        current: SigningKey = loaded[0]
        if key_id is not None and not isinstance(key, bytes | bytearray):
            # Text, file and environment keys carry their ids: pick the one named.
            match = [k for k in loaded if k.key_id == key_id]
            if not match:
                raise ConfigError(f"localkey: key id {key_id!r} is not among the loaded keys "
                                  f"{[k.key_id for k in loaded]}")
            current = match[0]
        self.key_id: str = current.key_id
        self.cache_id: Hashable = self._ids[self.key_id]

    def __repr__(self) -> str:
        return f"LocalKeyProvider(key_id={self.key_id!r}, keys={len(self._aeads)})"

    def allows(self, key_id: str) -> bool:
        """Whether ``key_id`` is one of the configured keys."""
        return key_id in self._aeads

    @property
    def key_ids(self) -> list[str]:
        """Ids of every key that can decrypt."""
        return sorted(self._aeads)

    def decrypt_cache_id(self, key_id: str) -> Hashable:
        """Name the configured key of that id by its id and fingerprint."""
        # A key id not configured here names no key of ours: never shared.
        return self._ids.get(key_id) or ("local", key_id, self)

    def generate(self, context: Mapping[str, str], where: str) -> DataKey:
        """Make a random data key and wrap it under the current key."""
        plaintext = os.urandom(_KEY_BYTES)
        nonce = os.urandom(_NONCE_BYTES)
        aad = _wrap_aad(self.key_id, context)
        return DataKey(self.key_id, plaintext,
                       nonce + self._aeads[self.key_id].encrypt(nonce, plaintext, aad))

    def decrypt(self, key_id: str, encrypted: bytes, context: Mapping[str, str],
                where: str) -> bytes:
        """Unwrap a data key written under ``key_id``."""
        aead = self._aeads.get(key_id)
        if aead is None:
            raise SerializationError(
                f"{where}: payload was encrypted under local key {key_id[:64]!r}, which is "
                f"not configured (configured: {self.key_ids}); add it to verify_keys"
            )
        try:
            return aead.decrypt(encrypted[:_NONCE_BYTES], encrypted[_NONCE_BYTES:],
                                _wrap_aad(key_id, context))
        except (InvalidTag, ValueError):
            raise IntegrityError(
                f"{where}: the encrypted data key does not verify under local key {key_id!r}"
            ) from None


def _local_keys(source: bytes | str | os.PathLike[str], key_id: str | None) -> list[SigningKey]:
    if isinstance(source, bytes | bytearray):
        return [SigningKey.from_secret(source, key_id)]
    if isinstance(source, str):
        return _signing_keys(parse_keys(source, "localkey key text"))
    if isinstance(source, os.PathLike):
        path = Path(source)
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeError) as exc:
            raise ConfigError(
                f"localkey: key file {str(path)!r} cannot be read ({type(exc).__name__})"
            ) from None
        return _signing_keys(parse_keys(text, f"key file {str(path)!r}"))
    raise ConfigError(
        f"localkey: a key is bytes, [ID:]BASE64 text or a path, not {type(source).__name__}"
    )


def _signing_keys(keys: list[Any]) -> list[SigningKey]:
    # parse_keys only ever yields SigningKey for text; the check keeps mypy honest.
    return [k for k in keys if isinstance(k, SigningKey)]


def _wrap_aad(key_id: str, context: Mapping[str, str]) -> bytes:
    return _LOCAL_DOMAIN + _pack_str(key_id) + _pack_context(context)


def _fingerprint(secret: bytes) -> bytes:
    return hmac.digest(secret, _FINGERPRINT_LABEL, "sha256")


def _identity(obj: Any) -> Hashable:
    """Return a token equal only to the token of the very same ``obj``."""
    # A weak reference hashes and compares (in C) as its referent does, which for a
    # type without its own equality is by identity; others get a token of their own.
    if cast(Any, type(obj)).__eq__ is object.__eq__:
        try:
            return weakref.ref(obj)
        except TypeError:
            pass
    return object()


@functools.cache
def _note_development_key() -> None:
    # Once per process: a hint for whoever deploys, not a message per pipeline.
    log.warning("localkey encrypts checkpoints under a local development key; use "
                "kms:KEY (an AWS KMS key) in production")


# -- caches -------------------------------------------------------------------------------


class _Material:
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
        return f"_Material(key_id={self.data_key.key_id!r}, messages={self.messages})"


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
        self._current: dict[Hashable, _Material] = {}
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
                 where: str) -> _Material:
        """Return the data key to seal ``size`` more bytes with, counting the use."""
        return self._material(_material_key(provider, context), provider, context, size, where)

    def _material(self, key: Hashable, provider: KeyProvider, context: Mapping[str, str],
                  size: int, where: str) -> _Material:
        # ``key`` is _material_key(provider, context), computed once by a codec.
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
                m = _Material(data_key, self._clock())
                self._current[key] = m
                self._decrypted.put(
                    _decrypt_key(provider, data_key.key_id, data_key.encrypted, context),
                    m.aead, 1,
                )
            m.messages += 1
            m.nbytes += size
            return m

    def aead(self, provider: KeyProvider, key_id: str, encrypted: bytes,
             context: Mapping[str, str], where: str) -> AESGCM:
        """Return the cipher of an encrypted data key, decrypting it at most once."""
        return self._aead(_decrypt_key(provider, key_id, encrypted, context), provider,
                          key_id, encrypted, context, where)

    def _aead(self, key: Hashable, provider: KeyProvider, key_id: str, encrypted: bytes,
              context: Mapping[str, str], where: str) -> AESGCM:
        # ``key`` is _decrypt_key(provider, key_id, encrypted, context), computed once
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


def _material_key(provider: KeyProvider, context: Mapping[str, str]) -> Hashable:
    return (provider.cache_id, _context_items(context))


def _decrypt_key(provider: KeyProvider, key_id: str, encrypted: bytes,
                 context: Mapping[str, str]) -> Hashable:
    return (provider.decrypt_cache_id(key_id), encrypted, _context_items(context))


# -- wire helpers -------------------------------------------------------------------------


def _pack_str(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return _U32.pack(len(b)) + b


def _context_items(context: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(context.items()))


def _pack_context(context: Mapping[str, str]) -> bytes:
    items = _context_items(context)
    out = [bytes((len(items),))]
    for k, v in items:
        kb, vb = k.encode("utf-8"), v.encode("utf-8")
        out += [_U16.pack(len(kb)), kb, _U16.pack(len(vb)), vb]
    return b"".join(out)


def _check_context(context: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(context, Mapping):
        raise ConfigError("kms: encryption_context must be a mapping of str to str")
    items = dict(context)
    if len(items) > 255 or not all(
        isinstance(k, str) and isinstance(v, str) and k and len(k.encode()) < 65536
        and len(v.encode()) < 65536 for k, v in items.items()
    ):
        raise ConfigError("kms: encryption_context must map at most 255 non-empty str keys "
                          "to str values")
    return items


def _encode_key_id(key_id: str) -> bytes:
    m = _KEY_ARN.fullmatch(key_id)
    if m is not None and str(uuid.UUID(m.group(4))) == m.group(4):
        partition, region = m.group(1).encode(), m.group(2).encode()
        return (bytes((_KID_ARN, len(partition))) + partition + bytes((len(region),)) + region
                + int(m.group(3)).to_bytes(5, "big") + uuid.UUID(m.group(4)).bytes)
    raw = key_id.encode("utf-8")
    if len(raw) > 2048:
        raise SerializationError(f"key id is too long ({len(raw)} bytes)")
    return bytes((_KID_RAW,)) + _U16.pack(len(raw)) + raw


class _Reader:
    """Bounds-checked reads from a frame body."""

    __slots__ = ("body", "pos", "where")

    def __init__(self, body: bytes, where: str) -> None:
        self.body = body
        self.pos = 0
        self.where = where

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.body):
            raise IntegrityError(f"{self.where}: encrypted payload is truncated")
        out = self.body[self.pos : end]
        self.pos = end
        return bytes(out)

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def text(self, n: int) -> str:
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise IntegrityError(f"{self.where}: encrypted payload header is malformed") from None

    def key_id(self) -> str:
        kind = self.u8()
        if kind == _KID_RAW:
            return self.text(self.u16())
        if kind == _KID_ARN:
            partition = self.text(self.u8())
            region = self.text(self.u8())
            account = int.from_bytes(self.take(5), "big")
            key = uuid.UUID(bytes=self.take(16))
            return f"arn:{partition}:kms:{region}:{account:012d}:key/{key}"
        raise IntegrityError(f"{self.where}: encrypted payload has an unknown key id form")

    def context(self) -> dict[str, str]:
        return {self.text(self.u16()): self.text(self.u16()) for _ in range(self.u8())}


# -- the codecs -----------------------------------------------------------------------------

#: a parsed envelope header: key id, context, encrypted data key, flags, its cache key
_Parsed = tuple[str, dict[str, str], bytes, int, Hashable]


class _EnvelopeCodec:
    """The envelope format shared by ``kms`` and ``localkey``; subclasses pick the provider."""

    name: ClassVar[str]
    role: ClassVar[Role] = "codec"
    wire: ClassVar[bytes]
    version: ClassVar[int] = 1

    def __init__(self, provider: KeyProvider, *,
                 encryption_context: Mapping[str, str] | None = None, bind: bool = True,
                 cache: DataKeyCache | None = None, reuse_min_bytes: int | None = 128 << 10,
                 **cache_limits: Any) -> None:
        if cache is not None and set(cache_limits) & _CACHE_OPTIONS:
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
        self.encryption_context = _check_context(context)
        explicit = self.encryption_context != dict(DEFAULT_CONTEXT)
        self._flags = (_FLAG_BOUND if self.bind else 0) | (_FLAG_CONTEXT if explicit else 0)
        self._prefix = frame(self.wire, self.version, b"")
        self._material_key = _material_key(provider, self.encryption_context)
        # header bytes -> parsed fields and their data key's cache key: replay reads the
        # same few headers many times
        self._parsed: dict[bytes, _Parsed] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider!r}, bind={self.bind})"

    @staticmethod
    def _where(ctx: SerDesContext) -> str:
        return f"operation {ctx.operation_id!r} of execution {ctx.durable_execution_arn!r}"

    @staticmethod
    def _binding(flags: int, ctx: SerDesContext) -> bytes:
        if not flags & _FLAG_BOUND:
            return b""
        arn = ctx.durable_execution_arn.encode("utf-8", "surrogatepass")
        op = ctx.operation_id.encode("utf-8", "surrogatepass")
        # Length-prefixed, so no two (arn, operation) pairs give the same bytes.
        return _U32X2.pack(len(arn), len(op)) + arn + op

    def _header(self, m: _Material) -> tuple[bytes, bytes]:
        key = (self.wire, self.version, self._flags)
        cached = m.headers.get(key)
        if cached is None:
            dk = m.data_key
            header = (bytes((_SUITE_AES256_GCM, self._flags)) + _encode_key_id(dk.key_id)
                      + (_pack_context(self.encryption_context)
                         if self._flags & _FLAG_CONTEXT else b"")
                      + _U16.pack(len(dk.encrypted)) + dk.encrypted)
            cached = m.headers[key] = (header, self._prefix + header)
        return cached

    def encode(self, data: bytes, ctx: SerDesContext) -> bytes:
        """Seal ``data`` under the current data key."""
        reuse_key = None
        if self.reuse_min_bytes is not None and len(data) >= self.reuse_min_bytes:
            reuse_key = (ctx.durable_execution_arn, ctx.operation_id,
                         hashlib.sha256(data).digest())
            sealed = self._reuse.get(reuse_key)
            if sealed is not None:
                return sealed
        m = self.cache._material(self._material_key, self.provider, self.encryption_context,
                                 len(data), self._where(ctx))
        header, aad = self._header(m)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = header + nonce + m.aead.encrypt(nonce, data,
                                                 aad + self._binding(self._flags, ctx))
        if reuse_key is not None:
            self._reuse.put(reuse_key, sealed, len(sealed))
        return sealed

    def decode(self, body: bytes, version: int, ctx: SerDesContext) -> bytes:
        """Open a sealed body: decrypt its data key (cached), then verify and decrypt."""
        where = self._where(ctx)
        if version != self.version:
            raise SerializationError(
                f"{where}: {self.name} payload version {version} is not one this library "
                f"reads ({self.version}); upgrade durable-ext"
            )
        end = _header_end(body, where)
        header = bytes(body[:end])
        parsed = self._parsed.get(header)
        if parsed is None:
            parsed = self._parse(header, where)
        key_id, context, edk, flags, cache_key = parsed
        if len(body) - end < _NONCE_BYTES + _TAG_BYTES:
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
        aad = self._prefix + header + self._binding(flags, ctx)
        try:
            # Views, not slices: a slice would copy the whole ciphertext once more.
            view = memoryview(body)
            return aead.decrypt(view[end : end + _NONCE_BYTES], view[end + _NONCE_BYTES :], aad)
        except InvalidTag:
            raise IntegrityError(
                f"{where}: {self.name} payload does not decrypt: it was altered or truncated, "
                "or copied from another operation or execution"
            ) from None

    def _parse(self, header: bytes, where: str) -> _Parsed:
        r = _Reader(header, where)
        suite, flags = r.u8(), r.u8()
        if suite != _SUITE_AES256_GCM or flags & ~(_FLAG_BOUND | _FLAG_CONTEXT):
            raise IntegrityError(f"{where}: {self.name} payload has an unknown suite or flags")
        key_id = r.key_id()
        context = r.context() if flags & _FLAG_CONTEXT else dict(DEFAULT_CONTEXT)
        edk = r.take(r.u16())
        parsed = (key_id, context, edk, flags,
                  _decrypt_key(self.provider, key_id, edk, context))
        if len(self._parsed) >= _MAX_PARSED:
            self._parsed.clear()
        self._parsed[header] = parsed
        return parsed


def _header_end(body: bytes, where: str) -> int:
    """Where the envelope header ends, found from its length fields alone."""
    try:
        flags = body[1]
        pos = 2
        kind = body[pos]
        if kind == _KID_RAW:
            pos += 3 + (body[pos + 1] << 8 | body[pos + 2])
        elif kind == _KID_ARN:
            pos += 2 + body[pos + 1]
            pos += 1 + body[pos] + 21
        else:
            raise IntegrityError(f"{where}: encrypted payload has an unknown key id form")
        if flags & _FLAG_CONTEXT:
            n = body[pos]
            pos += 1
            for _ in range(2 * n):
                pos += 2 + (body[pos] << 8 | body[pos + 1])
        pos += 2 + (body[pos] << 8 | body[pos + 1])
    except IndexError:
        pos = len(body) + 1
    if pos > len(body):
        raise IntegrityError(f"{where}: encrypted payload is truncated")
    return pos


_CACHE_OPTIONS = frozenset({"max_age", "max_messages", "max_bytes", "decrypt_max_entries",
                            "decrypt_max_age"})
_CODEC_OPTIONS = frozenset({"reuse_min_bytes"})


def _split(options: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {k: options.pop(k) for k in list(options) if k in names}


class KmsCodec(_EnvelopeCodec):
    """AES-256-GCM envelope encryption with data keys from an AWS KMS customer key.

    Args:
        key_id: key id, key ARN, alias name or alias ARN that encrypts; ``None``
            reads ``DURABLE_EXT_KMS_KEY_ID``, and without it the codec only decrypts.
        client: a boto3 KMS client (else one is built on first use).
        allowed_key_ids: decrypt only payloads written under these keys (ARNs or ids).
        encryption_context: the KMS encryption context of every data key; it is
            written into each payload, so changing it does not break old ones.
        bind: bind each payload to its execution ARN and operation id (default on).
        cache: a :class:`DataKeyCache` to use (share one between codecs), or give
            its limits (``max_age``, ``max_messages``, ``max_bytes``,
            ``decrypt_max_entries``, ``decrypt_max_age``) directly.
        reuse_min_bytes: a payload at least this large, sealed again for the same
            execution and operation with the same content in this process, gets the
            ciphertext it got before (so ``s3`` finds the same object); ``None`` turns
            this off.
        **client_options: ``region_name``, ``endpoint_url``, ``config``,
            ``grant_tokens`` for the KMS provider.

    Example:
        >>> import durable_ext
        >>> durable_ext.serdes("msgpack+zstd+kms:alias/orders")
        Pipeline('msgpack+zstd+kms')

    """

    name: ClassVar[str] = "kms"
    wire: ClassVar[bytes] = b"k"

    def __init__(self, key_id: str | None = None, *, client: Any = None,
                 allowed_key_ids: Iterable[str] | None = None,
                 encryption_context: Mapping[str, str] | None = None, bind: bool = True,
                 cache: DataKeyCache | None = None, **options: Any) -> None:
        cache_limits = _split(options, _CACHE_OPTIONS | _CODEC_OPTIONS)
        if key_id is None:
            key_id = os.environ.get(KMS_KEY_ENV) or None
        try:
            provider = KmsKeyProvider(key_id, client=client, allowed_key_ids=allowed_key_ids,
                                      **options)
        except TypeError as exc:
            raise ConfigError(f"kms: {exc}") from None
        super().__init__(provider, encryption_context=encryption_context, bind=bind,
                         cache=cache, **cache_limits)

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> KmsCodec:
        """``kms`` or ``kms:KEY`` (a key id, key ARN, alias name or alias ARN)."""
        if arg is not None:
            if "key_id" in options:
                raise ConfigError("kms: the key is given both in the spec and as key_id")
            options = {"key_id": arg, **options}
        return cls(**options)


class LocalKeyCodec(_EnvelopeCodec):
    """The same envelope with local keys: for development and tests, no KMS needed.

    Not for production: the key is a secret in an environment variable or a file, with
    none of KMS's access control, audit trail or revocation. Building one logs a
    warning, once per process.

    Args:
        key: 32 bytes, ``[ID:]BASE64`` text, or a path to a key file; default: the
            ``DURABLE_EXT_LOCAL_KEY`` environment variable.
        key_file: a path to a key file (instead of ``key``).
        verify_keys: older keys that still decrypt.
        key_id: encrypt with the loaded key of this id.
        encryption_context, bind, cache, reuse_min_bytes: as for :class:`KmsCodec`.

    Example:
        >>> import durable_ext
        >>> durable_ext.serdes("msgpack+localkey", options={"localkey": {"key": b"k" * 32}})
        Pipeline('msgpack+localkey')

    """

    name: ClassVar[str] = "localkey"
    wire: ClassVar[bytes] = b"K"

    def __init__(self, key: bytes | str | os.PathLike[str] | None = None, *,
                 key_file: str | os.PathLike[str] | None = None,
                 verify_keys: Iterable[bytes | str | os.PathLike[str]] = (),
                 key_id: str | None = None,
                 encryption_context: Mapping[str, str] | None = None, bind: bool = True,
                 cache: DataKeyCache | None = None, **cache_limits: Any) -> None:
        unknown = set(cache_limits) - _CACHE_OPTIONS - _CODEC_OPTIONS
        if unknown:
            raise ConfigError(f"localkey: unknown options {sorted(unknown)}")
        if key_file is not None:
            if key is not None:
                raise ConfigError("localkey: give key or key_file, not both")
            key = Path(key_file)
        provider = LocalKeyProvider(key, verify_keys=verify_keys, key_id=key_id)
        super().__init__(provider, encryption_context=encryption_context, bind=bind,
                         cache=cache, **cache_limits)
        _note_development_key()

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> LocalKeyCodec:
        """``localkey`` or ``localkey:KEYID`` (encrypt with the loaded key of that id)."""
        if arg is not None:
            options = {"key_id": arg, **options}
        return cls(**options)
