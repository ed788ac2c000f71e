"""X-Ray trace headers as the service assigns them to a durable execution.

The service gives every invocation of an execution an ``_X_AMZN_TRACE_ID`` whose
``Root`` is the same for the whole execution, whose ``Parent`` is that invocation's own
segment, and ``Sampled=1``. An execution started by a chained invoke continues its
caller's trace: the ``XAmznTraceId`` of the ``ChainedInvokeOptions`` (what the caller's
instrumentation put there), else the caller's Root.

A top-level execution's Root is derived from its ARN and start time, so it needs no
storage and is the same in every process; a caller's header is kept in the execution's
attributes (:data:`TRACE_ATTRIBUTE`), and its Root and Sampled are the execution's. The
caller's Parent is not handed to the child's invocations: on the service it parents the
Lambda segments, not the handler's spans, and the official OpenTelemetry conformance
suite checks that the child's spans are not parented on the caller's SDK spans.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "MAX_HEADER_CHARS",
    "TRACE_ATTRIBUTE",
    "TRACE_ENV",
    "TraceHeader",
    "execution_trace",
    "invocation_header",
    "parse_header",
]

TRACE_ENV = "_X_AMZN_TRACE_ID"
"""The environment variable the Lambda runtime, the SDK's plugins and X-Ray read."""

TRACE_ATTRIBUTE = "xray"
"""Execution attribute holding the trace header an execution was started with."""

MAX_HEADER_CHARS = 256
"""Longest header taken from a caller; a longer one is ignored (a caller controls it)."""

_ROOT = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")
_SPAN = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """The parts of an X-Ray header the service sets: Root, Parent and Sampled."""

    root: str
    parent: str | None = None
    sampled: str = "1"

    def render(self) -> str:
        """``Root=...;Parent=...;Sampled=...`` (Parent left out when there is none)."""
        parts = [f"Root={self.root}"]
        if self.parent:
            parts.append(f"Parent={self.parent}")
        parts.append(f"Sampled={self.sampled}")
        return ";".join(parts)


def parse_header(header: str | None) -> TraceHeader | None:
    """Read ``header``; None when it is missing, too long or carries no valid Root.

    A malformed Parent is dropped, and a Sampled other than 0 or 1 reads as 1, as the
    service treats an undecided request.
    """
    if not header or len(header) > MAX_HEADER_CHARS:
        return None
    fields: dict[str, str] = {}
    for segment in header.split(";"):
        key, sep, value = segment.partition("=")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip().lower())
    root = fields.get("root", "")
    if not _ROOT.fullmatch(root):
        return None
    parent = fields.get("parent")
    sampled = fields.get("sampled", "1")
    return TraceHeader(
        root,
        parent if parent is not None and _SPAN.fullmatch(parent) else None,
        sampled if sampled in ("0", "1") else "1",
    )


def _hex(*parts: str, chars: int) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:chars]


def execution_trace(
    arn: str, start_ms: int, attributes: Mapping[str, str] | None = None
) -> TraceHeader:
    """Return the trace an execution runs under: its caller's, else one derived from its ARN."""
    given = parse_header((attributes or {}).get(TRACE_ATTRIBUTE))
    if given is not None:
        return given
    epoch = f"{max(0, start_ms // 1000) & 0xFFFFFFFF:08x}"
    return TraceHeader(f"1-{epoch}-{_hex('root', arn, chars=24)}")


def invocation_header(
    arn: str, start_ms: int, attributes: Mapping[str, str] | None, invocation_id: str
) -> str:
    """Return the ``_X_AMZN_TRACE_ID`` of one invocation.

    The Root and Sampled are the execution's (its caller's, for a chained invoke); the
    Parent is a segment id of the invocation's own, as the service gives: a caller's
    Parent is the service's to hang its segments under, never the handler's parent.
    """
    trace = execution_trace(arn, start_ms, attributes)
    parent = _hex("invocation", arn, invocation_id, chars=16)
    return TraceHeader(trace.root, parent, trace.sampled).render()
