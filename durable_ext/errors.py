"""One exception hierarchy for durable_ext.

Every error the package raises on purpose derives from :class:`DurableExtError`, and
also from the standard or SDK class a caller would already catch::

    DurableExtError
    ├── ConfigError (ValueError)                  bad settings, found before any work
    │   ├── SpecError                             a serializer spec or store URL that does not parse
    │   └── UnknownPluginError                    no plugin of that name in a registry
    ├── MissingDependencyError (ImportError)      an optional library is not installed
    ├── SerializationError (SDK SerDesError)      permanent: corrupt, tampered, unsupported data
    │   ├── IntegrityError                        a checksum, signature or AEAD tag did not verify
    │   └── DisallowedContentError                content this pipeline refuses to decode
    ├── RetryableSerializationError (SDK RetryableSerDesError)
    │                                             transient: throttling, timeouts, network
    └── StoreError                                a checkpoint store failed
        ├── ConflictError                         a conditional write lost a race
        ├── NotFoundError                         no such execution, callback or record
        └── StoreUnavailableError                 the store cannot be reached right now

The SDK fails an operation permanently on ``SerDesError`` and retries the whole
invocation on ``RetryableSerDesError``; the two serialization classes map onto them.
"""

from __future__ import annotations

from aws_durable_execution_sdk_python.exceptions import RetryableSerDesError, SerDesError

__all__ = [
    "ConfigError",
    "ConflictError",
    "DisallowedContentError",
    "DurableExtError",
    "IntegrityError",
    "MissingDependencyError",
    "NotFoundError",
    "RetryableSerializationError",
    "SerializationError",
    "SpecError",
    "StoreError",
    "StoreUnavailableError",
    "UnknownPluginError",
]


class DurableExtError(Exception):
    """Base class of every error raised by durable_ext."""


class ConfigError(DurableExtError, ValueError):
    """Invalid configuration, detected before any work is done."""


class SpecError(ConfigError):
    """A serializer spec string or store URL that does not parse."""


class UnknownPluginError(ConfigError):
    """No plugin of the requested name exists in the registry."""

    def __init__(self, message: str, *, group: str, name: str, known: list[str]) -> None:
        super().__init__(message)
        self.group = group
        self.name = name
        self.known = known


class MissingDependencyError(DurableExtError, ImportError):
    """An optional library is missing; the message names the extra to install."""

    def __init__(self, message: str, *, extra: str, module: str) -> None:
        super().__init__(message)
        self.extra = extra
        self.module = module


class SerializationError(DurableExtError, SerDesError):
    """Permanent serialization failure: the SDK fails the operation, no retry."""


class IntegrityError(SerializationError):
    """A checksum, signature or authentication tag did not verify."""


class DisallowedContentError(SerializationError):
    """The payload uses a stage or type this pipeline is not allowed to decode."""


class RetryableSerializationError(DurableExtError, RetryableSerDesError):
    """Transient serialization failure: the SDK retries the whole invocation."""


class StoreError(DurableExtError):
    """A checkpoint store operation failed."""


class ConflictError(StoreError):
    """A conditional write lost a race with another writer."""


class NotFoundError(StoreError, KeyError):
    """No such execution, callback or record."""

    def __str__(self) -> str:
        # KeyError would quote the message; keep it readable.
        return str(self.args[0]) if self.args else ""


class StoreUnavailableError(StoreError):
    """The store cannot be reached right now; the operation may be retried."""
