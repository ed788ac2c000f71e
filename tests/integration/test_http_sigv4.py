"""``--auth sigv4`` against a real server: boto3 with a configured key works, nothing else does.

One server runs in a background thread with a verifier whose clock the tests can shift;
another runs as ``python -m durable_ext.http serve --auth sigv4 --isolation http`` in its
own process, whose worker processes must sign their checkpoints too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
import test_http_handlers as handlers
from aws_durable_execution_sdk_python.lambda_service import (
    LambdaClient,
    OperationAction,
    OperationType,
    OperationUpdate,
)
from botocore.config import Config
from botocore.exceptions import ClientError
from http_raw import assert_error, request, segment
from servers import running
from test_http_sdk_client import HttpApiServer

from durable_ext.errors import ConfigError
from durable_ext.http import LocalService, ServerThread
from durable_ext.http.guard import GuardConfig
from durable_ext.http.sigv4 import ACCESS_KEY_ENV, SECRET_KEY_ENV, SigV4Verifier

pytestmark = pytest.mark.integration

KEY_ID = "AKIDDURABLETEST"
SECRET = "durable/test+secret"
WAIT_S = 10.0


class Skew:
    """The verifier's clock: real time plus an offset a test sets."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return time.time() + self.seconds


@pytest.fixture(scope="module")
def skew() -> Skew:
    return Skew()


@pytest.fixture(scope="module")
def server(skew: Skew) -> Iterator[ServerThread]:
    svc = LocalService("memory://", virtual_time=True)
    svc.register("adder", handlers.adder)
    svc.register("approval", handlers.approval)
    verifier = SigV4Verifier({KEY_ID: SECRET, "AKIDSECOND": "second-secret"}, clock=skew)
    with ServerThread(svc, guard=GuardConfig.build(auth=verifier)) as srv:
        yield srv
    assert svc.driver_error is None


