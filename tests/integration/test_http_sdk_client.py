"""Out-of-process handlers: ``durable-ext serve`` in its own process, handlers in workers.

The server runs as a child process on a free 127.0.0.1 port (stopped by its own pid),
on a file store. Each invocation runs in a warm worker process whose SDK builds its own
``LambdaClient`` from ``AWS_ENDPOINT_URL_LAMBDA``, so every checkpoint and state read
crosses HTTP exactly as on Lambda.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from servers import HOST, HttpServer, running

pytestmark = pytest.mark.integration

HANDLERS = Path(__file__).with_name("test_http_handlers.py")
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
         "region_name": "us-east-1"}


class HttpApiServer(HttpServer):
    """``python -m durable_ext.http serve`` with worker-process isolation."""

    name = "durable-http"
    health_path = "/_durable_ext/health"

    def argv(self, port: int) -> list[str]:
        handlers = [f"{fn}={HANDLERS}:{attr}" for fn, attr in (
            ("steps", "steps"), ("crash-once", "crash_once"), ("approval", "approval"),
            ("adder", "adder"))]
        return [sys.executable, "-m", "durable_ext.http", "serve",
                "--backend", f"file://{self.workdir}/store", "--host", HOST, "--port", str(port),
                "--isolation", "http", "--handlers", *handlers]



@pytest.fixture(scope="module")
def api() -> Iterator[HttpApiServer]:
    with running(HttpApiServer()) as server:
        assert isinstance(server, HttpApiServer)
        yield server


@pytest.fixture(scope="module")
def lam(api: HttpApiServer) -> Any:
    return boto3.client("lambda", endpoint_url=api.url,
                        config=Config(retries={"max_attempts": 1}, read_timeout=60), **CREDS)


def test_handler_process_checkpoints_through_the_sdks_lambda_client(
        lam: Any, api: HttpApiServer) -> None:
    res = lam.invoke(FunctionName="steps", Payload=b'{"n": 5}')
    out = json.loads(res["Payload"].read())
    assert "FunctionError" not in res, out
    assert out["total"] == 10
    # it ran in a worker process (neither the server nor this test) ...
    assert out["pid"] not in (api.pid, os.getpid())
    # ... whose SDK-built LambdaClient talked to this server
    assert out["endpoint"] == api.url
    events = lam.get_durable_execution_history(DurableExecutionArn=res["DurableExecutionArn"])
    succeeded = [e["Name"] for e in events["Events"] if e["EventType"] == "StepSucceeded"]
    assert succeeded == [f"s{i}" for i in range(5)]


def test_a_real_time_wait_wakes_the_execution(lam: Any) -> None:
    """The server's driver sleeps until the wait is due (real clock), then re-invokes."""
    res = lam.invoke(FunctionName="adder", Payload=b'{"a": 20}')
    assert json.loads(res["Payload"].read()) == {"b": 42}
    events = lam.get_durable_execution_history(
        DurableExecutionArn=res["DurableExecutionArn"])["Events"]
    at = {e["EventType"]: e["EventTimestamp"] for e in events}
    assert (at["WaitSucceeded"] - at["WaitStarted"]).total_seconds() >= 1.0
    assert [e["EventType"] for e in events].count("InvocationCompleted") == 2


def test_crashed_worker_is_recorded_and_the_invocation_retried(
        lam: Any, tmp_path: Path) -> None:
    marker = tmp_path / "crashed"
    res = lam.invoke(FunctionName="crash-once", Payload=json.dumps({"marker": str(marker)}))
    assert json.loads(res["Payload"].read()) == "after"
    assert marker.exists()
    events = lam.get_durable_execution_history(
        DurableExecutionArn=res["DurableExecutionArn"])["Events"]
    completed = [e["InvocationCompletedDetails"] for e in events
                 if e["EventType"] == "InvocationCompleted"]
    assert len(completed) == 2
    assert completed[0]["Error"]["Payload"]["ErrorType"] == "Runtime.ExitError"
    assert "exit status 17" in completed[0]["Error"]["Payload"]["ErrorMessage"]
    assert "Error" not in completed[1]
    # the step before the crash was checkpointed once and replayed, not run again
    started = [e["Name"] for e in events if e["EventType"] == "StepStarted"]
    assert started == ["before", "after"]


def test_callback_completed_with_boto3_resumes_the_worker(lam: Any) -> None:
    res = lam.invoke(FunctionName="approval", InvocationType="Event", Payload=b"{}",
                     DurableExecutionName="approve-1")
    arn = res["DurableExecutionArn"]
    deadline = time.monotonic() + 30
    cid = None
    while cid is None and time.monotonic() < deadline:
        for ev in lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]:
            if ev["EventType"] == "CallbackStarted":
                cid = ev["CallbackStartedDetails"]["CallbackId"]
        time.sleep(0.05)
    assert cid is not None
    lam.send_durable_execution_callback_success(CallbackId=cid, Result=b'"granted"')
    while time.monotonic() < deadline:
        desc = lam.get_durable_execution(DurableExecutionArn=arn)
        if desc["Status"] != "RUNNING":
            break
        time.sleep(0.05)
    assert desc["Status"] == "SUCCEEDED"
    assert json.loads(desc["Result"]) == {"answer": '"granted"'}


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "durable_ext.http", "serve", *args],
                          capture_output=True, text=True, timeout=60)


def test_serve_refuses_a_public_address_without_opt_in() -> None:
    proc = _serve("--host", "0.0.0.0", "--backend", "memory://")
    assert proc.returncode == 2
    assert "no authentication" in proc.stderr
    assert "docs/http-api.md" in proc.stderr


def test_serve_reports_a_bad_handler_path() -> None:
    proc = _serve("--backend", "memory://", "--handlers", "no_such_module_xyz:handler")
    assert proc.returncode == 2
    assert "no_such_module_xyz" in proc.stderr
    proc = _serve("--backend", "memory://", "--handlers", "missing-colon")
    assert proc.returncode == 2
    assert "cannot import handler 'missing-colon'" in proc.stderr
    assert "Traceback" not in proc.stderr
