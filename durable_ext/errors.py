"""One exception hierarchy for durable_ext.

Every error the package raises on purpose derives from :class:`DurableExtError`, and
also from the standard or SDK class a caller would already catch::

    DurableExtError
    ├── ConfigError (ValueError)                  bad settings, found before any work
    │   ├── SpecError                             a serializer spec or store URL that does not parse
    │   ├── HandlerLoadError                      a handler reference that cannot be imported
    │   └── UnknownPluginError                    no plugin of that name in a registry
    ├── InvalidParameterValueError (ValueError)   the service refused a request's parameters
    │   └── InvalidCheckpointTokenError           a stale or foreign token (the SDK retries)
    ├── MissingDependencyError (ImportError)      an optional library is not installed
    ├── ReplayDivergenceError (AssertionError)    a handler leaves its recorded history
    ├── SerializationError (SDK SerDesError)      permanent: corrupt, tampered, unsupported data
    │   ├── IntegrityError                        a checksum, signature or AEAD tag did not verify
    │   └── DisallowedContentError                content this pipeline refuses to decode
    ├── RetryableSerializationError (SDK RetryableSerDesError)
    │                                             transient: throttling, timeouts, network
    └── StoreError                                a checkpoint store failed
        ├── ConflictError                         a conditional write lost a race
        │   └── ExecutionAlreadyStartedError      the name is taken with another input
        ├── NotFoundError                         no such execution, callback or record
        └── StoreUnavailableError                 the store cannot be reached right now

The SDK fails an operation permanently on ``SerDesError`` and retries the whole
invocation on ``RetryableSerDesError``; the two serialization classes map onto them.

:data:`SERVICE_ERRORS` is the one table from these classes to the Lambda API's error
codes (code, HTTP status, retryable), read by the HTTP API, the SDK client adapters and
the Lambda control plane; :func:`error_for_code` reads it backwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from aws_durable_execution_sdk_python.exceptions import RetryableSerDesError, SerDesError

__all__ = [
    "SERVICE_CODES",
    "SERVICE_ERRORS",
    "ConfigError",
    "ConflictError",
    "DisallowedContentError",
    "DurableExtError",
    "ExecutionAlreadyStartedError",
    "HandlerLoadError",
    "IntegrityError",
    "InvalidCheckpointTokenError",
    "InvalidParameterValueError",
    "MissingDependencyError",
    "NotFoundError",
    "ReplayDivergenceError",
    "RetryableSerializationError",
    "SerializationError",
    "ServiceCode",
    "SpecError",
    "StoreError",
    "StoreUnavailableError",
    "UnknownPluginError",
    "error_for_code",
    "service_code",
]


class DurableExtError(Exception):
    """Base class of every error raised by durable_ext."""


class ConfigError(DurableExtError, ValueError):
    """Invalid configuration, detected before any work is done."""


class SpecError(ConfigError):
    """A serializer spec string or store URL that does not parse."""


class HandlerLoadError(ConfigError):
    """A handler reference that cannot be imported; the message says why and the fix."""


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


class ReplayDivergenceError(DurableExtError, AssertionError):
    """A handler does not replay its recorded history; ``result`` says where and why."""

    def __init__(self, message: str, *, result: object = None) -> None:
        super().__init__(message)
        self.result = result


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


class InvalidParameterValueError(DurableExtError, ValueError):
    """The service refused a request's parameters (``InvalidParameterValueException``)."""


class InvalidCheckpointTokenError(InvalidParameterValueError):
    """A stale or foreign checkpoint token: the SDK ends the invocation and it is retried."""

    def __init__(self, message: str = "Invalid checkpoint token") -> None:
        super().__init__(message)


class ExecutionAlreadyStartedError(ConflictError):
    """The execution name is taken with another input (``DurableExecutionAlreadyStarted``)."""


