"""Local traces of durable executions, from the SDK's official OpenTelemetry plugin.

The plugin (``aws-durable-execution-sdk-python-otel``) derives span ids from the
execution ARN and parents the execution's spans on ``_X_AMZN_TRACE_ID``, which the
local runtime sets per invocation as the service does; so a local execution yields one
trace across its invocations, retries, waits, callbacks, branches and chained invokes.
This module gives that plugin somewhere to send spans: memory (to look at, or assert on
in tests) and/or an OTLP/HTTP endpoint (a collector, Jaeger, ...)::

    from durable_ext.tracing import LocalTraces

    traces = LocalTraces()                       # spans kept in memory

    @durable_execution(plugins=[traces.plugin()])
    def handler(event, context): ...

    print(traces.tree(arn))                      # after the execution ran

``LocalTraces(otlp_endpoint="http://127.0.0.1:4318/v1/traces")`` also exports there;
``install_global=True`` makes its provider the global one, which is what the plugins
selected with ``DURABLE_EXECUTION_PLUGINS=otel-execution`` (or ``otel-invocation``) use.

Needs the ``otel`` extra (``otlp`` for the OTLP exporter).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from durable_ext._deps import require
from durable_ext.errors import ConfigError

__all__ = ["LocalTraces", "SpanRecord", "otel_plugin"]

View = Literal["execution", "invocation"]
_ARN = "durable.execution.arn"


def _otel() -> Any:
    return require("aws_durable_execution_sdk_python_otel", extra="otel",
                   feature="tracing with OpenTelemetry")


def otel_plugin(view: View = "execution", *, provider: Any = None) -> Any:
    """Return the official plugin factory for ``view``, sending spans to ``provider``.

    ``"execution"`` is the Workflow -> operation -> attempt view that spans invocations;
    ``"invocation"`` is one trace per invocation. Without ``provider`` the plugin uses
    the global tracer provider.
    """
    otel = _otel()
    factories = {"execution": otel.ExecutionOtelPluginFactory,
                 "invocation": otel.InvocationOtelPluginFactory}
    if view not in factories:
        raise ConfigError(f"tracing view must be 'execution' or 'invocation', got {view!r}")
    return factories[view](otel.OtelPluginConfig(tracer_provider=provider))


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """A finished span, in plain values (ids as lowercase hex)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    status: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)
    links: tuple[str, ...] = ()
    service_name: str | None = None

    @property
    def execution_arn(self) -> str | None:
        """The execution this span belongs to (the plugin's ``durable.execution.arn``)."""
        value = self.attributes.get(_ARN)
        return str(value) if value is not None else None

    @classmethod
    def of(cls, span: Any) -> SpanRecord:
        """Convert an OpenTelemetry ``ReadableSpan``."""
        parent = span.parent.span_id if span.parent is not None else None
        return cls(
            name=span.name,
            trace_id=f"{span.context.trace_id:032x}",
            span_id=f"{span.context.span_id:016x}",
            parent_id=f"{parent:016x}" if parent else None,
            kind=span.kind.name,
            status=span.status.status_code.name,
            start_ns=int(span.start_time or 0),
            end_ns=int(span.end_time or 0),
            attributes=dict(span.attributes or {}),
            links=tuple(f"{link.context.span_id:016x}" for link in span.links),
            service_name=_service_name(span),
        )


def _service_name(span: Any) -> str | None:
    resource = getattr(span, "resource", None)
    value = resource.attributes.get("service.name") if resource is not None else None
    return str(value) if value is not None else None


