"""The signed pickle format: any picklable value, closures included, via cloudpickle.

Unpickling runs code chosen by whoever wrote the bytes, so a payload is loaded only
after its HMAC-SHA256 signature verifies, in constant time, under one of the
configured keys. The signature binds the execution ARN and the operation id, so a
payload copied to another operation or execution is refused too. A pipeline decodes
pickle frames only if it contains this format itself.

Frame body (version 1)::

    key id length (1 byte) | key id (ASCII) | HMAC-SHA256 tag (32 bytes) | pickle
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from durable_ext._deps import require
from durable_ext.errors import ConfigError, IntegrityError, SerializationError
from durable_ext.serializers._signing import (
    ENV_VAR,
    TAG_BYTES,
    Keyring,
    KeySource,
    SigningKey,
    WrappedKey,
)
from durable_ext.serializers.base import Role, SerDesContext

cloudpickle = require("cloudpickle", extra="pickle", feature="the pickle serializer")

__all__ = ["PickleFormat", "SigningKey", "WrappedKey"]

_DOMAIN = b"durable-ext/pickle/1\x00"


class PickleFormat:
    """Pickle values with cloudpickle and sign them; verify before loading.

    Args:
        key: the signing key: bytes (at least 32), ``[ID:]BASE64`` text (several
            entries: the first signs, all verify), a :class:`pathlib.Path` to a file of
            such text, a :class:`SigningKey`, a :class:`WrappedKey` (a key unwrapped by
            the KMS codec's key provider), or any object with a zero-argument method
            returning key bytes (``signing_key``, ``key_bytes``, ``get_key_bytes``,
            ``get_key`` or ``key``) or a zero-argument callable. A provider is asked
            once, on first use. Default: the ``DURABLE_EXT_PICKLE_KEY`` variable.
        key_file: a path to a key file, instead of ``key``.
        verify_keys: further keys accepted when verifying (older keys, for rotation).
        key_id: sign with the loaded key of this id (the spec ``pickle:KEYID``), or
            the id to give a bytes or provider key.
        key_env: the environment variable read when neither ``key`` nor ``key_file``
            is given.
        protocol: the pickle protocol.

    Example:
        >>> import durable_ext
        >>> from aws_durable_execution_sdk_python.serdes import SerDesContext
        >>> s = durable_ext.serdes("pickle", options={"pickle": {"key": b"k" * 32}})
        >>> ctx = SerDesContext("op-1", "arn:exec")
        >>> s.deserialize(s.serialize(lambda x: x + 1, ctx), ctx)(1)
        2

    """

    name: ClassVar[str] = "pickle"
    role: ClassVar[Role] = "format"
    wire: ClassVar[bytes] = b"p"
    version: ClassVar[int] = 1

    def __init__(
        self,
        *,
        key: KeySource | None = None,
        key_file: str | os.PathLike[str] | None = None,
        verify_keys: Iterable[KeySource] = (),
        key_id: str | None = None,
        key_env: str = ENV_VAR,
        protocol: int = pickle.HIGHEST_PROTOCOL,
    ) -> None:
        if key_file is not None:
            if key is not None:
                raise ConfigError("pickle: give key or key_file, not both")
            key = Path(key_file)
        self.keyring = Keyring(key, verify_keys, key_id=key_id, env=key_env)
        self.protocol = protocol

    def __repr__(self) -> str:
        return f"PickleFormat({self.keyring!r})"

    @classmethod
    def from_spec(cls, arg: str | None, /, **options: Any) -> PickleFormat:
        """``pickle`` or ``pickle:KEYID`` (sign with the loaded key of that id)."""
        if arg is not None:
            options = {"key_id": arg, **options}
        return cls(**options)

    def encode(self, value: Any, ctx: SerDesContext) -> bytes:
        """Pickle ``value`` and prefix the signature."""
        try:
            data: bytes = cloudpickle.dumps(value, protocol=self.protocol)
        except Exception as exc:  # pickling fails in many ways; name the type
            t = type(value)
            raise SerializationError(
                f"cloudpickle cannot serialize a value of type {t.__module__}.{t.__qualname__} "
                f"in operation {ctx.operation_id!r} ({type(exc).__name__}: {exc})"
            ) from exc
        key_id, tag = self.keyring.sign(_DOMAIN, ctx, data)
        kid = key_id.encode("ascii")
        return bytes((len(kid),)) + kid + tag + data

    def decode(self, body: bytes, version: int, ctx: SerDesContext) -> Any:
        """Verify the signature, then unpickle; nothing is loaded from an unverified body."""
        where = f"operation {ctx.operation_id!r}"
        if version != self.version:
            raise SerializationError(
                f"{where}: pickle payload version {version} is not one this library reads "
                f"({self.version}); upgrade durable-ext"
            )
        n = body[0] if body else 0
        if n == 0:
            raise IntegrityError(f"{where}: pickle payload is unsigned; refusing to load it")
        start = 1 + n + TAG_BYTES
        if len(body) <= start:
            raise IntegrityError(f"{where}: pickle payload is truncated ({len(body)} bytes)")
        try:
            key_id = bytes(body[1 : 1 + n]).decode("ascii")
        except UnicodeDecodeError:
            raise IntegrityError(f"{where}: pickle payload has a malformed key id") from None
        data = bytes(body[start:])
        self.keyring.verify(_DOMAIN, ctx, key_id, bytes(body[1 + n : start]), data, where)
        try:
            return pickle.loads(data)
        except Exception as exc:  # signed by us, so a load fault is a deploy fault
            raise SerializationError(
                f"{where}: signed pickle payload cannot be loaded ({type(exc).__name__}: {exc}); "
                "a class or function it refers to may be missing or changed in this deploy"
            ) from exc
