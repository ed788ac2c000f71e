"""Fuzz every route of the HTTP API on a real server: no input answers 500 or stops the server.

Requests are built by hypothesis from the API's own routes, query parameters, headers and
bodies (real and random ARNs, callback ids and function names, any bytes, JSON of any
shape and depth, checkpoint batches with a live token) and sent raw. Every answer must be
below 500, and every error must have the API's error format. Example counts are bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import test_http_handlers as handlers
from http_raw import Answer, request, segment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_ext.http import LocalService, ServerThread

pytestmark = pytest.mark.integration

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Target:
    """The server, plus real names the fuzzer mixes with random ones."""

    server: ServerThread
    arn: str
    token: str
    callback_id: str


def open_invocation(server: ServerThread) -> tuple[str, str]:
    """An execution of an unserved function with an open invocation: its ARN and token."""
    engine = server.service.runtime.engine
    arn, _ = engine.start("raw", '{"k": 1}')
    inv = engine.begin_invocation(arn)
    assert inv is not None
    return arn, inv.token


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    svc = LocalService("memory://", virtual_time=True)
    svc.register("failing", handlers.failing)  # ends at once, so a synchronous Invoke does too
    svc.register("echo", handlers.echo, durable=False)
    with ServerThread(svc) as srv:
        arn, token = open_invocation(srv)
        res = svc.runtime.engine.checkpoint(arn, token, [
            {"Id": "cb", "Type": "CALLBACK", "Action": "START", "Name": "cb",
             "SubType": "Callback", "CallbackOptions": {"TimeoutSeconds": 3600}}], None)
        (callback,) = [o for o in res.operations if o["Type"] == "CALLBACK"]
        assert res.token is not None
        yield Target(srv, arn, res.token, callback["CallbackDetails"]["CallbackId"])
        # after everything: still serving, and the driver never failed
        assert request(srv.port, "GET", "/_durable_ext/health").status == 200
    assert svc.driver_error is None


def check(answer: Answer, method: str) -> None:
    assert answer.status < 500, (answer.status, answer.body[:500])
    if answer.status >= 400:
        assert answer.headers.get("x-amzn-errortype"), answer.headers
        if method != "HEAD":
            body = json.loads(answer.body)
            assert body["message"] and body["__type"] == answer.headers["x-amzn-errortype"]


# ---------------------------------------------------------------- strategies

HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


def deep(levels: int, opener: str) -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return (opener * levels + "1" + closer * levels).encode()


HOSTILE = st.sampled_from([
    b"[" * 100_000, b'{"a":' * 5000, b'"\xff\xfe"', b'{"a": "\xed\xa0\x80"}',
    '{"a": 1}'.encode("utf-16"), b"\x00", b"  ", b"null", b"[]", b'"text"', b"1e999",
])
BODIES = st.one_of(
    st.none(),
    HOSTILE,
    st.binary(max_size=300),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.builds(deep, st.integers(1, 3000), st.sampled_from(["[", '{"a":'])),
    st.text(max_size=100).map(lambda t: t.encode("utf-16")),
    st.fixed_dictionaries({}, optional={
        "ErrorMessage": JSON, "ErrorType": JSON, "ErrorData": JSON, "StackTrace": JSON,
        "CheckpointToken": JSON, "Updates": JSON, "ClientToken": JSON,
    }).map(lambda v: json.dumps(v).encode()),
)


@st.composite
def names(draw: st.DrawFn, real: list[str]) -> str:
    """A path segment: a real name, random text, odd bytes, or something very long."""
    choice = draw(st.sampled_from(["real", "text", "bytes", "long"]))
    if choice == "real":
        return segment(draw(st.sampled_from(real)))
    if choice == "text":
        return segment(draw(st.text(min_size=1, max_size=60)))
    if choice == "bytes":
        return "".join(f"%{b:02x}" for b in draw(st.binary(min_size=1, max_size=30)))
    return "a" * draw(st.integers(1000, 3000))


QUERY_KEYS = ["MaxItems", "Marker", "ReverseOrder", "IncludeExecutionData", "Statuses",
              "StartedAfter", "StartedBefore", "DurableExecutionName", "Qualifier",
              "CheckpointToken"]
QUERY_VALUES = st.one_of(
    st.text(max_size=30), st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["true", "false", "nan", "inf", "1e400", "o:5", "o:-1", "d:1:2:3", "s:0:1",
                     "0:arn", "garbage", "SUCCEEDED", "2026-01-01T00:00:00Z", "1_0", "١٢", ""]))


ROUTES = {
    "invoke": ("POST", "/2015-03-31/functions/{fn}/invocations"),
    "get": ("GET", "/2025-12-01/durable-executions/{arn}"),
    "history": ("GET", "/2025-12-01/durable-executions/{arn}/history"),
    "state": ("GET", "/2025-12-01/durable-executions/{arn}/state"),
    "checkpoint": ("POST", "/2025-12-01/durable-executions/{arn}/checkpoint"),
    "stop": ("POST", "/2025-12-01/durable-executions/{arn}/stop"),
    "list": ("GET", "/2025-12-01/functions/{fn}/durable-executions"),
    "succeed": ("POST", "/2025-12-01/durable-execution-callbacks/{cid}/succeed"),
    "fail": ("POST", "/2025-12-01/durable-execution-callbacks/{cid}/fail"),
    "heartbeat": ("POST", "/2025-12-01/durable-execution-callbacks/{cid}/heartbeat"),
    "health": ("GET", "/_durable_ext/health"),
    "elsewhere": ("GET", "/{text}"),
}
METHODS = st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])


@st.composite
def requests(draw: st.DrawFn, t: Target,
             route: str) -> tuple[str, str, bytes | None, dict[str, str]]:
    method, template = ROUTES[route]
    if draw(st.integers(0, 4)) == 0:
        method = draw(METHODS)  # mostly the route's method, sometimes any other
    path = template.format(
        arn=draw(names([t.arn, t.arn + "x", "arn:aws:lambda:us-east-1:1:function:f"])),
        fn=draw(names(["failing", "echo", "echo:1", "123456789012:function:x",
                       "arn:aws:lambda:us-east-1:123456789012:function:echo"])),
        cid=draw(names([t.callback_id, t.callback_id[:-2], "AAAA"])),
        text=quote(draw(st.text(max_size=40))))
    query = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), QUERY_VALUES), max_size=4))
    if query:
        path += "?" + urlencode(query)
    headers = {}
    for name, values in (
        ("Content-Type", st.sampled_from(["application/json", "binary/octet-stream",
                                          "application/x-amz-json-1.1"]) | HEADER_TEXT),
        ("X-Amz-Invocation-Type", st.sampled_from(["Event", "RequestResponse", "DryRun"])
         | HEADER_TEXT),
        ("X-Amz-Durable-Execution-Name", HEADER_TEXT),
        ("X-Amz-Client-Context", HEADER_TEXT),
    ):
        if draw(st.booleans()):
            headers[name] = draw(values)
    body = draw(HOSTILE | BODIES) if method not in ("GET", "HEAD") else None
    return method, path, body, headers


UPDATE = st.fixed_dictionaries(
    {"Id": st.sampled_from(["s1", "s2", "cb", "c1"]) | st.text(max_size=70) | JSON,
     "Type": st.sampled_from(["STEP", "WAIT", "CALLBACK", "CONTEXT", "CHAINED_INVOKE",
                              "EXECUTION"]) | JSON,
     "Action": st.sampled_from(["START", "SUCCEED", "FAIL", "RETRY", "CANCEL"]) | JSON},
    optional={
        "ParentId": st.sampled_from(["c1", "s1"]) | JSON,
        "Name": st.text(max_size=300) | JSON,
        "SubType": st.sampled_from(["Step", "Wait", "Callback", "RunInChildContext", "Map"])
        | JSON,
        "Payload": st.text(max_size=50) | JSON,
        "Error": st.fixed_dictionaries({}, optional={"ErrorType": JSON, "ErrorMessage": JSON,
                                                     "StackTrace": JSON}) | JSON,
        "ContextOptions": st.fixed_dictionaries({}, optional={"ReplayChildren": JSON}) | JSON,
        "StepOptions": st.fixed_dictionaries({}, optional={"NextAttemptDelaySeconds": JSON}),
        "WaitOptions": st.fixed_dictionaries({}, optional={"WaitSeconds": JSON}) | JSON,
        "CallbackOptions": st.fixed_dictionaries({}, optional={
            "TimeoutSeconds": JSON, "HeartbeatTimeoutSeconds": JSON}) | JSON,
        "ChainedInvokeOptions": st.fixed_dictionaries({}, optional={
            "FunctionName": st.sampled_from(["echo", "failing", "nope"]) | JSON,
            "TenantId": JSON}) | JSON,
    })


# ---------------------------------------------------------------- the fuzz


@pytest.mark.parametrize("route", list(ROUTES))
@FUZZ
@given(data=st.data())
def test_no_request_answers_500(target: Target, route: str, data: st.DataObject) -> None:
    method, path, body, headers = data.draw(requests(target, route))
    check(request(target.server.port, method, path, body, headers), method)


@settings(FUZZ, max_examples=300)
@given(updates=st.lists(UPDATE, max_size=4), client_token=st.none() | JSON | HEADER_TEXT,
       then_read=st.booleans())
def test_no_checkpoint_batch_answers_500(target: Target, updates: list[Any], client_token: Any,
                                         then_read: bool) -> None:
    arn, token = open_invocation(target.server)
    path = f"/2025-12-01/durable-executions/{segment(arn)}"
    body: dict[str, Any] = {"CheckpointToken": token, "Updates": updates}
    if client_token is not None:
        body["ClientToken"] = client_token
    answer = request(target.server.port, "POST", path + "/checkpoint", json.dumps(body).encode(),
                     {"Content-Type": "application/json"})
    check(answer, "POST")
    if then_read:
        new = answer.json().get("CheckpointToken", token) if answer.status == 200 else token
        for sub in (f"/state?{urlencode({'CheckpointToken': new})}", "/history", ""):
            check(request(target.server.port, "GET", path + sub), "GET")