class LocalTraces:
    """A tracer provider for durable executions run locally: memory and/or OTLP.

    Args:
        memory: Keep finished spans in memory (:meth:`spans`, :meth:`tree`).
        otlp_endpoint: Also export to this OTLP/HTTP traces URL (``otlp`` extra).
        service_name: The ``service.name`` resource attribute.
        install_global: Make this the global tracer provider (for plugins selected
            through ``DURABLE_EXECUTION_PLUGINS``, which use the global one).

    """

    def __init__(
        self,
        *,
        memory: bool = True,
        otlp_endpoint: str | None = None,
        service_name: str = "durable-ext",
        install_global: bool = False,
    ) -> None:
        _otel()
        sdk_trace = require("opentelemetry.sdk.trace", extra="otel", feature="tracing")
        export = require("opentelemetry.sdk.trace.export", extra="otel", feature="tracing")
        resources = require("opentelemetry.sdk.resources", extra="otel", feature="tracing")
        if not memory and not otlp_endpoint:
            raise ConfigError("LocalTraces needs memory=True or an otlp_endpoint")
        self.provider: Any = sdk_trace.TracerProvider(
            resource=resources.Resource.create({"service.name": service_name}))
        self._memory: Any = None
        if memory:
            in_memory = require("opentelemetry.sdk.trace.export.in_memory_span_exporter",
                                extra="otel", feature="tracing")
            self._memory = in_memory.InMemorySpanExporter()
            self.provider.add_span_processor(export.SimpleSpanProcessor(self._memory))
        if otlp_endpoint:
            otlp = require("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                           extra="otlp", feature="exporting traces over OTLP")
            # Batched: an invocation ends with the plugin's force_flush, which drains it.
            self.provider.add_span_processor(
                export.BatchSpanProcessor(otlp.OTLPSpanExporter(endpoint=otlp_endpoint)))
        if install_global:
            api = require("opentelemetry.trace", extra="otel", feature="tracing")
            api.set_tracer_provider(self.provider)
        self._lock = threading.Lock()

    def plugin(self, view: View = "execution") -> Any:
        """Return the official plugin factory for ``view``, exporting to this provider."""
        return otel_plugin(view, provider=self.provider)

    def durable_ext_plugin(self) -> Any:
        """Return durable_ext's own plugin factory (serializer and commit spans), here.

        Register it after :meth:`plugin`, so its spans are in the execution's trace.
        """
        from durable_ext.tracing_plugin import DurableExtTracingFactory

        return DurableExtTracingFactory(self.provider)

    def spans(self, arn: str | None = None) -> list[SpanRecord]:
        """Finished spans in the order they ended; only the trace(s) of ``arn`` if given.

        An execution's trace includes the executions it invoked (same trace id).
        """
        if self._memory is None:
            raise ConfigError("this LocalTraces keeps no spans in memory (memory=False)")
        with self._lock:
            records = [SpanRecord.of(s) for s in self._memory.get_finished_spans()]
        if arn is None:
            return records
        traces = {r.trace_id for r in records if r.execution_arn == arn}
        return [r for r in records if r.trace_id in traces]

    def clear(self) -> None:
        """Forget the spans kept so far."""
        if self._memory is not None:
            self._memory.clear()

    def tree(self, arn: str | None = None) -> str:
        """Render the spans as an indented tree (parents first), one line per span."""
        return render_tree(self.spans(arn))

    def flush(self) -> None:
        """Export whatever is still batched."""
        self.provider.force_flush()

    def shutdown(self) -> None:
        """Flush and stop the exporters."""
        self.provider.shutdown()


def render_tree(spans: Sequence[SpanRecord]) -> str:
    """Render ``spans`` as an indented tree; spans whose parent is absent are roots."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for s in sorted(spans, key=lambda s: (s.start_ns, s.name)):
        parent = s.parent_id if s.parent_id in ids else None
        children.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(level: Iterable[SpanRecord], depth: int) -> None:
        for s in level:
            ms = (s.end_ns - s.start_ns) / 1e6
            lines.append(f"{'  ' * depth}{s.name} [{s.status}] {ms:.1f} ms")
            walk(children.get(s.span_id, []), depth + 1)

    walk(children.get(None, []), 0)
    return "\n".join(lines)
