"""The pytest plugin decodes results of registered classes it did not see encoded.

An operation's serdes is noted when the test runs it; executions started on the runtime
directly, or read back from a store another runtime wrote, need the types (``types=``,
the marker, :meth:`DurableTestRuntime.decode_with`) or the handler's own
``default_serdes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import StepConfig

import durable_ext
from durable_ext.errors import SerializationError
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.defaults import handler_serdes
from durable_ext.testing.plugin import DurableTestRuntime, ExecutionRun


@dataclass(frozen=True)
class Order:
    id: str
    lines: tuple[str, ...]


def _order(event: dict[str, Any]) -> Order:
    # long enough for zstd to pay off, so the msgpack+zstd cases hold compressed frames
    return Order(event["id"], tuple(f"sku-{i:04d} widget, blue" for i in range(60)))


def _step_handler(spec: str) -> Any:
    serdes = durable_ext.serdes(spec, types=[Order])

    @durable_execution
    def handler(event: dict[str, Any], ctx: DurableContext) -> int:
        order = ctx.step(lambda _: _order(event), name="load",
                         config=StepConfig(serdes=serdes))
        return len(order.lines)

    return handler


@durable_execution
@durable_ext.default_serdes("msgpack+zstd", types=[Order])
def by_default(event: dict[str, Any], ctx: DurableContext) -> int:
    order = ctx.step(lambda _: _order(event), name="load")
    return len(order.lines)


def _started_on_the_runtime(harness: DurableTestRuntime, handler: Any) -> ExecutionRun:
    """Run ``handler`` registered on the runtime itself: the test sees no serdes."""
    harness.runtime.register("direct", handler)
    arn = harness.runtime.start("direct", {"id": "o-1"}, "o-1")
    harness.run_until_idle()
    run = ExecutionRun(harness, arn)
    assert run.result == 60
    return run


@pytest.mark.parametrize("spec", ["msgpack", "msgpack+zstd"])
def test_without_the_types_the_class_is_named(durable_runtime: DurableTestRuntime,
                                              spec: str) -> None:
    run = _started_on_the_runtime(durable_runtime, _step_handler(spec))
    with pytest.raises(SerializationError, match="unregistered type tag 'Order'"):
        _ = run.operation("load").value
    view = run.operation("load").view
    assert view is not None and view["Encoding"] == spec
    assert view["Value"]["$type"] == "Order"


@pytest.mark.parametrize("spec", ["msgpack", "msgpack+zstd"])
def test_decode_with_types(durable_runtime: DurableTestRuntime, spec: str) -> None:
    run = _started_on_the_runtime(durable_runtime.decode_with(types=[Order]),
                                  _step_handler(spec))
    assert run.operation("load").value == _order({"id": "o-1"})
    view = run.operation("load").view
    assert view is not None and view["Value"]["id"] == "o-1"


@pytest.mark.durable(types=[Order], serdes="msgpack+zstd")
def test_types_by_marker(durable_runtime: DurableTestRuntime) -> None:
    run = _started_on_the_runtime(durable_runtime, _step_handler("msgpack+zstd"))
    assert run.operation("load").value == _order({"id": "o-1"})


def test_decode_with_a_serdes_object(durable_runtime: DurableTestRuntime) -> None:
    durable_runtime.decode_with(durable_ext.serdes("msgpack+zstd", types=[Order]))
    run = _started_on_the_runtime(durable_runtime, _step_handler("msgpack+zstd"))
    assert run.operation("load").value.lines[-1] == "sku-0059 widget, blue"


def test_a_runtime_constructed_with_types() -> None:
    with Runtime(backend="memory://", clock=VirtualClock()) as rt:
        harness = DurableTestRuntime(rt, types=[Order])
        run = _started_on_the_runtime(harness, _step_handler("msgpack"))
        assert run.operation("load").value.id == "o-1"


def test_the_handlers_default_serdes_reads_a_stored_execution(tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'durable'}"
    with Runtime(backend=store, clock=VirtualClock()) as rt:
        run = DurableTestRuntime(rt).run(by_default, {"id": "o-9"}, name="o-9")
        arn = run.arn
        assert run.result == 60
    # Another runtime over the same store has seen nothing run: only the handler knows.
    with Runtime(backend=store, clock=VirtualClock()) as rt:
        harness = DurableTestRuntime(rt)
        stored = ExecutionRun(harness, arn)
        with pytest.raises(SerializationError, match="unregistered type tag 'Order'"):
            _ = stored.operation("load").value
        assert f":function:{harness.register(by_default)}:" in arn
        assert stored.operation("load").value == _order({"id": "o-9"})
        view = stored.operation("load").view
        assert view is not None and view["Encoding"] == "msgpack+zstd"


def test_default_serdes_is_found_under_durable_execution() -> None:
    found = handler_serdes(by_default)
    assert found is not None and repr(found) == "Pipeline('msgpack+zstd')"
    assert handler_serdes(_step_handler("msgpack")) is None
