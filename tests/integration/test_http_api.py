"""boto3's ``lambda`` client against the HTTP API: every operation, errors as botocore models them.

The server runs on a free 127.0.0.1 port in a background thread (virtual time, memory
store); handlers run inline. The data-plane tests open an invocation on the engine for an
execution no driver touches, then checkpoint and read state through HTTP with boto3 and
with the SDK's own ``LambdaClient``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import boto3
import httpx
import pytest
import test_http_handlers as handlers
from aws_durable_execution_sdk_python.exceptions import CheckpointError, GetExecutionStateError
from aws_durable_execution_sdk_python.lambda_service import (
    LambdaClient,
    OperationAction,
    OperationType,
    OperationUpdate,
)
from botocore.config import Config
from botocore.exceptions import ClientError

from durable_ext.http import LocalService, ServerThread

pytestmark = pytest.mark.integration

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
         "region_name": "us-east-1"}
WAIT_S = 10.0


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    svc = LocalService("memory://", virtual_time=True)
    svc.register("adder", handlers.adder)
    svc.register("approval", handlers.approval)
    svc.register("failing", handlers.failing)
    svc.register("long", handlers.callback_then_steps)
    svc.register("echo", handlers.echo, durable=False)
    with ServerThread(svc) as srv:
        yield srv
    assert svc.driver_error is None


@pytest.fixture(scope="module")
def lam(server: ServerThread) -> Any:
    return boto3.client("lambda", endpoint_url=server.url,
                        config=Config(retries={"max_attempts": 1}), **CREDS)


# ---------------------------------------------------------------- helpers


def model_status(client: Any, operation: str, code: str, *, modeled: bool = True) -> int:
    """The HTTP status botocore's model gives ``code``; checks it is modeled for ``operation``."""
    model = client.meta.service_model
    names = {s.name for s in model.operation_model(operation).error_shapes}
    if modeled:
        assert code in names, f"{code} is not a modeled error of {operation}: {sorted(names)}"
    return int(model.shape_for(code).metadata["error"]["httpStatusCode"])


def expect_error(client: Any, operation: str, code: str, call: Callable[[], Any], *,
                 modeled: bool = True) -> dict[str, Any]:
    """Call, expect ``code`` with the model's status, and the modeled exception class."""
    with pytest.raises(ClientError) as info:
        call()
    response: dict[str, Any] = info.value.response
    assert response["Error"]["Code"] == code, response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == model_status(
        client, operation, code, modeled=modeled)
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == code
    assert isinstance(info.value, getattr(client.exceptions, code))
    return response


