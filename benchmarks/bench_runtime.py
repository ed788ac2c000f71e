"""End-to-end runtime cost, side by side with the SDK floor and the testing SDK's runner.

* ``e2e-100``: one execution of 100 steps (one invocation).
  - ``floor``: the SDK itself with a service client that stores nothing (the lowest cost
    any backend can reach: the SDK's own step and checkpoint-batching overhead);
    ``floor-fast-stop``: the same with the SDK's stop poll shortened as the runtime does
    while it runs an invocation (:func:`durable_ext.runtime.invoker.fast_sdk_stop`), so
    the runtime rows are compared with a floor that has the same SDK setting;
  - ``runtime-memory`` / ``runtime-file`` / ``runtime-file-nofsync``:
    :class:`durable_ext.runtime.Runtime` on ``memory://``, ``file://`` (an fsync per
    checkpoint, the default) and ``file://...?fsync=false``.
* ``waits-1000``: 1,000 steps with a 60 s wait after every 10th step (101 invocations,
  each replaying the steps before it) under virtual time.
  - ``testing-runner``: the testing SDK's ``DurableFunctionTestRunner`` (skip_time);
  - ``runtime-memory`` / ``runtime-file`` / ``runtime-file-nofsync``: Runtime with a
    :class:`VirtualClock`; ``runtime-memory-process``: the same with
    ``isolation="process"`` (a forked worker per invocation).

Run: ``pytest benchmarks/bench_runtime.py --benchmark-json=runtime.json`` then
``python benchmarks/bench_runtime_report.py runtime.json``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
from aws_durable_execution_sdk_python import (
    DurableContext,
    StepContext,
    durable_execution,
    durable_step,
)
from aws_durable_execution_sdk_python.config import Duration
from aws_durable_execution_sdk_python.execution import (
    DurableExecutionInvocationInputWithClient,
    InitialExecutionState,
)
from aws_durable_execution_sdk_python.lambda_service import (
    ExecutionDetails,
    Operation,
    OperationStatus,
    OperationType,
    OperationUpdate,
)

from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.runtime.client import ServiceClient
from durable_ext.runtime.invoker import LambdaContextStub, fast_sdk_stop


@durable_step
def inc(_: StepContext, x: int) -> int:
    return x + 1


@durable_execution
def chain(event: dict[str, Any], ctx: DurableContext) -> int:
    x = 0
    for i in range(event["n"]):
        x = ctx.step(inc(x), name=f"s{i}")
        if event.get("wait_every") and (i + 1) % event["wait_every"] == 0:
            ctx.wait(Duration.from_seconds(60), name=f"w{i}")
    return x


class NullClient(ServiceClient):
    """A DurableServiceClient that stores nothing: every checkpoint just gets a new token."""

    def __init__(self) -> None:
        self._tokens = itertools.count()

    def _checkpoint(
        self, arn: str, token: str, updates: list[OperationUpdate], client_token: str | None
    ) -> tuple[str | None, Sequence[Mapping[str, Any]], str | None]:
        return f"t{next(self._tokens)}", [], None

    def _state(
        self, arn: str, token: str, marker: str, max_items: int
    ) -> tuple[Sequence[Mapping[str, Any]], str | None]:
        return [], None


def _floor_run(n: int, fast_stop: bool = False) -> None:
    exec_id = "e-1"
    event = DurableExecutionInvocationInputWithClient(
        durable_execution_arn=f"arn:aws:lambda:us-east-1:1:function:f:$LATEST/durable-execution/x/{exec_id}",
        checkpoint_token="t",
        initial_execution_state=InitialExecutionState(
            operations=[
                Operation(
                    operation_id=exec_id,
                    operation_type=OperationType.EXECUTION,
                    status=OperationStatus.STARTED,
                    execution_details=ExecutionDetails(input_payload=json.dumps({"n": n})),
                )
            ],
            next_marker="",
        ),
        service_client=NullClient(),
    )
    with fast_sdk_stop() if fast_stop else contextlib.nullcontext():
        out = chain(event, LambdaContextStub(aws_request_id="r"))
    assert out["Status"] == "SUCCEEDED", out


def _runtime_run(
    backend: str, event: dict[str, Any], isolation: Literal["inline", "process"] = "inline"
) -> None:
    with Runtime(backend=backend, clock=VirtualClock(), isolation=isolation) as rt:
        rt.register("chain", chain)
        out = rt.run("chain", event, timeout=600)
    assert out["Status"] == "SUCCEEDED", out


def _testing_runner_run(event: dict[str, Any]) -> None:
    from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

    with DurableFunctionTestRunner(handler=chain) as runner:
        res = runner.run(input=json.dumps(event), execution_timeout=900)
    assert res.status.value == "SUCCEEDED", res


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-rt-") as d:
        yield Path(d)


def _url(side: str, workdir: Path) -> str:
    if side == "runtime-memory":
        return "memory://"
    query = "?fsync=false" if side.endswith("nofsync") else ""
    return f"file://{workdir}{query}"


@pytest.mark.parametrize(
    "side", ["floor", "floor-fast-stop", "runtime-memory", "runtime-file", "runtime-file-nofsync"]
)
def test_e2e_100_steps(benchmark: Any, side: str, workdir: Path) -> None:
    counter = itertools.count()

    def one() -> None:
        if side.startswith("floor"):
            _floor_run(100, fast_stop=side == "floor-fast-stop")
        else:
            _runtime_run(_url(side, workdir / str(next(counter))), {"n": 100})

    benchmark.group = "e2e-100"
    benchmark.extra_info.update(suite="e2e-100", side=side)
    benchmark.pedantic(one, rounds=15, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize(
    "side",
    [
        "testing-runner",
        "runtime-memory",
        "runtime-file",
        "runtime-file-nofsync",
        "runtime-memory-process",
    ],
)
def test_1000_steps_with_waits(benchmark: Any, side: str, workdir: Path) -> None:
    event = {"n": 1000, "wait_every": 10}

    def one() -> None:
        if side == "testing-runner":
            _testing_runner_run(event)
        elif side.endswith("-process"):
            _runtime_run("memory://", event, isolation="process")
        else:
            _runtime_run(_url(side, workdir / "store"), event)

    benchmark.group = "waits-1000"
    benchmark.extra_info.update(suite="waits-1000", side=side)
    benchmark.pedantic(one, rounds=1, iterations=1)
