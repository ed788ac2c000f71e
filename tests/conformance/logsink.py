"""Captures the log records conformance handlers emit, in place of CloudWatch Logs.

The suite checks some cases against CloudWatch Logs (``ExpectedLogs``), retrieved per
execution by the ``durableExecutionArn``/``executionArn`` field of each record.  Locally the
handlers append their records to a JSON-lines file of their execution; the harness reads one
execution's records back in the shape ``filter_log_events`` returns and hands them to the
suite's own ``CloudWatchLogValidator``.

Files (not a list) keep records written by out-of-process invocations, including one that
crashes right after logging.  Their place is derived from the execution ARN under a fixed
directory (``$DURABLE_EXT_CONFORMANCE_DIR``, else one per user in the temp directory), so a
worker process finds it whatever environment it was forked with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

ENV_VAR = "DURABLE_EXT_CONFORMANCE_DIR"
_FILE = "logs.jsonl"


def base_dir() -> Path:
    """Where every execution's sink directory lives."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(tempfile.gettempdir()) / f"durable-ext-conformance-{os.getuid()}"


def execution_dir(arn: str) -> Path:
    """The directory of one execution's log records and markers (created on demand)."""
    path = base_dir() / hashlib.sha256(arn.encode()).hexdigest()[:32]
    path.mkdir(parents=True, exist_ok=True)
    return path


def emit(line: str, arn: str) -> None:
    """Append one raw log line (plain text or a JSON object) of execution ``arn``."""
    record = {"timestamp": time.time_ns() / 1e6, "message": line}
    data = (json.dumps(record) + "\n").encode()
    # One O_APPEND write per record: concurrent writers (threads, worker processes) never
    # interleave, and the line is in the file before a crash that follows it.
    fd = os.open(execution_dir(arn) / _FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def emit_json(record: dict[str, Any], arn: str) -> None:
    """Append a structured record, as a handler writing raw JSON to stdout would."""
    emit(json.dumps(record), arn)


def read(arn: str) -> list[dict[str, Any]]:
    """The records of execution ``arn`` as CloudWatch log events (``timestamp``, ``message``)."""
    path = execution_dir(arn) / _FILE
    if not path.exists():
        return []
    return [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines()]


def discard(arn: str) -> None:
    """Remove what execution ``arn`` left in the sink."""
    shutil.rmtree(execution_dir(arn), ignore_errors=True)


class _SinkHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        # The SDK's context logger puts the execution ARN in every record's extra.
        arn = str(getattr(record, "executionArn", "unknown-execution"))
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
