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
key (data keys are shared by many operations) and configurable. Key material never
appears in messages, logs or reprs.

This module holds the two stages and is where their public names are imported from;
the parts live in private modules, each with one job: the providers
(``_key_providers``), the cache (``_datakey_cache``), the codec both stages share
(``_envelope``) and the frame body's bytes (``_envelope_wire``, where its layout is
drawn).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from durable_ext.errors import ConfigError
from durable_ext.serializers._datakey_cache import DataKeyCache
from durable_ext.serializers._envelope import CACHE_OPTIONS, CODEC_OPTIONS, EnvelopeCodec
from durable_ext.serializers._envelope_wire import DEFAULT_CONTEXT
from durable_ext.serializers._key_providers import (
    KMS_KEY_ENV,
    LOCAL_KEY_ENV,
    DataKey,
    KeyProvider,
    KmsKeyProvider,
    LocalKeyProvider,
)

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

log = logging.getLogger(__name__)


@functools.cache
def _note_development_key() -> None:
    # Once per process: a hint for whoever deploys, not a message per pipeline.
    log.warning("localkey encrypts checkpoints under a local development key; use "
                "kms:KEY (an AWS KMS key) in production")


def _split(options: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {k: options.pop(k) for k in list(options) if k in names}


class KmsCodec(EnvelopeCodec):
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
        cache_limits = _split(options, CACHE_OPTIONS | CODEC_OPTIONS)
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


class LocalKeyCodec(EnvelopeCodec):
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
        unknown = set(cache_limits) - CACHE_OPTIONS - CODEC_OPTIONS
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
