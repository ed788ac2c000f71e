"""durable_ext's own SDK plugin: spans for serializer stages and checkpoint commits.

Register it after the official OpenTelemetry plugin, so its spans land in the same trace::

    @durable_execution(plugins=[traces.plugin(), traces.durable_ext_plugin()])

or select both through the SDK's entry-point group:
``DURABLE_EXECUTION_PLUGINS=otel-execution,durable-ext`` (the global tracer provider).

Spans:

- ``durable_ext.serialize`` / ``durable_ext.deserialize``: one per pipeline call, with the
  pipeline (``durable_ext.serdes.pipeline``, e.g. ``msgpack+zstd``), the operation id and
  the checkpointed size in characters (``durable_ext.serdes.chars``); children of what is
  current (a step's attempt span when it serializes the step's result). Replay-aware: a
  result read back while replaying (an operation neither started in this invocation nor
  updated since the last) gets no span, so a trace shows each piece of work once.
- ``durable_ext.checkpoint``: one per checkpoint call of the local runtime's client, with
  the number of updates, under the span the official plugin made current for the
  invocation (the Workflow span in the execution view, the Invocation span in the other).

Needs the ``otel`` extra.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aws_durable_execution_sdk_python.plugin import (
    DurableInstrumentationPlugin,
    InvocationEndInfo,
    InvocationStartInfo,
    OperationStartInfo,
)

from durable_ext._deps import require
from durable_ext.observe import register, unregister

__all__ = ["FACTORY", "DurableExtTracingFactory", "DurableExtTracingPlugin"]

T = TypeVar("T")
INSTRUMENT = "durable_ext"


class DurableExtTracingPlugin(DurableInstrumentationPlugin):
    """One invocation's observer of durable_ext's work (see the module docs)."""

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer
        self._context: Any = require("opentelemetry.context", extra="otel", feature="tracing")
        self._trace: Any = require("opentelemetry.trace", extra="otel", feature="tracing")
        otel = require("aws_durable_execution_sdk_python_otel", extra="otel", feature="tracing")
        self._operation_span_id: Callable[[str, str], int] = otel.operation_id_to_span_id
        self._arn: str | None = None
        self._fresh: set[str] = set()
        self._lock = threading.Lock()
        self._invocation: Any = None

    def on_invocation_start(self, info: InvocationStartInfo) -> None:
        """Start observing: results updated since the last invocation are new here."""
        with self._lock:
            self._fresh = set(info.updated_operations)
        # the invocation's context, as the official plugin (registered first) attached it
        self._invocation = self._context.get_current()
        if info.execution_arn:
            self._arn = info.execution_arn
            register(info.execution_arn, self)

    def on_invocation_end(self, info: InvocationEndInfo) -> None:
        """Stop observing this execution."""
        if self._arn is not None:
            unregister(self._arn, self)

    def on_operation_start(self, info: OperationStartInfo) -> None:
        """Note an operation started in this invocation: its results are new work."""
        with self._lock:
            self._fresh.add(info.operation_id)

    def serializer(self, direction: str, pipeline: str, operation_id: str | None,
                   run: Callable[[], T], size: Callable[[T], int]) -> T:
        """Run an encode or decode in a span, unless it reads back replayed work."""
        if direction == "deserialize":
            with self._lock:
                replayed = operation_id is None or operation_id not in self._fresh
            if replayed:
                return run()
        attributes = {"durable_ext.serdes.pipeline": pipeline,
                      "durable.operation.id": operation_id or ""}
        # not made current: nothing runs under a payload's span, and attaching costs
        span = self._tracer.start_span(f"durable_ext.{direction}",
                                       context=self._operation_context(operation_id),
                                       attributes=attributes)
        try:
            result = run()
            span.set_attribute("durable_ext.serdes.chars", size(result))
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(exc)))
            raise
        finally:
            span.end()
        return result

    def _operation_context(self, operation_id: str | None) -> Any:
        # The official plugin gives an operation's span an id derived from the execution
        # and the operation: the payload's span goes under it, in the current trace.
        trace = self._trace
        current = trace.get_current_span().get_span_context()
        if not operation_id or self._arn is None or not current.is_valid:
            return None
        parent = trace.SpanContext(
            trace_id=current.trace_id,
            span_id=self._operation_span_id(self._arn, operation_id),
            is_remote=False, trace_flags=current.trace_flags, trace_state=current.trace_state)
        return trace.set_span_in_context(trace.NonRecordingSpan(parent))

    def commit(self, what: str, arn: str, updates: int, run: Callable[[], T]) -> T:
        """Run a checkpoint call in a span under the invocation's current span."""
        with self._tracer.start_as_current_span(
            f"durable_ext.{what}", context=self._invocation,
            attributes={"durable.execution.arn": arn, "durable_ext.commit.updates": updates},
        ):
            return run()


class DurableExtTracingFactory:
    """Builds one :class:`DurableExtTracingPlugin` per invocation (the SDK's contract).

    Args:
        provider: The tracer provider; the global one when omitted.

    """

    def __init__(self, provider: Any = None) -> None:
        self.provider = provider

    def create_plugin(self, info: InvocationStartInfo) -> DurableExtTracingPlugin:
        """Return this invocation's plugin."""
        trace = require("opentelemetry.trace", extra="otel", feature="durable_ext tracing")
        provider = self.provider or trace.get_tracer_provider()
        return DurableExtTracingPlugin(provider.get_tracer(INSTRUMENT))


FACTORY = DurableExtTracingFactory()
"""The default-configured factory the ``durable-ext`` entry point names."""
