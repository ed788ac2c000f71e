"""HMAC-SHA256 signing keys: named keys, rotation, and binding to an operation.

A :class:`Keyring` holds one signing key and any number of verification keys. Each
signature covers a domain string, the key id, the execution ARN, the operation id and
the payload, so a payload copied to another operation or execution no longer
verifies. Verification compares tags in constant time.

Keys come from bytes, from text (``[ID:]BASE64`` entries separated by commas or
whitespace, as in the ``DURABLE_EXT_PICKLE_KEY`` environment variable or a key
file), or from a key provider object that returns key bytes on demand; a provider is
asked once, on first use, so building a keyring does no I/O.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import re
import struct
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from aws_durable_execution_sdk_python.exceptions import RetryableSerDesError, SerDesError

from durable_ext.errors import ConfigError, IntegrityError, SerializationError
from durable_ext.serializers.base import SerDesContext

__all__ = [
    "ENV_VAR",
    "MIN_SECRET_BYTES",
    "PROVIDER_METHODS",
    "TAG_BYTES",
    "KeySource",
    "Keyring",
    "SigningKey",
    "WrappedKey",
    "parse_keys",
]

#: environment variable read when no key is given explicitly
ENV_VAR = "DURABLE_EXT_PICKLE_KEY"
#: HMAC-SHA256 keys shorter than its block of output add no strength: refuse them
MIN_SECRET_BYTES = 32
TAG_BYTES = hashlib.sha256().digest_size
#: zero-argument methods tried, in order, on a key provider object
PROVIDER_METHODS = ("signing_key", "key_bytes", "get_key_bytes", "get_key", "key")

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_LEN = struct.Struct(">I")
_ID_DOMAIN = b"durable-ext/key-id\x00"

#: what a key may be given as (see :meth:`Keyring.__init__`)
KeySource = Union["SigningKey", bytes, bytearray, str, os.PathLike[str], Callable[[], bytes], Any]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A named HMAC secret; the secret never appears in ``repr``.

    Example:
        >>> k = SigningKey.from_secret(b"s" * 32, key_id="2026-01")
        >>> k
        SigningKey(key_id='2026-01')

    """

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise ConfigError(
                f"key id {self.key_id!r} is invalid: use 1-64 characters of A-Z a-z 0-9 . _ -"
            )
        if not isinstance(self.secret, bytes):
            raise ConfigError(f"key {self.key_id!r}: the secret must be bytes")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"key {self.key_id!r} is {len(self.secret)} bytes; HMAC-SHA256 keys must be at "
                f"least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 32`)"
            )

    @staticmethod
    def derive_id(secret: bytes) -> str:
        """Return a stable id for an unnamed secret: a hash prefix that reveals nothing."""
        return hashlib.sha256(_ID_DOMAIN + secret).hexdigest()[:16]

    @classmethod
    def from_secret(cls, secret: bytes | bytearray, key_id: str | None = None) -> SigningKey:
        """Name ``secret`` ``key_id``, or by its derived id."""
        raw = bytes(secret)
        return cls(key_id or cls.derive_id(raw), raw)


def parse_keys(text: str, where: str) -> list[_AnyKey]:
    """Parse ``[ID:]BASE64`` entries separated by commas or whitespace.

    Args:
        text: the key text.
        where: what the text came from, for error messages (never the text itself).

    """
    keys: list[_AnyKey] = []
    for n, entry in enumerate(re.split(r"[,\s]+", text.strip()), 1):
        if not entry:
            continue
        key_id, sep, encoded = entry.rpartition(":")
        try:
            secret = binascii.a2b_base64(_pad(encoded), strict_mode=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                f"{where}: entry {n} is not [ID:]BASE64 (the secret is not valid base64)"
            ) from None
        keys.append(SigningKey.from_secret(secret, key_id if sep else None))
    if not keys:
        raise ConfigError(f"{where}: no key found")
    return keys


def _pad(encoded: str) -> str:
    encoded = encoded.replace("-", "+").replace("_", "/")  # accept the URL-safe alphabet too
    return encoded + "=" * (-len(encoded) % 4)


