"""The Lambda REST-JSON wire format: JSON bodies, timestamps and errors as boto3 reads them.

Errors carry the code in the ``x-amzn-ErrorType`` header (botocore reads it before the
body) and ``message``/``Message`` in the body, with the HTTP status the botocore model
gives that error. Without the header botocore would report the bare HTTP status as the
code, and the SDK would treat a stale token as a permanent failure instead of re-driving
the invocation.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from durable_ext.engine.timestamps import convert_timestamps
from durable_ext.errors import SERVICE_CODES

__all__ = [
    "ERROR_STATUS",
    "MAX_JSON_DEPTH",
    "ApiError",
    "check_shape",
    "decode_utf8",
    "dumps",
    "error_body",
    "lambda_model",
    "operation_to_wire",
    "parse_json",
]

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a JSON body or Invoke payload."""

ERROR_STATUS: Mapping[str, int] = MappingProxyType(
    {code: known.status for code, known in SERVICE_CODES.items()}
)
"""Error code -> HTTP status (botocore's Lambda model; the signature and access errors,
which the model does not list, as AWS answers them): from :data:`SERVICE_CODES`."""


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


def decode_utf8(raw: bytes, where: str, code: str = "InvalidRequestContentException") -> str:
    """Decode ``raw`` as strict UTF-8, or raise ``code`` naming ``where`` and the bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(code, f"{where} is not valid UTF-8 (byte {exc.start})") from None


# Outside strings, valid JSON is ASCII; inside them, escapes are removed first, so a
# string is a quote, non-quotes and a quote.
_JSON_STRING = re.compile(r'"[^"]*"')
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")


def _deeper_than(text: str, limit: int) -> bool:
    """Whether valid JSON ``text`` nests arrays and objects more than ``limit`` deep.

    Works on the brackets outside strings with C-speed string operations (removing escaped
    backslashes, then escaped quotes, follows how escapes parse, left to right): each pass
    then removes every innermost ``[]`` pair, which lowers the depth by exactly one.
    """
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    outside = _JSON_STRING.sub("", unescaped).encode("ascii", "ignore")
    skeleton = outside.translate(_ONE_KIND, _NOT_BRACKET)
    if b"[" * (limit + 1) in skeleton:
        return True
    for _ in range(limit):
        if not skeleton:
            return False
        skeleton = skeleton.replace(b"[]", b"")
    return bool(skeleton)


def parse_json(raw: bytes | str, where: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON body: strict UTF-8, at most ``max_depth`` levels of nesting.

    Raises:
        ApiError: ``InvalidRequestContentException`` saying what is wrong with ``where``.

    """
    text = decode_utf8(raw, where) if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text)
    except RecursionError:
        value, deep = None, True
    except ValueError as exc:
        raise ApiError("InvalidRequestContentException",
                       f"Could not parse {where} into json: {exc}") from None
    else:
        deep = _deeper_than(text, max_depth)
    if deep:
        raise ApiError("InvalidRequestContentException",
                       f"{where} nests deeper than {max_depth} levels")
    return value


@functools.cache
def lambda_model() -> Any:
    """Return botocore's Lambda service model (loaded once; the shapes requests must have)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("lambda")


_REPORTED_PROBLEMS = 5
_PROBLEM_CHARS = 200


def check_shape(value: Any, shape: str, where: str) -> None:
    """Check ``value`` against a shape of the model: member names, types, required members.

    botocore checks the same before it sends, so what boto3 and the SDK send always
    passes; the engine behind then only sees values of the types the model gives.

    Raises:
        ApiError: ``InvalidRequestContentException`` listing (the first few) problems.

    """
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(value, lambda_model().shape_for(shape))
    if report.has_errors():
        problems = report.generate_report().splitlines()
        listed = "; ".join(p[:_PROBLEM_CHARS] for p in problems[:_REPORTED_PROBLEMS])
        more = len(problems) - _REPORTED_PROBLEMS
        raise ApiError("InvalidRequestContentException",
                       f"{where}: {listed}" + (f" (and {more} more)" if more > 0 else ""))


def _seconds(ms: Any) -> Any:
    return ms / 1000 if isinstance(ms, int | float) and not isinstance(ms, bool) else ms


def operation_to_wire(op: Mapping[str, Any]) -> dict[str, Any]:
    """Convert an engine operation (epoch-ms timestamps) to the API's shape (epoch seconds)."""
    return convert_timestamps(op, _seconds)
