"""LambdaControlPlane against ministack, a second, independent emulator of the Lambda API.

ministack (PyPI) runs offline on 127.0.0.1 and executes Python handlers with its own
interpreter; it is used here to check the backend's wire format against an
implementation that is not ours. Its known deviations
shape what is asserted: it ignores ``DurableExecutionName`` and returns the execution
ARN only on synchronous invokes (so the backend uses ``invocation_type=RequestResponse``),
and it times callbacks out at once (``HeartbeatTimeoutSeconds: 0``).

ministack pins an old botocore, so it lives in its own virtualenv, which must also hold
SDK 3.x for the handlers; the path comes from ``$DURABLE_EXT_MINISTACK`` (the ``ministack``
executable) or ``.venv-ministack/bin/ministack``::

    python3 -m venv .venv-ministack
    .venv-ministack/bin/pip install ministack==1.5.33
    .venv-ministack/bin/pip install --no-deps aws-durable-execution-sdk-python==3.0.0 \\
        boto3==1.44.5 botocore==1.44.5 s3transfer==0.19.3
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import HOST, HttpServer, running

from durable_ext.errors import NotFoundError, StoreError
from durable_ext.runtime.lambda_plane import LambdaControlPlane

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = Path(__file__).with_name("test_http_handlers.py")
FUNCTIONS = {"ms-steps": "steps", "ms-adder": "adder", "ms-sleeper": "sleeper",
             "ms-approval": "approval"}


def ministack_binary() -> str | None:
    for candidate in (os.environ.get("DURABLE_EXT_MINISTACK"),
                      str(ROOT / ".venv-ministack" / "bin" / "ministack")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _skip_reason() -> str | None:
    binary = ministack_binary()
    if binary is None:
        return ("ministack is not installed: set $DURABLE_EXT_MINISTACK or create "
                ".venv-ministack (see this module's docstring)")
    python = Path(binary).with_name("python")
    probe = subprocess.run(
        [str(python), "-c", "import aws_durable_execution_sdk_python, botocore;"
         "print(botocore.__version__)"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return (f"ministack's interpreter {python} lacks SDK 3.x for the handlers "
                "(see this module's docstring)")
    return None


SKIP = _skip_reason()
pytestmark = [pytest.mark.integration, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


class Ministack(HttpServer):
    """``ministack`` in the foreground, bound to 127.0.0.1, temp files in its work dir."""

    name = "ministack"
    health_path = "/_ministack/health"

    def argv(self, port: int) -> list[str]:
        binary = ministack_binary()
        assert binary is not None
        return ["env", f"BIND_HOST={HOST}", f"GATEWAY_PORT={port}", f"TMPDIR={self.workdir}",
                binary]


    def create_function(self, name: str, handler: str) -> None:
        """Create a durable function (raw request: boto3 cannot send DurableConfig here)."""
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as z:
            z.writestr("handlers.py", HANDLERS.read_text())
        body = json.dumps({
            "FunctionName": name, "Runtime": "python3.11", "Handler": f"handlers.{handler}",
            "Role": "arn:aws:iam::000000000000:role/durable", "Timeout": 60,
            "Code": {"ZipFile": base64.b64encode(code.getvalue()).decode()},
            "DurableConfig": {"Enabled": True, "ExecutionTimeout": 600,
                              "RetentionPeriodInDays": 1},
        })
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            conn.request("POST", "/2015-03-31/functions", body=body,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 201, response.read()[:500]
        finally:
            conn.close()


@pytest.fixture(scope="module")
def ministack() -> Iterator[Ministack]:
    with running(Ministack()) as server:
        assert isinstance(server, Ministack)
        for name, handler in FUNCTIONS.items():
            server.create_function(name, handler)
        yield server


def backend(server: Ministack, function: str, **options: str) -> LambdaControlPlane:
    query = {"region": "us-east-1", "endpoint_url": server.url, "base_delay": "0.01",
             "invocation_type": "RequestResponse", **options}
    url = f"lambda://{function}?" + "&".join(f"{k}={v}" for k, v in query.items())
    return LambdaControlPlane(url)


def test_run_describe_history_list(ministack: Ministack) -> None:
    be = backend(ministack, "ms-steps")
    desc = be.run(input={"n": 4}, timeout=60)
    assert desc["Status"] == "SUCCEEDED", desc
    result = json.loads(desc["Result"])
    assert result["total"] == 6
    assert result["endpoint"] == ministack.url  # the handler's SDK client talked to ministack
    arn = desc["DurableExecutionArn"]
    events = be.history(arn)["Events"]
    types = [e["EventType"] for e in events]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert [e["Name"] for e in events if e["EventType"] == "StepSucceeded"] == \
        ["s0", "s1", "s2", "s3"]
    page = be.history(arn, max_items=2)
    assert len(page["Events"]) == 2 and page.get("NextMarker")
    listed = be.list_executions(max_items=50)["DurableExecutions"]
    assert arn in [e["DurableExecutionArn"] for e in listed]


def test_a_wait_completes_and_the_execution_resumes(ministack: Ministack) -> None:
    be = backend(ministack, "ms-adder")
    desc = be.run(input={"a": 10}, timeout=60)
    assert desc["Status"] == "SUCCEEDED", desc
    assert json.loads(desc["Result"]) == {"b": 22}
    types = [e["EventType"] for e in be.history(desc["DurableExecutionArn"])["Events"]]
    assert "WaitStarted" in types and "WaitSucceeded" in types


def test_stop_records_the_callers_error(ministack: Ministack) -> None:
    be = backend(ministack, "ms-sleeper")
    arn = be.start(input={"seconds": 3600})
    assert be.describe(arn)["Status"] == "RUNNING"
    out = be.stop(arn, {"ErrorType": "Ops", "ErrorMessage": "maintenance"})
    assert "StopTimestamp" in out
    desc = be.describe(arn)
    assert desc["Status"] == "STOPPED"
    assert desc["Error"]["ErrorType"] == "Ops"
    assert desc["Error"]["ErrorMessage"] == "maintenance"


def test_errors_are_mapped(ministack: Ministack) -> None:
    be = backend(ministack, "ms-approval")
    arn = be.start(input={})
    deadline = time.monotonic() + 30
    cid = None
    while cid is None and time.monotonic() < deadline:
        for ev in be.history(arn)["Events"]:
            if ev["EventType"] == "CallbackStarted":
                cid = ev["CallbackStartedDetails"]["CallbackId"]
        time.sleep(0.1)
    assert cid is not None
    # ministack times the callback out at once (a known deviation); answering a closed
    # callback is CallbackTimeoutException there, NotFoundError here
    be.wait(arn, timeout=30)
    with pytest.raises(NotFoundError, match="CallbackTimeoutException"):
        be.send_callback_success(cid, '"late"')
    with pytest.raises(NotFoundError, match="ResourceNotFoundException"):
        be.describe(arn.rsplit("/", 1)[0] + "/0123456789abcdef01234567")
    with pytest.raises(NotFoundError, match="Function not found"):
        be.start("ms-missing", input={})


def test_event_invoke_without_an_arn_is_reported(ministack: Ministack) -> None:
    be = backend(ministack, "ms-steps", invocation_type="Event")
    with pytest.raises(StoreError, match="invocation_type=RequestResponse"):
        be.start(input={"n": 1})