class WrappedKey:
    """A signing key kept encrypted, unwrapped by a key provider on first use.

    This is how a signing key comes from the KMS codec's key provider: make a data key
    once (``provider.generate(context, where)``), keep its *encrypted* form and key id
    in configuration, and let each process ask the provider to decrypt it. Any object
    with a ``decrypt(key_id, encrypted, context, where) -> bytes`` method works, such
    as :class:`~durable_ext.serializers.kms.KmsKeyProvider` or ``LocalKeyProvider``.

    Args:
        provider: the key provider that wrapped the key.
        wrapping_key_id: the key the provider wrapped it under (for KMS: the key ARN).
        encrypted: the encrypted key (``DataKey.encrypted``).
        context: the encryption context it was wrapped with.

    Example:
        >>> class Identity:
        ...     def decrypt(self, key_id, encrypted, context, where):
        ...         return encrypted
        >>> WrappedKey(Identity(), "k", b"x" * 32).key_bytes() == b"x" * 32
        True

    """

    def __init__(self, provider: Any, wrapping_key_id: str, encrypted: bytes,
                 context: Mapping[str, str] | None = None) -> None:
        if not callable(getattr(provider, "decrypt", None)):
            raise ConfigError(f"{type(provider).__name__} has no decrypt(...) method")
        self.provider = provider
        self.wrapping_key_id = wrapping_key_id
        self.encrypted = bytes(encrypted)
        self.context = dict(context or {})

    def __repr__(self) -> str:
        return f"WrappedKey({self.provider!r}, {self.wrapping_key_id!r})"

    def key_bytes(self) -> bytes:
        """Ask the provider to decrypt the key (a network call for KMS)."""
        raw = self.provider.decrypt(self.wrapping_key_id, self.encrypted, self.context,
                                    f"signing key wrapped under {self.wrapping_key_id!r}")
        return bytes(raw)


class _ProviderKey:
    """A key fetched from a provider object on first use, then kept."""

    def __init__(self, provider: Any, key_id: str | None) -> None:
        self._provider = provider
        self._key_id = key_id
        self._key: SigningKey | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"_ProviderKey({type(self._provider).__name__}, key_id={self._key_id!r})"

    @property
    def declared_id(self) -> str | None:
        return self._key_id

    def resolve(self) -> SigningKey:
        key = self._key
        if key is not None:
            return key
        with self._lock:
            if self._key is None:
                self._key = SigningKey.from_secret(self._fetch(), self._key_id)
            return self._key

    def _fetch(self) -> bytes:
        fetch = _provider_method(self._provider)
        what = type(self._provider).__name__
        try:
            raw = fetch()
        except (SerDesError, RetryableSerDesError):
            raise
        except Exception as exc:  # a provider may fail in any way; say which
            raise SerializationError(
                f"key provider {what} failed ({type(exc).__name__}: {exc})"
            ) from exc
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise ConfigError(f"key provider {what} returned {type(raw).__name__}, not bytes")
        return bytes(raw)


_AnyKey = SigningKey | _ProviderKey


def _provider_method(provider: Any) -> Callable[[], Any]:
    for name in PROVIDER_METHODS:
        method = getattr(provider, name, None)
        if callable(method):
            return method  # type: ignore[no-any-return]
    if callable(provider):
        return provider  # type: ignore[no-any-return]
    raise ConfigError(
        f"{type(provider).__name__} is not a key source: give bytes, [ID:]BASE64 text, a "
        f"path, a SigningKey, a callable returning bytes, or an object with one of the "
        f"methods {', '.join(PROVIDER_METHODS)}; for a key provider of the kms codec, "
        "wrap an encrypted key in WrappedKey"
    )


def _sources(source: KeySource, key_id: str | None) -> list[_AnyKey]:
    if isinstance(source, SigningKey):
        return [source]
    if isinstance(source, bytes | bytearray):
        return [SigningKey.from_secret(source, key_id)]
    if isinstance(source, str):
        return parse_keys(source, "key text")
    if isinstance(source, os.PathLike):
        return _read_file(Path(source))
    _provider_method(source)  # fail now, not at the first step, if it cannot work
    return [_ProviderKey(source, key_id)]


def _read_file(path: Path) -> list[_AnyKey]:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"key file {str(path)!r} cannot be read ({type(exc).__name__})") from None
    return parse_keys(text, f"key file {str(path)!r}")


