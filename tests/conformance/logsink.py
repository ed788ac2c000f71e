"""Captures the log records conformance handlers emit, in place of CloudWatch Logs.

The suite checks some cases against CloudWatch Logs (``ExpectedLogs``), retrieved per
execution by the ``durableExecutionArn``/``executionArn`` field of each record.  Locally the
handlers append their records to one JSON-lines file in the directory named by
``DURABLE_EXT_CONFORMANCE_DIR``, each tagged with its execution ARN; the harness reads back one
execution's records in the shape ``filter_log_events`` returns and hands them to the suite's
own ``CloudWatchLogValidator``.

A file is used (not a list) so records written by out-of-process invocations, including one
that crashes right after logging, are kept.  The directory is fixed for the whole session
because worker processes may be forked from a server started by an earlier case.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

ENV_VAR = "DURABLE_EXT_CONFORMANCE_DIR"
_FILE = "logs.jsonl"


def session_dir() -> Path:
    """The directory of the current session's sink and markers."""
    path = os.environ.get(ENV_VAR)
    if not path:
        msg = f"{ENV_VAR} is not set; run the handlers through tests/conformance/harness.py"
        raise RuntimeError(msg)
    return Path(path)


def emit(line: str, arn: str | None) -> None:
    """Append one raw log line (plain text or a JSON object) of execution ``arn``."""
    record = {"timestamp": time.time_ns() / 1e6, "arn": arn, "message": line}
    data = (json.dumps(record) + "\n").encode()
    # One O_APPEND write per record: concurrent writers (threads, worker processes) never
    # interleave, and the line is in the file before a crash that follows it.
    fd = os.open(session_dir() / _FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def emit_json(record: dict[str, Any], arn: str | None) -> None:
    """Append a structured record, as a handler writing raw JSON to stdout would."""
    emit(json.dumps(record), arn)


def read(directory: Path, arn: str) -> list[dict[str, Any]]:
    """The records of execution ``arn`` as CloudWatch log events (``timestamp``, ``message``)."""
    path = directory / _FILE
    if not path.exists():
        return []
    events = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(raw)
        if record.get("arn") == arn:
            events.append({"timestamp": record["timestamp"], "message": record["message"]})
    return events


class _SinkHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        # The SDK's context logger puts the execution ARN in every record's extra.
        arn = getattr(record, "executionArn", None)
        try:
            line = self.format(record)
        except Exception:  # pragma: no cover - formatting errors are the stdlib's to report
            self.handleError(record)
            return
        # The Lambda runtime prefixes each line with its level, e.g. "[INFO]".
        emit(f"[{record.levelname}] {line}", arn)


def sink_logger() -> logging.Logger:
    """A stdlib logger at INFO whose records go to the sink (install with ``ctx.set_logger``)."""
    log = logging.getLogger("durable_ext.conformance.handler")
    if not any(isinstance(h, _SinkHandler) for h in log.handlers):
        log.addHandler(_SinkHandler())
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
