"""What durable_ext's tracing plugin costs, side by side in one run.

* serializer round trips (msgpack, two payload families): ``body`` is the pipeline's code
  without the observer test (what it was before the hook), ``off`` the public methods with
  no plugin registered (the goal: no measurable difference), ``on`` with the plugin
  observing the execution and exporting spans to memory (goal: under 10% on payloads of
  real size; a span costs microseconds, so tiny payloads pay more in proportion);
* checkpoints through the runtime's client on the memory and file stores, ``off`` and
  ``on``.

Run: ``pytest benchmarks/bench_tracing.py --benchmark-json=tracing.json`` and compare
the rows of each group as ratios.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python.lambda_service import (
    OperationAction,
    OperationSubType,
    OperationType,
    OperationUpdate,
)
from aws_durable_execution_sdk_python.serdes import SerDesContext
from checkpoints import PAYLOAD
from payloads import FAMILIES

import durable_ext
from durable_ext.backends.file import FileStore
from durable_ext.backends.memory import MemoryStore
from durable_ext.engine import Engine
from durable_ext.observe import register, unregister
from durable_ext.runtime.client import EngineClient
from durable_ext.tracing import LocalTraces
from durable_ext.tracing_plugin import DurableExtTracingPlugin

ARN = "arn:aws:lambda:us-east-1:123456789012:function:bench:$LATEST/durable-execution/b/i"
OP = "0" * 64
CTX = SerDesContext(OP, ARN)
PIPELINE = durable_ext.serdes("msgpack")
TRACES = LocalTraces()


@pytest.fixture
def observing() -> Iterator[Callable[[str], None]]:
    plugin = DurableExtTracingPlugin(TRACES.provider.get_tracer("bench"))
    plugin._fresh.add(OP)  # the decode reads this invocation's own result: it gets a span
    arns: list[str] = []

    def on(arn: str) -> None:
        plugin._arn = arn
        register(arn, plugin)
        arns.append(arn)

    yield on
    for arn in arns:
        unregister(arn, plugin)
    TRACES.clear()


@pytest.mark.parametrize("family", ["small_mixed", "orders_1000"])
@pytest.mark.parametrize("side", ["body", "off", "on"])
def test_serdes_round_trip(benchmark: Any, observing: Any, family: str, side: str) -> None:
    value = FAMILIES[family]()
    if side == "body":
        def run() -> Any:
            return PIPELINE.deserialize(PIPELINE.serialize(value, CTX, False), CTX, False)
    else:
        if side == "on":
            observing(ARN)

        def run() -> Any:
            return PIPELINE.deserialize(PIPELINE.serialize(value, CTX), CTX)
    assert run() == value
    benchmark.group = f"tracing serdes {family}"
    benchmark.extra_info.update(suite="tracing", side=side, family=family)
    benchmark(run)
    TRACES.clear()


def _updates(op_id: str) -> list[OperationUpdate]:
    common: dict[str, Any] = {"operation_id": op_id, "operation_type": OperationType.STEP,
                              "sub_type": OperationSubType.STEP, "name": "s"}
    return [OperationUpdate(action=OperationAction.START, **common),
            OperationUpdate(action=OperationAction.SUCCEED, payload=PAYLOAD, **common)]


@pytest.mark.parametrize("store", ["memory", "file"])
@pytest.mark.parametrize("side", ["off", "on"])
def test_checkpoint(benchmark: Any, observing: Any, side: str, store: str,
                    tmp_path: Path) -> None:
    engine = Engine(MemoryStore() if store == "memory" else FileStore(tmp_path / "store"))
    arn, _ = engine.start("bench", "{}")
    inv = engine.begin_invocation(arn)
    assert inv is not None
    client = EngineClient(engine)
    token = inv.token
    counter = itertools.count()
    if side == "on":
        observing(arn)

    def one() -> None:
        nonlocal token
        out = client.checkpoint(arn, token, _updates(f"b{next(counter)}"), None)
        token = out.checkpoint_token or ""

    benchmark.group = f"tracing checkpoint {store}"
    benchmark.extra_info.update(suite="tracing", side=side, store=store)
    benchmark.pedantic(one, rounds=400, iterations=1, warmup_rounds=5)
    TRACES.clear()
