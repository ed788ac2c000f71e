"""Captures the log records a conformance handler emits, in place of CloudWatch Logs.

The suite asserts some cases against CloudWatch Logs (``ExpectedLogs``).  Locally the
handlers write their log lines into a sink file named by ``DURABLE_EXT_CONFORMANCE_LOG``; the
harness reads the records back in the shape ``filter_log_events`` returns and hands them to
the suite's own ``CloudWatchLogValidator``.  A file (not a list) is used so records written
by an out-of-process invocation, including one that crashes right after logging, survive.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

ENV_VAR = "DURABLE_EXT_CONFORMANCE_LOG"

_lock = threading.Lock()


def emit(line: str) -> None:
    """Append one raw log line (plain text or a JSON object) to the active sink."""
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    record = {"timestamp": time.time_ns() / 1e6, "message": line}
    data = json.dumps(record) + "\n"
    with _lock, open(path, "a", encoding="utf-8") as fh:
        fh.write(data)
        # Flushed before returning so a crash (os._exit) right after logging keeps the line.
        fh.flush()
        os.fsync(fh.fileno())


def emit_json(record: dict[str, Any]) -> None:
    """Append a structured record, as a handler writing raw JSON to stdout would."""
    emit(json.dumps(record))


def read(path: str | Path) -> list[dict[str, Any]]:
    """Return the captured records as CloudWatch log events (``timestamp``, ``message``)."""
    p = Path(path)
    if not p.exists():
        return []
    events = []
    for raw in p.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            events.append(json.loads(raw))
    return events


class _SinkHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # pragma: no cover - formatting errors are the stdlib's to report
            self.handleError(record)
            return
        # The Lambda runtime prefixes each line with its level, e.g. "[INFO]".
        emit(f"[{record.levelname}] {line}")


def sink_logger() -> logging.Logger:
    """A stdlib logger, at INFO, whose records go to the sink (set with ``ctx.set_logger``)."""
    log = logging.getLogger("durable_ext.conformance.handler")
    if not any(isinstance(h, _SinkHandler) for h in log.handlers):
        log.addHandler(_SinkHandler())
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