def client(server: ServerThread, key_id: str = KEY_ID, secret: str = SECRET,
           region: str = "us-east-1") -> Any:
    return boto3.client("lambda", endpoint_url=server.url, region_name=region,
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


@pytest.fixture
def lam(server: ServerThread, skew: Skew) -> Iterator[Any]:
    skew.seconds = 0.0
    yield client(server)
    skew.seconds = 0.0


def executions(server: ServerThread) -> int:
    page = server.service.runtime.list_executions(function_name="adder", max_items=1000)
    return len(page["DurableExecutions"])


def refused(call: Callable[[], Any], code: str) -> str:
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    assert error["Code"] == code, info.value.response
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return str(error["Message"])


def wait_callback(lam: Any, arn: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for ev in lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]:
            if ev["EventType"] == "CallbackStarted":
                return str(ev["CallbackStartedDetails"]["CallbackId"])
        time.sleep(0.02)
    raise AssertionError(f"no callback started in {arn}")


def wait_status(lam: Any, arn: str) -> str:
    deadline = time.monotonic() + WAIT_S
    while True:
        status = str(lam.get_durable_execution(DurableExecutionArn=arn)["Status"])
        if status != "RUNNING" or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


# ---------------------------------------------------------------- accepted


def test_a_boto3_client_with_a_configured_key_uses_every_operation(lam: Any) -> None:
    res = lam.invoke(FunctionName="adder", Payload=b'{"a": 2}')
    assert json.loads(res["Payload"].read()) == {"b": 6}
    arn = res["DurableExecutionArn"]
    assert lam.get_durable_execution(DurableExecutionArn=arn)["Status"] == "SUCCEEDED"
    events = lam.get_durable_execution_history(DurableExecutionArn=arn, MaxItems=2,
                                               ReverseOrder=True)["Events"]
    assert events[0]["EventType"] == "ExecutionSucceeded"
    listed = lam.list_durable_executions_by_function(FunctionName="adder",
                                                     Statuses=["SUCCEEDED"])
    assert arn in [e["DurableExecutionArn"] for e in listed["DurableExecutions"]]
    # callbacks (the id goes in the path) and a stop, from a second key and region
    other = client_like(lam, "AKIDSECOND", "second-secret", "eu-west-1")
    started = other.invoke(FunctionName="approval", InvocationType="Event", Payload=b"{}")
    cid = wait_callback(other, started["DurableExecutionArn"])
    other.send_durable_execution_callback_heartbeat(CallbackId=cid)
    other.send_durable_execution_callback_success(CallbackId=cid, Result=b'"ok"')
    assert wait_status(other, started["DurableExecutionArn"]) == "SUCCEEDED"
    stopped = other.invoke(FunctionName="approval", InvocationType="Event", Payload=b"{}")
    wait_callback(other, stopped["DurableExecutionArn"])
    other.stop_durable_execution(DurableExecutionArn=stopped["DurableExecutionArn"],
                                 Error={"ErrorMessage": "enough"})
    assert wait_status(other, stopped["DurableExecutionArn"]) == "STOPPED"


def client_like(lam: Any, key_id: str, secret: str, region: str) -> Any:
    return boto3.client("lambda", endpoint_url=lam.meta.endpoint_url, region_name=region,
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


def test_the_sdks_lambda_client_checkpoints_with_a_configured_key(
        lam: Any, server: ServerThread) -> None:
    arn, _ = server.service.runtime.engine.start("raw", "{}")
    inv = server.service.runtime.engine.begin_invocation(arn)
    assert inv is not None
    sdk = LambdaClient(lam)
    update = OperationUpdate(operation_id="s1", operation_type=OperationType.STEP,
                             action=OperationAction.SUCCEED, name="s1", payload='"x" + "/"')
    out = sdk.checkpoint(arn, inv.token, [update], None)
    assert out.checkpoint_token and out.checkpoint_token != inv.token
    state = sdk.get_execution_state(arn, out.checkpoint_token, "", 10)
    assert "s1" in [op.operation_id for op in state.operations]


def test_unsigned_health_checks_are_answered_without_the_function_names(
        server: ServerThread, lam: Any) -> None:
    unsigned = request(server.port, "GET", "/_durable_ext/health")
    assert unsigned.status == 200 and unsigned.json() == {"status": "ok"}
    # signed, it is the full answer (botocore signs any request it is handed)
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="GET", url=f"{server.url}/_durable_ext/health")
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1").add_auth(req)
    signed = request(server.port, "GET", "/_durable_ext/health", headers=dict(req.headers))
    assert signed.json()["functions"] == ["adder", "approval"]


# ---------------------------------------------------------------- refused


def test_a_wrong_secret_is_refused(server: ServerThread, lam: Any) -> None:
    before = executions(server)
    bad = client(server, secret="not-the-secret")
    message = refused(lambda: bad.invoke(FunctionName="adder", InvocationType="Event",
                                         Payload=b'{"a": 1}'), "InvalidSignatureException")
    assert SECRET not in message and "not-the-secret" not in message
    assert executions(server) == before


def test_an_unknown_key_is_refused(server: ServerThread, lam: Any) -> None:
    before = executions(server)
    stranger = client(server, key_id="AKIDSTRANGER")
    refused(lambda: stranger.invoke(FunctionName="adder", InvocationType="Event",
                                    Payload=b'{"a": 1}'), "UnrecognizedClientException")
    refused(lambda: stranger.list_durable_executions_by_function(FunctionName="adder"),
            "UnrecognizedClientException")
    assert executions(server) == before


def test_unsigned_requests_are_refused(server: ServerThread) -> None:
    arn = server.service.runtime.engine.start("adder", '{"a": 1}')[0]
    for method, path in (("GET", f"/2025-12-01/durable-executions/{segment(arn)}/history"),
                         ("POST", "/2015-03-31/functions/adder/invocations")):
        answer = request(server.port, method, path, b"{}" if method == "POST" else None)
        assert_error(answer, 403, "MissingAuthenticationTokenException")
        assert b"ExecutionStarted" not in answer.body


# -330, not -301: the signed date is whole seconds and the request takes a while under load
@pytest.mark.parametrize("offset", [-330.0, 301.0, 3600.0])
def test_a_stale_or_future_date_is_refused(server: ServerThread, lam: Any, skew: Skew,
                                           offset: float) -> None:
    skew.seconds = offset  # the server's clock, as if the request was signed that long ago
    message = refused(lambda: lam.list_durable_executions_by_function(FunctionName="adder"),
                      "InvalidSignatureException")
    assert "expired" in message
    skew.seconds = offset / 2 if abs(offset) < 600 else 0.0  # within five minutes: accepted
    assert "DurableExecutions" in lam.list_durable_executions_by_function(FunctionName="adder")


def tamper(lam: Any, change: Callable[[Any], None]) -> None:
    """Change each request after botocore signed it (a man in the middle)."""
    def before_send(request: Any, **_: Any) -> None:
        change(request)

    lam.meta.events.register_first("before-send.lambda", before_send)


def test_a_tampered_body_is_refused(server: ServerThread, lam: Any) -> None:
    before = executions(server)

    def swap(req: Any) -> None:
        req.body = req.body.replace(b'"a": 1', b'"a": 9')

    tamper(lam, swap)
    refused(lambda: lam.invoke(FunctionName="adder", InvocationType="Event",
                               Payload=b'{"a": 1}'), "InvalidSignatureException")
    assert executions(server) == before


def later(amz_date: bytes | str) -> str:
    """One second after an X-Amz-Date: well within the allowed skew, not what was signed."""
    text = amz_date.decode() if isinstance(amz_date, bytes) else amz_date
    when = datetime.strptime(text, "%Y%m%dT%H%M%SZ") + timedelta(seconds=1)
    return when.strftime("%Y%m%dT%H%M%SZ")


@pytest.mark.parametrize("change", [
    lambda req: setattr(req, "url", req.url.replace("MaxItems=1", "MaxItems=2")),
    lambda req: setattr(req, "url", req.url.replace("/adder/", "/approval/")),
    lambda req: req.headers.__setitem__("X-Amz-Date", later(req.headers["X-Amz-Date"])),
    lambda req: req.headers.__setitem__("X-Amz-Content-SHA256", "0" * 64),
], ids=["query", "path", "date", "content-sha256"])
def test_a_tampered_request_is_refused(lam: Any, change: Callable[[Any], None]) -> None:
    tamper(lam, change)
    with pytest.raises(ClientError) as info:
        lam.list_durable_executions_by_function(FunctionName="adder", MaxItems=1)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.parametrize(("authorization", "code"), [
    ("Basic dXNlcjpwYXNz", "IncompleteSignatureException"),
    ("AWS4-HMAC-SHA256 Credential=x", "IncompleteSignatureException"),
    (f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20260101/us-east-1/s3/aws4_request, "
     f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}", "InvalidSignatureException"),
    (f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20260101/us-east-1/lambda/aws4_request, "
     f"SignedHeaders=x-amz-date, Signature={'0' * 64}", "IncompleteSignatureException"),
])
def test_malformed_authorization_headers_are_refused(server: ServerThread, authorization: str,
                                                     code: str) -> None:
    answer = request(server.port, "GET", "/2025-12-01/functions/adder/durable-executions",
                     headers={"Authorization": authorization, "X-Amz-Date": "20260101T000000Z"})
    assert_error(answer, 400 if code == "IncompleteSignatureException" else 403, code)


# ---------------------------------------------------------------- configuration


def test_keys_come_from_the_environment_and_a_file(tmp_path: Any) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# ops\nAKIDFILE file-secret\n\n")
    verifier = SigV4Verifier.from_sources({ACCESS_KEY_ENV: "AKIDENV", SECRET_KEY_ENV: "s"},
                                          str(keys))
    assert verifier.worker_credentials == ("AKIDENV", "s")
    assert SigV4Verifier.from_sources({}, str(keys)).worker_credentials == ("AKIDFILE",
                                                                            "file-secret")
    with pytest.raises(ConfigError, match="--auth sigv4 needs credentials"):
        SigV4Verifier.from_sources({})
    with pytest.raises(ConfigError, match="both"):
        SigV4Verifier.from_sources({ACCESS_KEY_ENV: "AKIDENV"})
    keys.write_text("AKIDFILE only-one-field-and-a-secret-like-this\nAKIDFILE\n")
    with pytest.raises(ConfigError, match=r"keys:2: expected") as info:
        SigV4Verifier.from_sources({}, str(keys))
    assert "only-one-field" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        SigV4Verifier.from_sources({}, str(tmp_path / "missing"))


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "durable_ext.http", "serve", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_serve_says_what_sigv4_needs() -> None:
    clean = {ACCESS_KEY_ENV: "", SECRET_KEY_ENV: ""}
    proc = _serve("--backend", "memory://", "--auth", "sigv4", env=clean)
    assert proc.returncode == 2
    assert ACCESS_KEY_ENV in proc.stderr and "--auth-keys" in proc.stderr
    proc = _serve("--backend", "memory://", "--auth-keys", "x", env=clean)
    assert proc.returncode == 2 and "--auth sigv4" in proc.stderr


class SignedApiServer(HttpApiServer):
    """``serve --auth sigv4 --isolation http`` with a key file."""

    name = "durable-http-sigv4"

    def argv(self, port: int) -> list[str]:
        keys = self.workdir / "keys"
        keys.write_text(f"{KEY_ID} {SECRET}\n")
        # a second key in the server's environment, which its handlers must not see
        return ["env", f"{ACCESS_KEY_ENV}=AKIDSERVER", f"{SECRET_KEY_ENV}=server-secret",
                *super().argv(port), "--auth", "sigv4", "--auth-keys", str(keys)]


@pytest.fixture(scope="module")
def signed_api() -> Iterator[SignedApiServer]:
    with running(SignedApiServer()) as srv:
        assert isinstance(srv, SignedApiServer)
        yield srv


def test_worker_processes_sign_their_checkpoints(signed_api: SignedApiServer) -> None:
    lam = boto3.client("lambda", endpoint_url=signed_api.url, region_name="us-east-1",
                       aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                       config=Config(retries={"max_attempts": 1}, read_timeout=60))
    res = lam.invoke(FunctionName="steps", Payload=b'{"n": 3}')
    out = json.loads(res["Payload"].read())
    assert "FunctionError" not in res, out
    assert out["total"] == 3 and out["pid"] != signed_api.pid  # ran in a worker, over HTTP
    assert out["durable_ext_env"] == []  # no server key, no worker signing key, for handlers
    assert not any(str(signed_api.workdir) in p for p in out["path_head"])
    events = lam.get_durable_execution_history(DurableExecutionArn=res["DurableExecutionArn"])
    assert [e["Name"] for e in events["Events"] if e["EventType"] == "StepSucceeded"] == [
        "s0", "s1", "s2"]
    unsigned = request(signed_api.port, "POST", "/2015-03-31/functions/steps/invocations", b"{}")
    assert_error(unsigned, 403, "MissingAuthenticationTokenException")
