"""boto3's pause/resume/delete_durable_execution against the HTTP API, on every store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import test_pause_resume as scenarios
from botocore.config import Config
from test_http_api import CREDS, callback_id, expect_error, start, wait_status
from test_pause_resume import backend  # noqa: F401  (memory, file, Redis and DynamoDB)

from durable_ext.http import LocalService, ServerThread
from durable_ext.runtime import ControlPlane, open_control_plane

pytestmark = pytest.mark.integration

WAIT_S = 15.0


@pytest.fixture
def server(backend: str) -> Iterator[ServerThread]:  # noqa: F811
    scenarios.HOOKS.clear()
    scenarios.RAN.clear()
    svc = LocalService(backend, virtual_time=True)
    svc.register("two-steps", scenarios.two_steps)
    svc.register("approval", scenarios.approval)
    with ServerThread(svc) as srv:
        yield srv
    assert svc.driver_error is None


@pytest.fixture
def lam(server: ServerThread) -> Any:
    return boto3.client("lambda", endpoint_url=server.url,
                        config=Config(retries={"max_attempts": 1}), **CREDS)


def event_types(lam: Any, arn: str) -> list[str]:
    events = lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    return [e["EventType"] for e in events]


def wait_for(check: Any) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_pause_during_an_invocation_then_resume(lam: Any) -> None:
    arn_box: list[str] = []
    statuses: list[str] = []

    def pause_now() -> None:
        # the handler's own step asks the API, as an operator would mid-invocation
        wait_for(lambda: bool(arn_box))  # Invoke's answer may come after the step starts
        res = lam.pause_durable_execution(DurableExecutionArn=arn_box[0], Reason="deploying",
                                          ExecutionTimeoutPaused=True)
        assert res["ResponseMetadata"]["HTTPStatusCode"] == 202
        statuses.append(lam.get_durable_execution(DurableExecutionArn=arn_box[0])["Status"])

    scenarios.HOOKS["one"] = pause_now
    # started through Invoke with the hook armed for its first step
    arn_box.append(start(lam, "two-steps", {}))
    desc = wait_status(lam, arn_box[0], {"PAUSED"})
    arn = arn_box[0]
    assert desc["Status"] == "PAUSED", desc
    assert statuses == ["PAUSING"]
    assert desc["PauseDetails"]["Reason"] == "deploying"
    assert desc["PauseDetails"]["ExecutionTimeoutPaused"] is True
    assert "ExpectedExecutionTimeoutTimestamp" in desc
    hidden = lam.get_durable_execution(DurableExecutionArn=arn, IncludeExecutionData=False)
    assert "Reason" not in hidden["PauseDetails"]
    wait_for(lambda: "InvocationCompleted" in event_types(lam, arn))
    paused = next(e for e in lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
                  if e["EventType"] == "ExecutionPaused")
    assert paused["ExecutionPausedDetails"]["Reason"]["Payload"] == "deploying"
    listed = lam.list_durable_executions_by_function(FunctionName="two-steps",
                                                     Statuses=["PAUSED"])
    assert [e["DurableExecutionArn"] for e in listed["DurableExecutions"]] == [arn]
    assert scenarios.RAN == ["one"]

    res = lam.resume_durable_execution(DurableExecutionArn=arn, Reason="done",
                                       ClientToken="resume-1")
    assert res["ResponseMetadata"]["HTTPStatusCode"] == 202
    lam.resume_durable_execution(DurableExecutionArn=arn, Reason="done", ClientToken="resume-1")
    desc = wait_status(lam, arn, {"SUCCEEDED", "FAILED"})
    assert desc["Status"] == "SUCCEEDED", desc
    assert json.loads(desc["Result"]) == ["one", "two"]
    assert event_types(lam, arn).count("ExecutionResumed") == 1


def test_callbacks_complete_while_paused_and_delete_rules(lam: Any) -> None:
    arn = start(lam, "approval", {}, name="order-1")
    cb = callback_id(lam, arn)
    wait_for(lambda: "InvocationCompleted" in event_types(lam, arn))
    lam.pause_durable_execution(DurableExecutionArn=arn, ClientToken="p-1")
    lam.pause_durable_execution(DurableExecutionArn=arn, ClientToken="p-1")  # a repeat
    assert wait_status(lam, arn, {"PAUSED"})["Status"] == "PAUSED"
    expect_error(lam, "PauseDurableExecution", "ResourceConflictException",
                 lambda: lam.pause_durable_execution(DurableExecutionArn=arn))
    expect_error(lam, "PauseDurableExecution", "InvalidParameterValueException",
                 lambda: lam.pause_durable_execution(DurableExecutionArn=arn,
                                                     ClientToken="p-1", Reason="other"))
    expect_error(lam, "DeleteDurableExecution", "ResourceConflictException",
                 lambda: lam.delete_durable_execution(DurableExecutionArn=arn))

    lam.send_durable_execution_callback_success(CallbackId=cb, Result=b'"yes"')
    wait_for(lambda: "CallbackSucceeded" in event_types(lam, arn))
    time.sleep(0.2)  # a driver that would invoke has had its chance
    assert event_types(lam, arn).count("InvocationCompleted") == 1
    assert lam.get_durable_execution(DurableExecutionArn=arn)["Status"] == "PAUSED"

    lam.resume_durable_execution(DurableExecutionArn=arn)
    desc = wait_status(lam, arn, {"SUCCEEDED", "FAILED"})
    assert json.loads(desc["Result"]) == {"answer": "yes"}
    expect_error(lam, "ResumeDurableExecution", "ResourceConflictException",
                 lambda: lam.resume_durable_execution(DurableExecutionArn=arn))

    out = lam.delete_durable_execution(DurableExecutionArn=arn)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["DeletionRequestTimestamp"].tzinfo is not None
    expect_error(lam, "GetDurableExecution", "ResourceNotFoundException",
                 lambda: lam.get_durable_execution(DurableExecutionArn=arn))
    expect_error(lam, "DeleteDurableExecution", "ResourceNotFoundException",
                 lambda: lam.delete_durable_execution(DurableExecutionArn=arn))
    again = start(lam, "approval", {}, name="order-1")
    assert again != arn


def test_the_lambda_control_plane_passes_pause_resume_delete_through(
    server: ServerThread, lam: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    arn = start(lam, "approval", {})
    cb = callback_id(lam, arn)
    wait_for(lambda: "InvocationCompleted" in event_types(lam, arn))
    url = f"lambda://approval?region=us-east-1&endpoint_url={server.url}"
    plane: ControlPlane
    with open_control_plane(url) as plane:
        plane.pause(arn, "maintenance", "tok-9", False)
        desc = plane.describe(arn)
        assert desc["Status"] == "PAUSED"
        assert desc["PauseDetails"]["ExecutionTimeoutPaused"] is False
        plane.resume(arn)
        plane.send_callback_success(cb, '"ok"')
        assert wait_status(lam, arn, {"SUCCEEDED"})["Status"] == "SUCCEEDED"
        assert plane.delete(arn)["DeletionRequestTimestamp"].tzinfo is not None
