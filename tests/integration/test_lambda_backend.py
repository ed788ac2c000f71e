"""LambdaControlPlane (``lambda://``) against the HTTP API: the Runtime's control plane over boto3.

The same calls the Runtime offers (start, describe, history, list, callbacks, stop) go
through boto3 to a real server on 127.0.0.1; AWS errors come back as durable_ext errors;
throttling answered by a real HTTP layer in front of the API is retried with backoff.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import test_http_handlers as handlers
from starlette.types import ASGIApp, Receive, Scope, Send

from durable_ext.errors import (
    ConfigError,
    ExecutionAlreadyStartedError,
    InvalidParameterValueError,
    NotFoundError,
    SpecError,
    StoreUnavailableError,
)
from durable_ext.http import LocalService, ServerThread
from durable_ext.runtime import Runtime
from durable_ext.runtime.lambda_plane import LambdaControlPlane, parse_lambda_url

pytestmark = pytest.mark.integration


class Throttle:
    """ASGI layer answering the next ``budget`` requests with 429 TooManyRequestsException."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.budget = 0
        self.throttled = 0
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_durable_ext"):
            self.requests += 1
            if self.budget > 0:
                self.budget -= 1
                self.throttled += 1
                body = b'{"Type":"User","message":"Rate exceeded"}'
                await send({"type": "http.response.start", "status": 429, "headers": [
                    (b"x-amzn-errortype", b"TooManyRequestsException"),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def throttle_and_server() -> Iterator[tuple[Throttle, ServerThread]]:
    holder: list[Throttle] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        holder.append(Throttle(app))
        return holder[0]

    svc = LocalService("memory://", virtual_time=True)
    svc.register("adder", handlers.adder)
    svc.register("approval", handlers.approval)
    svc.register("long", handlers.callback_then_steps)
    with ServerThread(svc, wrap=wrap) as srv:
        yield holder[0], srv


@pytest.fixture
def server(throttle_and_server: tuple[Throttle, ServerThread]) -> ServerThread:
    return throttle_and_server[1]


@pytest.fixture
def throttle(throttle_and_server: tuple[Throttle, ServerThread]) -> Iterator[Throttle]:
    t = throttle_and_server[0]
    t.budget = t.throttled = t.requests = 0
    yield t
    t.budget = 0


def backend(server: ServerThread, function: str = "approval", **options: Any) -> LambdaControlPlane:
    query = "&".join(f"{k}={v}" for k, v in {"region": "us-east-1", "endpoint_url": server.url,
                                              "base_delay": "0.001", **options}.items())
    return LambdaControlPlane(f"lambda://{function}?{query}")


def wait_status(be: LambdaControlPlane, arn: str, *, running_ok: bool = False) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        desc = be.describe(arn)
        if desc["Status"] != "RUNNING" or time.monotonic() > deadline:
            return desc
        time.sleep(0.02)


def open_callback(be: LambdaControlPlane, arn: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for ev in be.history(arn)["Events"]:
            if ev["EventType"] == "CallbackStarted":
                return str(ev["CallbackStartedDetails"]["CallbackId"])
        time.sleep(0.02)
    raise AssertionError("no callback started")


# ---------------------------------------------------------------- URLs


def test_lambda_urls_parse_with_case_qualifier_and_arns() -> None:
    t = parse_lambda_url("lambda://OrderFlow:live?region=eu-west-1&endpoint_url=http://127.0.0.1:9")
    assert (t.function, t.qualifier, t.region, t.endpoint_url) == (
        "OrderFlow", "live", "eu-west-1", "http://127.0.0.1:9")
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert parse_lambda_url(f"lambda://{arn}:7").function == arn
    assert parse_lambda_url(f"lambda://{arn}:7").qualifier == "7"
    assert parse_lambda_url(f"lambda://{arn}").qualifier is None
    for bad, words in (("lambda://fn?colour=red", "unknown option"),
                       ("lambda://", "names no function"),
                       ("lambda://fn?max_attempts=0", "max_attempts"),
                       ("lambda://fn?invocation_type=Async", "invocation_type"),
                       ("redis://fn", "expected lambda://")):
        with pytest.raises(SpecError, match=words):
            parse_lambda_url(bad)


def test_the_url_keeps_its_case_and_opens_as_a_control_plane_not_a_store() -> None:
    be = LambdaControlPlane("lambda://MyFunction?region=us-east-1")
    assert be.target.function == "MyFunction"
    assert str(be) == "lambda://MyFunction"
    from durable_ext.runtime import ControlPlane, open_control_plane

    opened: Any = open_control_plane("lambda://MyFunction?region=eu-west-1")
    assert isinstance(opened, LambdaControlPlane) and isinstance(opened, ControlPlane)
    assert (opened.target.function, opened.target.region) == ("MyFunction", "eu-west-1")
    # lambda:// left the store registry: it is no checkpoint store
    from durable_ext.backends import open_store
    from durable_ext.errors import UnknownPluginError

    with pytest.raises(UnknownPluginError):
        open_store("lambda://MyFunction")


# ---------------------------------------------------------------- control plane


def test_start_describe_history_list_like_the_runtime(server: ServerThread) -> None:
    be = backend(server, "adder")
    desc = be.run(input={"a": 2}, name="lb-run", timeout=10)
    assert desc["Status"] == "SUCCEEDED"
    assert json.loads(desc["Result"]) == {"b": 6}
    arn = desc["DurableExecutionArn"]
    assert be.start(input={"a": 2}, name="lb-run") == arn  # idempotent by name

    # The same execution described by a Runtime sharing the server's store gives the same
    # answer: the backend is a drop-in for the Runtime's control plane.
    rt: Runtime = server.service.runtime
    assert be.describe(arn) == {**rt.describe(arn), "ExecutionDataIncluded": True}
    full = be.history(arn)
    assert full["Events"] == rt.history(arn)["Events"]
    page = be.history(arn, max_items=2)
    assert len(page["Events"]) == 2 and page["NextMarker"]
    lean = be.history(arn, include_execution_data=False)
    assert all("Payload" not in json.dumps(e, default=str) for e in lean["Events"])

    listed = be.list_executions(max_items=1000)["DurableExecutions"]
    assert arn in [e["DurableExecutionArn"] for e in listed]
    succeeded = be.list_executions("adder", status="SUCCEEDED")["DurableExecutions"]
    assert all(e["Status"] == "SUCCEEDED" for e in succeeded)
    named = be.list_executions(name="lb-run")["DurableExecutions"]
    assert [e["DurableExecutionArn"] for e in named] == [arn]


def test_input_is_normalised_like_the_runtime(server: ServerThread) -> None:
    be = backend(server)
    local: Runtime = server.service.runtime
    for value, name in (("plain text", "in-text"), ('{"k": 1}', "in-json"), (None, "in-none"),
                        ({"k": [1, 2]}, "in-dict")):
        remote = be.describe(be.start(input=value, name=name))["InputPayload"]
        assert remote == local.describe(local.start("approval", value, name=f"{name}-rt"))[
            "InputPayload"]


def test_callbacks_and_stop(server: ServerThread) -> None:
    be = backend(server)
    arn = be.start(input={"n": 1}, name="lb-cb")
    cid = open_callback(be, arn)
    be.send_callback_heartbeat(cid)
    be.send_callback_success(cid, '"fine"')
    desc = wait_status(be, arn)
    assert desc["Status"] == "SUCCEEDED"
    assert json.loads(desc["Result"]) == {"answer": '"fine"'}
    with pytest.raises(NotFoundError, match="SendDurableExecutionCallbackSuccess"):
        be.send_callback_success(cid, b'"twice"')

    failing = be.start(input={"n": 2})
    be.send_callback_failure(open_callback(be, failing),
                             {"ErrorType": "No", "ErrorMessage": "declined"})
    assert wait_status(be, failing)["Status"] == "FAILED"

    stopped = be.start(input={"n": 3})
    open_callback(be, stopped)
    out = be.stop(stopped, {"ErrorType": "Ops", "ErrorMessage": "maintenance"})
    assert "StopTimestamp" in out
    desc = be.describe(stopped)
    assert desc["Status"] == "STOPPED"
    assert desc["Error"] == {"ErrorType": "Ops", "ErrorMessage": "maintenance"}


def test_long_history_is_fetched_across_pages(server: ServerThread) -> None:
    be = backend(server, "long")
    arn = be.start(input={})
    be.send_callback_success(open_callback(be, arn), '"ok"')
    assert wait_status(be, arn)["Status"] == "SUCCEEDED"
    full = be.history(arn)["Events"]
    paged: list[dict[str, Any]] = []
    marker = None
    for _ in range(len(full)):
        page = be.history(arn, max_items=3, marker=marker)
        paged += page["Events"]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert paged == full
    assert [e["EventId"] for e in full] == list(range(1, len(full) + 1))


def test_aws_errors_become_durable_ext_errors(server: ServerThread) -> None:
    be = backend(server)
    arn = be.start(input={"k": 1}, name="lb-conflict")
    with pytest.raises(ExecutionAlreadyStartedError, match="lb-conflict"):
        be.start(input={"k": 2}, name="lb-conflict")
    missing = server.service.runtime.engine.execution_arn("approval", "ghost", "0" * 32)
    with pytest.raises(NotFoundError, match="ResourceNotFoundException"):
        be.describe(missing)
    with pytest.raises(NotFoundError):
        be.history(missing)
    with pytest.raises(NotFoundError):
        be.stop(missing)
    with pytest.raises(NotFoundError, match="Function not found"):
        be.start("no-such-function", input={})
    with pytest.raises(InvalidParameterValueError, match="InvalidParameterValueException"):
        be.start(input={}, name="not a valid name")
    with pytest.raises(InvalidParameterValueError):
        be.history(arn, marker="garbage")
    with pytest.raises(ConfigError, match="DurableConfig"):
        be.start(input={}, execution_timeout=5)
    with pytest.raises(ConfigError, match="deploy it"):
        be.register("fn", handlers.adder)


def test_throttling_is_retried_with_backoff(server: ServerThread, throttle: Throttle) -> None:
    be = backend(server, "adder", max_attempts="4")
    arn = be.run(input={"a": 0}, timeout=10)["DurableExecutionArn"]
    throttle.budget, throttle.requests = 3, 0
    assert be.describe(arn)["Status"] == "SUCCEEDED"
    assert throttle.throttled == 3
    assert throttle.requests == 4  # three refusals, then the answer

    throttle.budget = 10
    with pytest.raises(StoreUnavailableError, match="after 4 attempts") as info:
        be.describe(arn)
    assert "TooManyRequestsException" in str(info.value)
    assert throttle.throttled == 7


def test_unreachable_endpoint_is_unavailable_after_bounded_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # nothing listens on that port any more: connection refused
    be = LambdaControlPlane(f"lambda://fn?region=us-east-1&endpoint_url=http://127.0.0.1:{port}"
                       "&max_attempts=3&base_delay=0.001")
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="unreachable after 3 attempts"):
        be.describe("arn:aws:lambda:us-east-1:123456789012:function:fn:$LATEST/"
                    "durable-execution/x/y")
    assert time.monotonic() - started < 30


def test_runtime_and_backend_share_the_same_executions(server: ServerThread) -> None:
    """Executions started in-process appear through the API and vice versa."""
    local: Runtime = server.service.runtime
    be = backend(server, "adder")
    arn_local = local.start("adder", {"a": 7}, name="lb-local")
    server.service.notify()
    assert wait_status(be, arn_local)["Status"] == "SUCCEEDED"
    arn_remote = be.start(input={"a": 8}, name="lb-remote")
    assert wait_status(be, arn_remote)["Status"] == "SUCCEEDED"
    assert json.loads(local.describe(arn_remote)["Result"]) == {"b": 18}
