"""The replayer's cost on a 1,000-operation history, side by side with the SDK's own replay.

* ``sdk-null-client``: the SDK replaying the same 1,000 succeeded steps (their recorded
  operations handed over as one invocation's state, converted from the wire shape as
  every invocation does) on a service client that stores nothing: the floor of any
  replay;
* ``replayer``: :func:`durable_ext.testing.replay` of the recorded execution: the same
  SDK replay under the replayer's seams, plus its bookkeeping and report (the history's
  events are parsed once, as a loaded recording is).

Both run with the SDK's stop poll shortened (:func:`durable_ext.runtime.invoker.fast_sdk_stop`,
which the replayer applies), so the rows differ only by what the replayer adds. Goal:
``replayer`` within 1.5x of ``sdk-null-client``.

Run: ``pytest benchmarks/bench_replay.py --benchmark-json=replay.json`` then
``python benchmarks/bench_replay.py replay.json`` for the ratio.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.execution import (
    DurableExecutionInvocationInputWithClient,
    InitialExecutionState,
)
from bench_runtime import NullClient

from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.runtime.client import sdk_operation
from durable_ext.runtime.invoker import LambdaContextStub, fast_sdk_stop
from durable_ext.testing import Recording, replay

N = 1000


def _one(_: StepContext) -> int:
    return 1


@durable_execution
def thousand(event: dict[str, Any], ctx: DurableContext) -> int:
    total = 0
    for i in range(event["n"]):
        total += ctx.step(_one, name=f"s{i}")
    return total


@pytest.fixture(scope="module")
def recording() -> Recording:
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("thousand", thousand)
        arn = rt.start("thousand", {"n": N})
        rt.run_until_idle(600)
        assert rt.describe(arn)["Status"] == "SUCCEEDED"
        rec = Recording.from_execution(rt, arn)
    assert len([op for op in rec.operations if op["Type"] == "STEP"]) == N
    return rec


def _sdk_replay(rec: Recording) -> None:
    event = DurableExecutionInvocationInputWithClient(
        durable_execution_arn=rec.arn,
        checkpoint_token="t",
        initial_execution_state=InitialExecutionState(
            operations=[sdk_operation(op) for op in rec.operation_index(visible=True).values()],
            next_marker=""),
        service_client=NullClient(),
    )
    with fast_sdk_stop():
        out = thousand(event, LambdaContextStub(aws_request_id="r"))
    assert out["Status"] == "SUCCEEDED" and json.loads(out["Result"]) == N, out


def _replayer(rec: Recording) -> None:
    result = replay(rec, thousand)
    assert result.ok and result.operations == N, result.report()


@pytest.mark.parametrize("side", ["sdk-null-client", "replayer"])
def test_replay_1000_operations(benchmark: Any, side: str, recording: Recording) -> None:
    benchmark.group = "replay-1000"
    benchmark.extra_info["side"] = side
    run = _sdk_replay if side == "sdk-null-client" else _replayer
    logging.getLogger("aws_durable_execution_sdk_python").setLevel(logging.WARNING)
    benchmark.pedantic(run, args=(recording,), rounds=30, warmup_rounds=3)


def main(path: str) -> None:
    with open(path) as fh:
        data = json.load(fh)
    rows = {b["extra_info"]["side"]: b["stats"]["median"] for b in data["benchmarks"]
            if b.get("group") == "replay-1000"}
    base = rows["sdk-null-client"]
    print("| side | median | vs sdk-null-client |")
    print("|---|---:|---:|")
    for side, median in rows.items():
        print(f"| {side} | {median * 1000:,.1f} ms | {median / base:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1])