def wait_status(client: Any, arn: str, want: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        desc: dict[str, Any] = client.get_durable_execution(DurableExecutionArn=arn)
        if desc["Status"] in want or time.monotonic() > deadline:
            return desc
        time.sleep(0.02)


def start(client: Any, fn: str, payload: Any, name: str | None = None) -> str:
    kwargs: dict[str, Any] = {"FunctionName": fn, "InvocationType": "Event",
                              "Payload": json.dumps(payload)}
    if name:
        kwargs["DurableExecutionName"] = name
    res = client.invoke(**kwargs)
    assert res["StatusCode"] == 202
    return str(res["DurableExecutionArn"])


def callback_id(client: Any, arn: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for ev in client.get_durable_execution_history(DurableExecutionArn=arn)["Events"]:
            if ev["EventType"] == "CallbackStarted":
                return str(ev["CallbackStartedDetails"]["CallbackId"])
        time.sleep(0.02)
    raise AssertionError(f"no callback started in {arn}")


def wait_suspended(client: Any, arn: str) -> None:
    """Until the first invocation has ended (the handler is waiting for outside input)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        events = client.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
        if any(e["EventType"] == "InvocationCompleted" for e in events):
            return
        time.sleep(0.02)
    raise AssertionError(f"{arn} did not suspend")


def unknown_arn(server: ServerThread) -> str:
    return server.service.runtime.engine.execution_arn("adder", "nobody", "0" * 32)


# ---------------------------------------------------------------- Invoke


def test_sync_invoke_runs_to_completion_and_returns_the_arn_header(lam: Any) -> None:
    res = lam.invoke(FunctionName="adder", Payload=b'{"a": 4}')
    assert res["StatusCode"] == 200
    assert json.loads(res["Payload"].read()) == {"b": 10}
    assert "FunctionError" not in res
    assert res["ExecutedVersion"] == "$LATEST"
    arn = res["DurableExecutionArn"]
    assert arn.startswith("arn:aws:lambda:us-east-1:123456789012:function:adder:$LATEST/"
                          "durable-execution/")
    assert lam.get_durable_execution(DurableExecutionArn=arn)["Status"] == "SUCCEEDED"


def test_invoke_accepts_qualified_names_and_function_arns(lam: Any, server: ServerThread) -> None:
    fn_arn = server.service.runtime.engine.function_arn("adder")
    for name, qualifier in (("adder:$LATEST", None), (fn_arn, "$LATEST"), (fn_arn, None)):
        kwargs = {"Qualifier": qualifier} if qualifier else {}
        res = lam.invoke(FunctionName=name, Payload=b'{"a": 1}', **kwargs)
        assert json.loads(res["Payload"].read()) == {"b": 4}


def test_event_invoke_returns_202_and_the_execution_runs(lam: Any) -> None:
    arn = start(lam, "adder", {"a": 1})
    desc = wait_status(lam, arn, {"SUCCEEDED"})
    assert desc["Status"] == "SUCCEEDED"
    assert json.loads(desc["Result"]) == {"b": 4}
    assert json.loads(desc["InputPayload"]) == {"a": 1}


def test_dry_run_starts_nothing(lam: Any) -> None:
    before = len(lam.list_durable_executions_by_function(
        FunctionName="failing", MaxItems=1000)["DurableExecutions"])
    res = lam.invoke(FunctionName="failing", InvocationType="DryRun", Payload=b"{}")
    assert res["StatusCode"] == 204
    after = lam.list_durable_executions_by_function(FunctionName="failing", MaxItems=1000)
    assert len(after["DurableExecutions"]) == before


def test_failed_execution_reports_a_function_error(lam: Any) -> None:
    res = lam.invoke(FunctionName="failing", Payload=b'{"why": "no stock"}')
    assert res["StatusCode"] == 200
    assert res["FunctionError"] == "Unhandled"
    body = json.loads(res["Payload"].read())
    assert body["errorType"] == "ValueError"
    assert "no stock" in body["errorMessage"]
    desc = lam.get_durable_execution(DurableExecutionArn=res["DurableExecutionArn"])
    assert desc["Status"] == "FAILED"
    assert desc["Error"]["ErrorType"] == "ValueError"


def test_execution_name_is_idempotent_and_conflicts_on_other_input(lam: Any) -> None:
    first = start(lam, "approval", {"id": 1}, name="order-1")
    again = start(lam, "approval", {"id": 1}, name="order-1")
    assert again == first
    assert "/durable-execution/order-1/" in first
    expect_error(lam, "Invoke", "DurableExecutionAlreadyStartedException",
                 lambda: start(lam, "approval", {"id": 2}, name="order-1"))
    # nothing new was created under that name
    listing = lam.list_durable_executions_by_function(FunctionName="approval",
                                                      DurableExecutionName="order-1")
    assert [e["DurableExecutionArn"] for e in listing["DurableExecutions"]] == [first]


def test_invoke_errors(lam: Any) -> None:
    expect_error(lam, "Invoke", "ResourceNotFoundException",
                 lambda: lam.invoke(FunctionName="no-such-function", Payload=b"{}"))
    expect_error(lam, "Invoke", "InvalidRequestContentException",
                 lambda: lam.invoke(FunctionName="adder", Payload=b"{not json"))
    expect_error(lam, "Invoke", "InvalidParameterValueException",
                 lambda: lam.invoke(FunctionName="adder", Payload=b"{}",
                                    DurableExecutionName="bad name!"))


def test_plain_functions_are_invoked_like_lambda(lam: Any) -> None:
    res = lam.invoke(FunctionName="echo", Payload=b'{"x": 1}')
    assert res["StatusCode"] == 200
    assert "DurableExecutionArn" not in res
    assert json.loads(res["Payload"].read()) == {"echo": {"x": 1}}
    failed = lam.invoke(FunctionName="echo", Payload=b'{"fail": true}')
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "KeyError"
    assert lam.invoke(FunctionName="echo", InvocationType="Event",
                      Payload=b"{}")["StatusCode"] == 202
    expect_error(lam, "Invoke", "InvalidRequestContentException",
                 lambda: lam.invoke(FunctionName="echo", Payload=b"{oops"))


# ---------------------------------------------------------------- Get / History / List


def test_get_durable_execution_with_and_without_data(lam: Any) -> None:
    res = lam.invoke(FunctionName="adder", Payload=b'{"a": 2}', DurableExecutionName="get-1")
    arn = res["DurableExecutionArn"]
    full = lam.get_durable_execution(DurableExecutionArn=arn)
    assert full["DurableExecutionName"] == "get-1"
    assert full["FunctionArn"].endswith(":function:adder")
    assert isinstance(full["StartTimestamp"], datetime)
    assert full["EndTimestamp"] >= full["StartTimestamp"]
    assert full["ExecutionDataIncluded"] is True
    assert json.loads(full["Result"]) == {"b": 6}
    lean = lam.get_durable_execution(DurableExecutionArn=arn, IncludeExecutionData=False)
    assert lean["ExecutionDataIncluded"] is False
    assert "Result" not in lean and "InputPayload" not in lean
    assert lean["Status"] == "SUCCEEDED"


def test_history_pages_forward_and_backward(lam: Any) -> None:
    arn = lam.invoke(FunctionName="adder", Payload=b'{"a": 3}')["DurableExecutionArn"]
    full = lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    types = [e["EventType"] for e in full]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert {"StepStarted", "StepSucceeded", "WaitStarted", "WaitSucceeded",
            "InvocationCompleted"} <= set(types)
    assert [e["EventId"] for e in full] == list(range(1, len(full) + 1))

    paged: list[dict[str, Any]] = []
    marker: str | None = None
    for _ in range(len(full) + 1):
        kwargs = {"Marker": marker} if marker else {}
        page = lam.get_durable_execution_history(DurableExecutionArn=arn, MaxItems=2, **kwargs)
        assert len(page["Events"]) <= 2
        paged.extend(page["Events"])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert paged == full

    backward: list[dict[str, Any]] = []
    marker = None
    for _ in range(len(full) + 1):
        kwargs = {"Marker": marker} if marker else {}
        page = lam.get_durable_execution_history(DurableExecutionArn=arn, MaxItems=3,
                                                 ReverseOrder=True, **kwargs)
        backward.extend(page["Events"])
        marker = page.get("NextMarker")
        if not marker:
            break
    assert backward == list(reversed(full))


def test_history_without_execution_data_drops_payloads(lam: Any) -> None:
    arn = lam.invoke(FunctionName="adder", Payload=b'{"a": 5}')["DurableExecutionArn"]
    with_data = lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    succeeded = [e for e in with_data if e["EventType"] == "StepSucceeded"]
    assert succeeded[0]["StepSucceededDetails"]["Result"]["Payload"] == "6"
    lean = lam.get_durable_execution_history(DurableExecutionArn=arn,
                                             IncludeExecutionData=False)["Events"]
    lean_step = next(e for e in lean if e["EventType"] == "StepSucceeded")
    assert lean_step["StepSucceededDetails"]["Result"] == {"Truncated": True}
    assert len(lean) == len(with_data)


def test_list_by_function_filters_and_pages(lam: Any) -> None:
    names = [f"list-{i}" for i in range(3)]
    arns = [lam.invoke(FunctionName="adder", Payload=b'{"a": 0}',
                       DurableExecutionName=n)["DurableExecutionArn"] for n in names]
    waiting = start(lam, "approval", {"list": True}, name="list-waiting")
    wait_status(lam, waiting, {"RUNNING"})

    everything = lam.list_durable_executions_by_function(FunctionName="adder", MaxItems=1000)
    listed = [e["DurableExecutionArn"] for e in everything["DurableExecutions"]]
    assert set(arns) <= set(listed)
    starts = [e["StartTimestamp"] for e in everything["DurableExecutions"]]
    assert starts == sorted(starts, reverse=True)  # newest first

    one = lam.list_durable_executions_by_function(FunctionName="adder",
                                                  DurableExecutionName="list-1")
    assert [e["DurableExecutionArn"] for e in one["DurableExecutions"]] == [arns[1]]

    running = lam.list_durable_executions_by_function(FunctionName="approval",
                                                      Statuses=["RUNNING"], MaxItems=1000)
    assert waiting in [e["DurableExecutionArn"] for e in running["DurableExecutions"]]
    assert {e["Status"] for e in running["DurableExecutions"]} == {"RUNNING"}
    two = lam.list_durable_executions_by_function(
        FunctionName="approval", Statuses=["RUNNING", "STOPPED"], MaxItems=1000)
    assert {e["Status"] for e in two["DurableExecutions"]} <= {"RUNNING", "STOPPED"}

    paged: list[str] = []
    marker: str | None = None
    for _ in range(len(listed) + 1):
        kwargs = {"Marker": marker} if marker else {}
        page = lam.list_durable_executions_by_function(FunctionName="adder", MaxItems=2,
                                                       **kwargs)
        paged += [e["DurableExecutionArn"] for e in page["DurableExecutions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert paged == listed

    oldest_first = lam.list_durable_executions_by_function(FunctionName="adder",
                                                           ReverseOrder=True, MaxItems=1000)
    assert [e["DurableExecutionArn"] for e in oldest_first["DurableExecutions"]] == \
        list(reversed(listed))


def test_get_history_list_errors(lam: Any, server: ServerThread) -> None:
    missing = unknown_arn(server)
    expect_error(lam, "GetDurableExecution", "ResourceNotFoundException",
                 lambda: lam.get_durable_execution(DurableExecutionArn=missing))
    expect_error(lam, "GetDurableExecutionHistory", "ResourceNotFoundException",
                 lambda: lam.get_durable_execution_history(DurableExecutionArn=missing))
    expect_error(lam, "ListDurableExecutionsByFunction", "ResourceNotFoundException",
                 lambda: lam.list_durable_executions_by_function(FunctionName="nope"))
    expect_error(lam, "ListDurableExecutionsByFunction", "InvalidParameterValueException",
                 lambda: lam.list_durable_executions_by_function(FunctionName="adder",
                                                                 Statuses=["SLEEPING"]))
    arn = lam.invoke(FunctionName="adder", Payload=b'{"a": 0}')["DurableExecutionArn"]
    expect_error(lam, "GetDurableExecutionHistory", "InvalidParameterValueException",
                 lambda: lam.get_durable_execution_history(DurableExecutionArn=arn,
                                                           Marker="not-a-marker"))


# ---------------------------------------------------------------- callbacks / stop


def test_callback_heartbeat_then_success_resumes_the_execution(lam: Any) -> None:
    arn = start(lam, "approval", {"id": "cb-ok"})
    cid = callback_id(lam, arn)
    assert lam.send_durable_execution_callback_heartbeat(
        CallbackId=cid)["ResponseMetadata"]["HTTPStatusCode"] == 200
    lam.send_durable_execution_callback_success(CallbackId=cid, Result=b'"yes"')
    desc = wait_status(lam, arn, {"SUCCEEDED", "FAILED"})
    assert desc["Status"] == "SUCCEEDED"
    # the SDK hands the callback's bytes to the handler verbatim (no JSON decoding)
    assert json.loads(desc["Result"]) == {"answer": '"yes"'}
    succeeded = [e for e in lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
                 if e["EventType"] == "CallbackSucceeded"]
    assert succeeded[0]["CallbackSucceededDetails"]["Result"]["Payload"] == '"yes"'
    # the callback is closed now
    for op, call in (
        ("SendDurableExecutionCallbackSuccess",
         lambda: lam.send_durable_execution_callback_success(CallbackId=cid, Result=b'"x"')),
        ("SendDurableExecutionCallbackFailure",
         lambda: lam.send_durable_execution_callback_failure(CallbackId=cid, Error={})),
        ("SendDurableExecutionCallbackHeartbeat",
         lambda: lam.send_durable_execution_callback_heartbeat(CallbackId=cid)),
    ):
        expect_error(lam, op, "ResourceNotFoundException", call)


def test_callback_failure_fails_the_execution_with_that_error(lam: Any) -> None:
    arn = start(lam, "approval", {"id": "cb-fail"})
    cid = callback_id(lam, arn)
    lam.send_durable_execution_callback_failure(
        CallbackId=cid, Error={"ErrorType": "Rejected", "ErrorMessage": "manager said no"})
    desc = wait_status(lam, arn, {"SUCCEEDED", "FAILED"})
    assert desc["Status"] == "FAILED"
    assert "manager said no" in json.dumps(desc["Error"])
    failed = [e for e in lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
              if e["EventType"] == "CallbackFailed"]
    assert failed[0]["CallbackFailedDetails"]["Error"]["Payload"]["ErrorType"] == "Rejected"


def test_unknown_callback_ids(lam: Any) -> None:
    for cid in ("bm90LWEtY2FsbGJhY2s", "AAAA"):
        expect_error(lam, "SendDurableExecutionCallbackSuccess", "ResourceNotFoundException",
                     lambda cid=cid: lam.send_durable_execution_callback_success(
                         CallbackId=cid, Result=b"1"))
        expect_error(lam, "SendDurableExecutionCallbackHeartbeat", "ResourceNotFoundException",
                     lambda cid=cid: lam.send_durable_execution_callback_heartbeat(CallbackId=cid))


def test_stop_records_the_error_and_is_idempotent(lam: Any, server: ServerThread) -> None:
    arn = start(lam, "approval", {"id": "stop-me"})
    wait_suspended(lam, arn)
    first = lam.stop_durable_execution(DurableExecutionArn=arn,
                                       Error={"ErrorType": "Manual", "ErrorMessage": "ops"})
    assert isinstance(first["StopTimestamp"], datetime)
    desc = lam.get_durable_execution(DurableExecutionArn=arn)
    assert desc["Status"] == "STOPPED"
    assert desc["Error"] == {"ErrorType": "Manual", "ErrorMessage": "ops"}
    again = lam.stop_durable_execution(DurableExecutionArn=arn)
    assert again["StopTimestamp"] == first["StopTimestamp"]
    events = lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    assert events[-1]["EventType"] == "ExecutionStopped"
    expect_error(lam, "StopDurableExecution", "ResourceNotFoundException",
                 lambda: lam.stop_durable_execution(DurableExecutionArn=unknown_arn(server)))


# ---------------------------------------------------------------- checkpoint / state


@pytest.fixture
def invocation(server: ServerThread) -> tuple[str, str]:
    """An execution of an unserved function (no driver touches it), with an open invocation."""
    engine = server.service.runtime.engine
    arn, _ = engine.start("raw", '{"k": 1}')
    inv = engine.begin_invocation(arn)
    assert inv is not None
    return arn, inv.token


def _step(op_id: str, action: str, payload: str | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {"Id": op_id, "Type": "STEP", "Action": action, "Name": op_id,
                              "SubType": "Step"}
    if payload is not None:
        update["Payload"] = payload
    return update


def test_state_and_checkpoint_round_trip(lam: Any, invocation: tuple[str, str]) -> None:
    arn, token = invocation
    state = lam.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken=token)
    (exec_op,) = state["Operations"]
    assert exec_op["Type"] == "EXECUTION" and exec_op["Status"] == "STARTED"
    assert arn.endswith("/" + exec_op["Id"])
    assert exec_op["ExecutionDetails"]["InputPayload"] == '{"k": 1}'
    assert isinstance(exec_op["StartTimestamp"], datetime)

    out = lam.checkpoint_durable_execution(
        DurableExecutionArn=arn, CheckpointToken=token,
        Updates=[_step("s1", "START"), _step("s1", "SUCCEED", "42"),
                 {"Id": "w1", "Type": "WAIT", "Action": "START", "Name": "w1",
                  "WaitOptions": {"WaitSeconds": 30}}])
    new_token = out["CheckpointToken"]
    assert new_token != token
    ops = {o["Id"]: o for o in out["NewExecutionState"]["Operations"]}
    assert ops["s1"]["Status"] == "SUCCEEDED"
    assert ops["s1"]["StepDetails"] == {"Attempt": 1, "Result": "42"}
    scheduled = ops["w1"]["WaitDetails"]["ScheduledEndTimestamp"]
    assert isinstance(scheduled, datetime)
    assert 29 <= (scheduled - ops["w1"]["StartTimestamp"]).total_seconds() <= 31

    # state pages with MaxItems
    seen: list[str] = []
    marker: str | None = None
    for _ in range(5):
        kwargs = {"Marker": marker} if marker else {}
        page = lam.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken=new_token,
                                               MaxItems=1, **kwargs)
        seen += [o["Id"] for o in page["Operations"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert seen == [exec_op["Id"], "s1", "w1"]


def test_stale_token_is_the_retryable_invalid_checkpoint_token(
        lam: Any, server: ServerThread, invocation: tuple[str, str]) -> None:
    arn, token = invocation
    lam.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken=token,
                                     Updates=[_step("a", "START")])
    response = expect_error(
        lam, "CheckpointDurableExecution", "InvalidParameterValueException",
        lambda: lam.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken=token,
                                                 Updates=[_step("b", "START")]))
    assert response["Error"]["Message"] == "Invalid checkpoint token"
    expect_error(lam, "GetDurableExecutionState", "InvalidParameterValueException",
                 lambda: lam.get_durable_execution_state(DurableExecutionArn=arn,
                                                         CheckpointToken="Zm9v"))

    # The SDK's own client over HTTP classifies it as retryable (the invocation re-drives) ...
    sdk = LambdaClient(boto3.client("lambda", endpoint_url=server.url,
                                    config=Config(retries={"max_attempts": 1}), **CREDS))
    update = OperationUpdate(operation_id="c", operation_type=OperationType.STEP,
                             action=OperationAction.START, name="c")
    with pytest.raises(CheckpointError) as info:
        sdk.checkpoint(arn, token, [update], None)
    assert info.value.is_retryable()
    with pytest.raises(GetExecutionStateError) as state_info:
        sdk.get_execution_state(arn, token, "", 10)
    assert state_info.value.is_retryable()


def test_invalid_update_is_permanent_and_keeps_the_token(
        lam: Any, server: ServerThread, invocation: tuple[str, str]) -> None:
    arn, token = invocation
    out = lam.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken=token,
                                           Updates=[_step("s", "START"), _step("s", "SUCCEED")])
    token = out["CheckpointToken"]
    response = expect_error(
        lam, "CheckpointDurableExecution", "InvalidParameterValueException",
        lambda: lam.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken=token,
                                                 Updates=[_step("s", "SUCCEED", "1")]))
    assert response["Error"]["Message"] != "Invalid checkpoint token"
    sdk = LambdaClient(boto3.client("lambda", endpoint_url=server.url,
                                    config=Config(retries={"max_attempts": 1}), **CREDS))
    bad = OperationUpdate(operation_id="s", operation_type=OperationType.STEP,
                          action=OperationAction.SUCCEED, name="s", payload="2")
    with pytest.raises(CheckpointError) as info:
        sdk.checkpoint(arn, token, [bad], None)
    assert not info.value.is_retryable()
    # the rejected batches left the token valid
    ok = sdk.checkpoint(arn, token, [], None)
    assert ok.checkpoint_token


def test_client_token_replays_the_same_answer(lam: Any, invocation: tuple[str, str]) -> None:
    arn, token = invocation
    kwargs = {"DurableExecutionArn": arn, "CheckpointToken": token,
              "Updates": [_step("x", "START")], "ClientToken": "retry-1"}
    first = lam.checkpoint_durable_execution(**kwargs)
    second = lam.checkpoint_durable_execution(**kwargs)
    assert second["CheckpointToken"] == first["CheckpointToken"]
    assert second["NewExecutionState"] == first["NewExecutionState"]


def test_terminal_checkpoint_has_no_token_and_ends_the_execution(
        lam: Any, server: ServerThread, invocation: tuple[str, str]) -> None:
    arn, token = invocation
    out = lam.checkpoint_durable_execution(
        DurableExecutionArn=arn, CheckpointToken=token,
        Updates=[{"Id": "execution-result-1", "Type": "EXECUTION", "Action": "SUCCEED",
                  "Payload": '"big"'}])
    assert "CheckpointToken" not in out
    inv_id = server.service.runtime.engine.store.header(arn).invocation_id
    assert inv_id is not None
    server.service.runtime.engine.finish_invocation(arn, inv_id, {"Status": "PENDING"})
    desc = lam.get_durable_execution(DurableExecutionArn=arn)
    assert desc["Status"] == "SUCCEEDED"
    assert desc["Result"] == '"big"'


def test_checkpoint_errors(lam: Any, server: ServerThread) -> None:
    expect_error(lam, "CheckpointDurableExecution", "ResourceNotFoundException",
                 lambda: lam.checkpoint_durable_execution(
                     DurableExecutionArn=unknown_arn(server), CheckpointToken="Zm9v"),
                 modeled=False)


# ---------------------------------------------------------------- raw HTTP


def test_unknown_routes_and_bad_bodies_use_the_error_format(server: ServerThread) -> None:
    with httpx.Client(base_url=server.url) as http:
        r = http.post("/2025-12-01/durable-executions/x/rewind")
        assert r.status_code == 404
        assert r.headers["x-amzn-errortype"] == "UnknownOperationException"
        r = http.put("/2025-12-01/durable-executions/x")
        assert r.status_code == 405
        for r in (http.post("/2025-12-01/durable-executions/x/pause"),
                  http.delete("/2025-12-01/durable-executions/x")):
            assert r.status_code == 404  # routed: there is no such execution
            assert r.headers["x-amzn-errortype"] == "ResourceNotFoundException"
        arn = server.service.runtime.engine.execution_arn("adder", "n", "1")
        path = "/2025-12-01/durable-executions/" + httpx.URL(
            "", params={"a": arn}).query.decode()[2:] + "/checkpoint"
        r = http.post(path, content=b"{oops")
        assert r.status_code == 400
        assert r.headers["x-amzn-errortype"] == "InvalidRequestContentException"
        assert "parse" in r.json()["message"]
        r = http.get("/_durable_ext/health")
        assert r.json()["functions"] == ["adder", "approval", "failing", "long", "echo"]
