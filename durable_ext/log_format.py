"""A one-line JSON log formatter shaped for CloudWatch Logs Insights.

Every record becomes one JSON object on one line. Logs Insights discovers the keys of
JSON log events by itself, so the durable fields added by
:mod:`durable_ext.logging` (``executionArn``, ``operationId``, ``operationName``,
``parentId``, ``attempt``, ``replayed``) can be filtered and aggregated directly::

    import logging, sys
    from durable_ext.log_format import JsonFormatter

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)

    # in Logs Insights:
    # fields @timestamp, level, message, operationName, attempt
    # | filter executionArn = "arn:aws:lambda:...:durable-execution/..."
    # | sort @timestamp asc

See ``docs/logging.md`` for more queries.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["JsonFormatter"]

# Attributes every LogRecord has; anything else on a record came from `extra=` or a
# filter and is written out as a field of its own.
_STANDARD = frozenset(
    vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))
) | {"message", "asctime", "taskName"}
_DURABLE = ("executionArn", "operationId", "operationName", "parentId", "attempt", "replayed")
# Line breaks to str.splitlines (and so to log shippers and `grep`) that JSON may leave
# raw; it already escapes every control character below U+0020 (\n \r \v \f \x1c-\x1e).
_BREAKS = (("\x85", "\\u0085"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON objects.

    One record is one line for any line splitter: besides what JSON escapes, NEL
    (U+0085) and the Unicode line and paragraph separators (U+2028, U+2029) are written
    as JSON ``u`` escapes; all other text is written as is.

    Keys, in order: ``timestamp`` (ISO 8601, UTC, milliseconds), ``level``,
    ``logger``, ``message``, ``location`` (``module.function:line``), ``thread``, the
    durable fields when present, ``requestId`` (from the Lambda runtime's
    ``aws_request_id``), every other ``extra`` attribute, then ``exception``,
    ``exceptionType`` and ``stack`` when the record carries them. Values JSON cannot
    hold are written with ``str()``; a message that fails to format is logged with
    its raw template rather than lost.

    Example:
        >>> rec = logging.LogRecord("app", logging.INFO, "f.py", 3, "hi %s", ("you",), None)
        >>> json.loads(JsonFormatter(static={"service": "orders"}).format(rec))["message"]
        'hi you'

    """

    def __init__(
        self,
        *,
        static: Mapping[str, Any] | None = None,
        drop: Iterable[str] = (),
    ) -> None:
        """Create the formatter.

        Args:
            static: Fields added to every line (service name, version, ...).
            drop: Attribute names never written out (e.g. noisy ``extra`` keys).

        """
        super().__init__()
        self._static = dict(static or {})
        self._skip = _STANDARD | frozenset(drop) | {"aws_request_id"}

    def format(self, record: logging.LogRecord) -> str:
        """Return ``record`` as one line of JSON."""
        out: dict[str, Any] = {
            "timestamp": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(
                timespec="milliseconds"
            ).replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._message(record),
            "location": f"{record.module}.{record.funcName}:{record.lineno}",
            "thread": record.threadName,
        }
        out.update(self._static)
        d = record.__dict__
        for key in _DURABLE:
            value = d.get(key)
            if value is not None:
                out[key] = value
        request_id = d.get("aws_request_id")
        if request_id:
            out["requestId"] = request_id
        for key, value in d.items():
            if key not in self._skip and key not in out and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            out["exceptionType"] = record.exc_info[0].__name__
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(out, default=str, ensure_ascii=False)
        # isascii() is O(1) in CPython, so the usual all-ASCII line pays no scan.
        if not line.isascii():
            for raw, escaped in _BREAKS:
                if raw in line:
                    line = line.replace(raw, escaped)
        return line

    @staticmethod
    def _message(record: logging.LogRecord) -> str:
        try:
            return record.getMessage()
        except Exception as exc:  # a bad %-template must not lose the line
            failure = f"{type(exc).__name__}: {exc}"
            return f"{record.msg!s} (format failed: {failure}; args={record.args!r})"
