"""The cost estimate, checked by hand on a known history, and the serializer comparison."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution

from durable_ext.cost import GB, Rates, compare, estimate
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.readable import Decoder

KNOWN = {"Events": [
    {"EventType": "ExecutionStarted", "Id": "e",
     "ExecutionStartedDetails": {"Input": {"Payload": '{"a": 1}'}}},          # 8 bytes
    {"EventType": "StepStarted", "Id": "s1", "StepStartedDetails": {}},
    {"EventType": "StepFailed", "Id": "s1", "StepFailedDetails": {
        "Error": {"Payload": {"ErrorType": "E", "ErrorMessage": "m"}}}},       # 39 bytes
    {"EventType": "StepStarted", "Id": "s1", "StepStartedDetails": {}},          # a retry
    {"EventType": "StepSucceeded", "Id": "s1",
     "StepSucceededDetails": {"Result": {"Payload": '"é"'}}},                  # 4 bytes
    {"EventType": "WaitStarted", "Id": "w", "WaitStartedDetails": {"Duration": 5}},
    {"EventType": "InvocationCompleted", "InvocationCompletedDetails": {}},
    {"EventType": "ExecutionSucceeded", "Id": "e",
     "ExecutionSucceededDetails": {"Result": {"Payload": "null"}}},           # 4 bytes
]}


def test_a_known_history_by_hand() -> None:
    est = estimate(KNOWN, Rates(per_million_operations=8.0, per_gb_written=0.25,
                                per_gb_month_retained=0.15, retention_days=30))
    # start + two attempts of s1 + the wait
    assert est.operations == 4
    assert est.bytes_written == 8 + len(json.dumps({"ErrorType": "E", "ErrorMessage": "m"})) \
        + 4 + 4 == 55
    assert est.operations_cost == pytest.approx(32e-6)
    assert est.written_cost == pytest.approx(55 / GB * 0.25)
    assert est.retained_cost == pytest.approx(55 / GB * 0.15)  # 30 days: one month
    assert est.to_dict()["per_million_executions"] == pytest.approx(est.total * 1e6)


@durable_execution
def report(event: Any, ctx: DurableContext) -> Any:
    rows = ctx.step(lambda _: [{"region": "eu-west-1", "total": i * 0.5, "ok": True}
                               for i in range(2_000)], name="rows")
    return len(rows)


def test_compact_and_offloaded_specs_are_compared_by_what_they_would_write() -> None:
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("fn", report)
        arn = rt.start("fn", {})
        rt.run_until_idle(30)
        history = rt.history(arn, include_execution_data=True)
    rows = compare(history, ["msgpack", "msgpack+zstd", "msgpack+s3://bucket?threshold=0",
                             "msgpack+kms:alias/x", "nope"], Decoder(), execution_arn=arn)
    recorded, msgpack, zstd, s3, kms, bad = rows
    assert recorded["spec"] == "(recorded)" and recorded["saving"] == 0.0
    assert zstd["result_bytes"] < msgpack["result_bytes"] < recorded["result_bytes"]
    assert 0 < msgpack["saving"] < zstd["saving"]
    assert s3["result_bytes"] < 400  # the pointer stays in the checkpoint, nothing written
    assert zstd["operations"] == recorded["operations"]
    assert "key" in kms["error"] and "nope" in bad["error"]
