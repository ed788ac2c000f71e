"""The Lambda REST-JSON wire format: JSON bodies, timestamps and errors as boto3 reads them.

Errors carry the code in the ``x-amzn-ErrorType`` header (botocore reads it before the
body) and ``message``/``Message`` in the body, with the HTTP status the botocore model
gives that error. Without the header botocore would report the bare HTTP status as the
code, and the SDK would treat a stale token as a permanent failure instead of re-driving
the invocation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from durable_ext.backends._timestamps import convert_timestamps

__all__ = [
    "ERROR_STATUS",
    "ApiError",
    "dumps",
    "error_body",
    "operation_to_wire",
]

ERROR_STATUS: dict[str, int] = {
    "InvalidParameterValueException": 400,
    "InvalidRequestContentException": 400,
    "CallbackTimeoutException": 400,
    "ResourceNotFoundException": 404,
    "UnknownOperationException": 404,
    "DurableExecutionAlreadyStartedException": 409,
    "ResourceConflictException": 409,
    "RequestTooLargeException": 413,
    "UnsupportedMediaTypeException": 415,
    "TooManyRequestsException": 429,
    "ServiceException": 500,
}
"""Error code -> HTTP status, as in botocore's Lambda model (``error.httpStatusCode``)."""


class ApiError(Exception):
    """An error response: a Lambda error code, its HTTP status and a message."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else ERROR_STATUS.get(code, 400)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        # rest-json timestamps are epoch seconds; botocore parses them back to datetimes
        return value.timestamp()
    if isinstance(value, bytes):
        return value.decode()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Compact JSON with datetimes as epoch seconds."""
    return json.dumps(value, default=_default, separators=(",", ":")).encode()


def error_body(code: str, message: str) -> bytes:
    """Encode the JSON body of an error (both message spellings the model's shapes use)."""
    fault = "Service" if ERROR_STATUS.get(code, 400) >= 500 else "User"
    return dumps({"Type": fault, "message": message, "Message": message, "__type": code})


def _seconds(ms: Any) -> Any:
    return ms / 1000 if isinstance(ms, int | float) and not isinstance(ms, bool) else ms


def operation_to_wire(op: Mapping[str, Any]) -> dict[str, Any]:
    """Convert an engine operation (epoch-ms timestamps) to the API's shape (epoch seconds)."""
    return convert_timestamps(op, _seconds)