# -- the service's error codes ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceCode:
    """An error code of the Lambda durable-execution API.

    Attributes:
        code: The code, as in ``x-amzn-ErrorType`` and botocore's ``Error.Code``.
        status: Its HTTP status (botocore's Lambda model; 503 for a store outage).
        retryable: Whether the same call may succeed later (throttling, outages, and a
            stale checkpoint token, after which the SDK retries the invocation).

    """

    code: str
    status: int
    retryable: bool = False


_CODES = (
    ServiceCode("InvalidParameterValueException", 400),
    ServiceCode("InvalidRequestContentException", 400),
    ServiceCode("CallbackTimeoutException", 400),
    ServiceCode("IncompleteSignatureException", 400),
    ServiceCode("AccessDeniedException", 403),
    ServiceCode("InvalidSignatureException", 403),
    ServiceCode("MissingAuthenticationTokenException", 403),
    ServiceCode("UnrecognizedClientException", 403),
    ServiceCode("ResourceNotFoundException", 404),
    ServiceCode("UnknownOperationException", 404),
    ServiceCode("DurableExecutionAlreadyStartedException", 409),
    ServiceCode("ResourceConflictException", 409),
    ServiceCode("RequestTooLargeException", 413),
    ServiceCode("SerializedRequestEntityTooLargeException", 413),
    ServiceCode("UnsupportedMediaTypeException", 415),
    ServiceCode("TooManyRequestsException", 429, retryable=True),
    ServiceCode("ServiceException", 500, retryable=True),
)
SERVICE_CODES: Mapping[str, ServiceCode] = MappingProxyType({c.code: c for c in _CODES})
"""Every error code the local API answers, by code."""

SERVICE_ERRORS: tuple[tuple[type[DurableExtError], ServiceCode], ...] = (
    (InvalidCheckpointTokenError, ServiceCode("InvalidParameterValueException", 400, True)),
    (ExecutionAlreadyStartedError, SERVICE_CODES["DurableExecutionAlreadyStartedException"]),
    (InvalidParameterValueError, SERVICE_CODES["InvalidParameterValueException"]),
    (ConfigError, SERVICE_CODES["InvalidParameterValueException"]),
    (NotFoundError, SERVICE_CODES["ResourceNotFoundException"]),
    (ConflictError, SERVICE_CODES["ResourceConflictException"]),
    (StoreUnavailableError, ServiceCode("ServiceException", 503, True)),
)
"""Our error classes and the code each is answered with; the first match wins, so a
subclass comes before its base. Every translator (the HTTP API, the SDK client adapters,
the Lambda control plane) reads this table."""

#: codes the service answers that mean one of our classes, beyond those in SERVICE_ERRORS
_ALIASES: Mapping[str, type[DurableExtError]] = MappingProxyType({
    "CallbackTimeoutException": NotFoundError,
    "InvalidRequestContentException": InvalidParameterValueError,
    "RequestTooLargeException": InvalidParameterValueError,
    "SerializedRequestEntityTooLargeException": InvalidParameterValueError,
    "ValidationException": InvalidParameterValueError,
    "UnsupportedMediaTypeException": InvalidParameterValueError,
    "TooManyRequestsException": StoreUnavailableError,
    "ServiceException": StoreUnavailableError,
})
_TOKEN_MESSAGE = "invalid checkpoint token"


def service_code(exc: BaseException) -> ServiceCode:
    """Return the code ``exc`` is answered with (``ServiceException`` for anything else)."""
    for cls, code in SERVICE_ERRORS:
        if isinstance(exc, cls):
            return code
    return SERVICE_CODES["ServiceException"]


def error_for_code(code: str, message: str) -> DurableExtError:
    """Rebuild our error from a service error code and message (the reverse of the table).

    The service answers a stale token with ``InvalidParameterValueException`` and the
    message "Invalid checkpoint token"; that is how the SDK tells the two apart too.
    """
    if code == "InvalidParameterValueException" and message.lower().startswith(_TOKEN_MESSAGE):
        return InvalidCheckpointTokenError(message)
    for cls, known in SERVICE_ERRORS:
        if known.code == code and cls is not InvalidCheckpointTokenError:
            return cls(message)
    cls = _ALIASES.get(code, StoreError)
    return cls(message)