class Keyring:
    """One signing key and the keys accepted when verifying (for rotation).

    Args:
        key: the signing key: bytes, ``[ID:]BASE64`` text (several entries: the first
            signs, all verify), a path to a file of such text, a :class:`SigningKey`,
            or a key provider (a zero-argument callable, or an object with one of the
            :data:`PROVIDER_METHODS`) returning key bytes.
        verify_keys: further keys accepted when verifying (older keys during rotation).
        key_id: sign with the loaded key of this id; for a bytes or provider key, the
            id to give it.
        env: the environment variable read when ``key`` is not given.

    Example:
        >>> ring = Keyring(b"k" * 32, key_id="k1")
        >>> ring.signing_id
        'k1'

    """

    def __init__(
        self,
        key: KeySource | None = None,
        verify_keys: Iterable[KeySource] = (),
        *,
        key_id: str | None = None,
        env: str = ENV_VAR,
    ) -> None:
        if key is None:
            text = os.environ.get(env)
            if not text:
                raise ConfigError(
                    f"no signing key: set the {env} environment variable to [ID:]BASE64 "
                    "(e.g. `openssl rand -base64 32`) or pass key=..."
                )
            loaded = parse_keys(text, f"environment variable {env}")
        else:
            loaded = _sources(key, key_id)
        extra = [k for src in verify_keys for k in _sources(src, None)]
        self._signing = self._pick(loaded, key_id)
        self._keys: Sequence[_AnyKey] = [*loaded, *extra]
        self._by_id: dict[str, SigningKey] | None = None
        self._lock = threading.Lock()
        if all(isinstance(k, SigningKey) for k in self._keys):
            self._table()  # nothing to fetch: report clashing ids now, not at the first replay

    @staticmethod
    def _pick(loaded: list[_AnyKey], key_id: str | None) -> _AnyKey:
        if key_id is None:
            return loaded[0]
        for k in loaded:
            kid = k.key_id if isinstance(k, SigningKey) else k.declared_id
            if kid == key_id:
                return k
        ids = [k.key_id for k in loaded if isinstance(k, SigningKey)]
        raise ConfigError(f"signing key id {key_id!r} is not among the loaded keys {ids}")

    def __repr__(self) -> str:
        return f"Keyring(keys={len(self._keys)})"

    @property
    def signing_id(self) -> str:
        """The id written into new signatures."""
        return self._signing_key().key_id

    def _signing_key(self) -> SigningKey:
        k = self._signing
        return k if isinstance(k, SigningKey) else k.resolve()

    def _table(self) -> dict[str, SigningKey]:
        table = self._by_id
        if table is None:
            with self._lock:
                table = {}
                for k in self._keys:
                    key = k if isinstance(k, SigningKey) else k.resolve()
                    other = table.get(key.key_id)
                    if other is not None and not hmac.compare_digest(other.secret, key.secret):
                        raise ConfigError(f"two different keys share the id {key.key_id!r}")
                    table.setdefault(key.key_id, key)
                self._by_id = table
        return table

    def sign(self, domain: bytes, ctx: SerDesContext, payload: bytes) -> tuple[str, bytes]:
        """Return ``(key_id, tag)`` for ``payload`` bound to ``ctx``."""
        key = self._signing_key()
        return key.key_id, _mac(key, domain, ctx, payload)

    def verify(self, domain: bytes, ctx: SerDesContext, key_id: str, tag: bytes,
               payload: bytes, where: str) -> None:
        """Raise :class:`IntegrityError` unless ``tag`` is ``payload``'s tag under ``key_id``."""
        key = self._table().get(key_id)
        if key is None:
            raise IntegrityError(
                f"{where}: signed with key id {key_id[:64]!r}, which is not among the "
                f"verification keys {sorted(self._table())}"
            )
        if not hmac.compare_digest(_mac(key, domain, ctx, payload), tag):
            raise IntegrityError(
                f"{where}: signature does not verify under key {key_id!r}: the payload was "
                "altered, signed with another key, or copied from another operation or execution"
            )


def _mac(key: SigningKey, domain: bytes, ctx: SerDesContext, payload: bytes) -> bytes:
    # Every variable-length field is length-prefixed, so no two (arn, op, id) triples
    # can produce the same signed byte string.
    h = hmac.new(key.secret, domain, hashlib.sha256)
    for part in (key.key_id.encode(), ctx.durable_execution_arn.encode("utf-8", "surrogatepass"),
                 ctx.operation_id.encode("utf-8", "surrogatepass")):
        h.update(_LEN.pack(len(part)))
        h.update(part)
    h.update(payload)
    return h.digest()
