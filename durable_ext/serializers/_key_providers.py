"""Where data keys come from: the :class:`KeyProvider` protocol and its two providers.

:class:`KmsKeyProvider` asks KMS ``GenerateDataKey`` for a data key under a customer key
(key id, alias or ARN) and ``Decrypt`` for it back; :class:`LocalKeyProvider` wraps a
random one under a local 256-bit key (from ``DURABLE_EXT_LOCAL_KEY`` or a key file), for
development and tests only. Each provider names, in :attr:`KeyProvider.cache_id`, the key
material and the access to it that its data keys depend on, so that a shared
:class:`~durable_ext.serializers.kms.DataKeyCache` serves a data key only to a provider
with the same key and the same right to use it. Key material never appears in messages,
logs or reprs.
"""

from __future__ import annotations

import hmac
import os
import weakref
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from durable_ext._deps import require
from durable_ext.errors import (
    ConfigError,
    DisallowedContentError,
    IntegrityError,
    SerializationError,
)
from durable_ext.serializers._aws import LazyClient, aws_errors
from durable_ext.serializers._envelope_wire import KEY_BYTES, NONCE_BYTES, pack_context, pack_str
from durable_ext.serializers._signing import SigningKey, parse_keys

require("cryptography", extra="kms", feature="the kms and localkey codecs")
from cryptography.exceptions import InvalidTag  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

__all__ = [
    "KMS_KEY_ENV",
    "LOCAL_KEY_ENV",
    "DataKey",
    "KeyProvider",
    "KmsKeyProvider",
    "LocalKeyProvider",
]

#: environment variable holding local keys (``[ID:]BASE64``, comma separated; first encrypts)
LOCAL_KEY_ENV = "DURABLE_EXT_LOCAL_KEY"
#: environment variable naming the KMS key when neither the spec nor options do
KMS_KEY_ENV = "DURABLE_EXT_KMS_KEY_ID"

_LOCAL_DOMAIN = b"durable-ext/localkey/1\x00"
#: HMAC-SHA256 of this label under a local key names the key in caches, never the key
_FINGERPRINT_LABEL = b"durable-ext/localkey/cache-id/1"


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
        if not isinstance(plaintext, bytes) or len(plaintext) != KEY_BYTES or not key_arn:
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
        if not isinstance(plaintext, bytes) or len(plaintext) != KEY_BYTES:
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
            if len(k.secret) != KEY_BYTES:
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
        plaintext = os.urandom(KEY_BYTES)
        nonce = os.urandom(NONCE_BYTES)
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
            return aead.decrypt(encrypted[:NONCE_BYTES], encrypted[NONCE_BYTES:],
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
    return _LOCAL_DOMAIN + pack_str(key_id) + pack_context(context)


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

