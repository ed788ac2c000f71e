"""A telemetry backend for the official OpenTelemetry conformance suite: local spans.

``aws-durable-execution-conformance-tests-otel`` judges each case on the trace a backend
returns for the execution (X-Ray, Datadog, Dash0, an OTLP collector writing to S3); it
discovers backends through the ``aws_durable_execution_conformance_tests_otel.backends``
entry-point group, where durable_ext registers this one as ``durable-ext``. It answers
from the spans a :class:`~durable_ext.tracing.LocalTraces` in this process keeps, so the
suite's own ``validate_trace`` judges traces of executions run on the local runtime.

Select it with ``--otel-backend durable-ext`` (or ``options["otel_backend"]``) after
:func:`serve` names the spans to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from durable_ext._deps import require
from durable_ext.errors import ConfigError
from durable_ext.tracing import LocalTraces, SpanRecord

__all__ = ["LocalTracesBackendFactory", "serve"]

NAME = "durable-ext"
_served: list[LocalTraces] = []


def serve(traces: LocalTraces) -> None:
    """Answer the suite's queries from ``traces`` (replacing any served before)."""
    _served[:] = [traces]


def _suite() -> tuple[Any, Any, Any]:
    feature = "the OpenTelemetry conformance backend"
    model = require("aws_durable_execution_conformance_tests_otel.model",
                    extra="otel", feature=feature)
    polling = require("aws_durable_execution_conformance_tests_otel.polling",
                      extra="otel", feature=feature)
    common = require("aws_durable_execution_conformance_tests_otel.backends._common",
                     extra="otel", feature=feature)
    return model, polling, common


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _span(model: Any, record: SpanRecord) -> Any:
    return model.Span(
        trace_id=record.trace_id, span_id=record.span_id, name=record.name,
        start_time=_time(record.start_ns), end_time=_time(record.end_ns),
        kind=record.kind, parent_span_id=record.parent_id, status=record.status,
        attributes=dict(record.attributes),
        links=tuple(model.SpanLink(record.trace_id, link) for link in record.links),
        service_name=record.service_name,
    )


def _backend_class() -> Any:
    model, polling, common = _suite()

    class LocalTracesBackend(polling.PollingBackend):  # type: ignore[misc, name-defined]
        name = NAME

        def __init__(self, traces: LocalTraces) -> None:
            super().__init__()
            self._traces = traces

        def _lookup(self, query: Any) -> Any:
            by_trace: dict[str, list[Any]] = {}
            for record in self._traces.spans():
                by_trace.setdefault(record.trace_id, []).append(_span(model, record))
            traces = [model.Trace(trace_id=t, spans=tuple(s)) for t, s in by_trace.items()]
            return common.matching_trace(traces, query)

    return LocalTracesBackend


class LocalTracesBackendFactory:
    """What the suite's entry point names: builds the backend per validated case."""

    name = NAME
    supported_exporters = ("community", "adot")

    def create(self, options: Mapping[str, Any], *, region: str | None = None) -> Any:
        """Return a backend reading the served :class:`LocalTraces`."""
        if not _served:
            raise ConfigError("no LocalTraces is served: call "
                              "durable_ext.testing.otel_backend.serve(traces) first")
        return _backend_class()(_served[0])
