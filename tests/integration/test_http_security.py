"""The HTTP API's guards against a real server: Host, cross-site requests, body limits, bad input.

The server runs on a free 127.0.0.1 port in a background thread (memory store, virtual
time, handlers inline). Requests are sent raw (``http_raw``) to set any Host, Origin,
framing or bytes; real clients (boto3) check that what they send still works.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import test_http_handlers as handlers
from botocore.config import Config
from botocore.exceptions import ClientError
from http_raw import assert_error, head_of, request, segment, send_until_answered

from durable_ext.errors import ConfigError
from durable_ext.http import LocalService, ServerThread
from durable_ext.http.guard import (
    CALLBACK_RESULT_LIMIT,
    CHECKPOINT_LIMIT,
    DEFAULT_LIMIT,
    ERROR_BODY_LIMIT,
    EVENT_INVOKE_LIMIT,
    INVOKE_LIMIT,
    GuardConfig,
    normalize_host,
    normalize_origin,
)
from durable_ext.http.server import check_bind
from durable_ext.http.wire import MAX_JSON_DEPTH

pytestmark = pytest.mark.integration

CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
         "region_name": "us-east-1"}
CONSOLE = "http://console.test:8080"
MiB = 1 << 20


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    svc = LocalService("memory://", virtual_time=True)
    svc.register("adder", handlers.adder)
    svc.register("approval", handlers.approval)
    svc.register("echo", handlers.echo, durable=False)
    guard = GuardConfig.build(hosts=["durable.test"], origins=[CONSOLE])
    with ServerThread(svc, guard=guard) as srv:
        yield srv
    assert svc.driver_error is None


@pytest.fixture(scope="module")
def lam(server: ServerThread) -> Any:
    return boto3.client("lambda", endpoint_url=server.url,
                        config=Config(retries={"max_attempts": 1}, read_timeout=60), **CREDS)


def executions(server: ServerThread, function: str = "adder") -> int:
    page = server.service.runtime.list_executions(function_name=function, max_items=1000)
    return len(page["DurableExecutions"])


def an_execution(server: ServerThread) -> str:
    arn, _ = server.service.runtime.engine.start("adder", '{"a": 1}')
    return arn


def routes(server: ServerThread) -> dict[str, str]:
    """Every state-changing route, on a real execution and a well-formed callback id."""
    arn = segment(an_execution(server))
    return {
        "invoke": "/2015-03-31/functions/adder/invocations",
        "checkpoint": f"/2025-12-01/durable-executions/{arn}/checkpoint",
        "stop": f"/2025-12-01/durable-executions/{arn}/stop",
        "succeed": "/2025-12-01/durable-execution-callbacks/AAAA/succeed",
        "fail": "/2025-12-01/durable-execution-callbacks/AAAA/fail",
        "heartbeat": "/2025-12-01/durable-execution-callbacks/AAAA/heartbeat",
    }


ROUTES = ["invoke", "checkpoint", "stop", "succeed", "fail", "heartbeat"]


# ---------------------------------------------------------------- Host


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost.evil.example",
                                  "127.0.0.1.nip.io:{port}", "localhost:abc", "[::1", "",
                                  "user@localhost:{port}"])
def test_a_foreign_host_reads_and_changes_nothing(server: ServerThread, host: str) -> None:
    host = host.format(port=server.port)
    arn = an_execution(server)
    answer = request(server.port, "GET", f"/2025-12-01/durable-executions/{segment(arn)}/history",
                     headers={"Host": host})
    assert_error(answer, 403, "AccessDeniedException")
    assert b"StepSucceeded" not in answer.body and b"ExecutionStarted" not in answer.body
    before = executions(server)
    answer = request(server.port, "POST", "/2015-03-31/functions/adder/invocations",
                     b'{"a": 1}', headers={"Host": host, "X-Amz-Invocation-Type": "Event"})
    assert_error(answer, 403, "AccessDeniedException")
    assert executions(server) == before


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}",
                                  "LOCALHOST:{port}", "localhost", "durable.test:{port}",
                                  "Durable.Test", "[0:0:0:0:0:0:0:1]:{port}"])
def test_loopback_and_configured_hosts_are_answered(server: ServerThread, host: str) -> None:
    answer = request(server.port, "GET", "/_durable_ext/health",
                     headers={"Host": host.format(port=server.port)})
    assert answer.status == 200
    assert answer.json()["functions"] == ["adder", "approval", "echo"]


def test_boto3_through_localhost_works(server: ServerThread) -> None:
    lam = boto3.client("lambda", endpoint_url=f"http://localhost:{server.port}",
                       config=Config(retries={"max_attempts": 1}), **CREDS)
    res = lam.invoke(FunctionName="echo", Payload=b'{"x": 1}')
    assert json.loads(res["Payload"].read()) == {"echo": {"x": 1}}


def test_host_and_origin_options_are_normalised_or_refused() -> None:
    assert normalize_host("Durable.Internal.") == "durable.internal"
    assert normalize_host("fd00::1") == normalize_host("[FD00:0::1]") == "[fd00::1]"
    assert normalize_origin("HTTPS://Console.Example:443/") == "https://console.example"
    assert normalize_origin("http://console.example:8080") == "http://console.example:8080"
    for bad in ("durable.internal:9000", "http://x", "a b", "x/y"):
        with pytest.raises(ConfigError, match="--allow-host"):
            normalize_host(bad)
    for bad in ("console.example", "ftp://x", "https://x/path", "https://u@x", "https://x:99999"):
        with pytest.raises(ConfigError, match="--allow-origin"):
            normalize_origin(bad)
    # a non-loopback --host is answered too; a wildcard bind adds no name
    assert "10.1.2.3" in GuardConfig.build(bind="10.1.2.3").allow_hosts
    assert GuardConfig.build(bind="0.0.0.0").allow_hosts == GuardConfig().allow_hosts


def test_a_remote_bind_without_sigv4_warns() -> None:
    with pytest.raises(ConfigError, match="--allow-remote"):
        check_bind("192.0.2.10", allow_remote=False)
    warning = check_bind("192.0.2.10", allow_remote=True)
    assert warning is not None and "--auth sigv4" in warning
    assert check_bind("192.0.2.10", allow_remote=True, signed=True) is None
    assert check_bind("127.0.0.1", allow_remote=False) is None


# ---------------------------------------------------------------- cross-site requests


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://localhost:1"},  # another local web server is another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
], ids=["foreign", "null", "other-port", "cross-site", "same-site"])
def test_state_changing_requests_from_foreign_pages_are_refused(
        server: ServerThread, route: str, headers: dict[str, str]) -> None:
    path = routes(server)[route]
    before = executions(server)
    answer = request(server.port, "POST", path, b"{}",
                     headers={**headers, "Content-Type": "application/json"})
    assert_error(answer, 403, "AccessDeniedException")
    assert "access-control-allow-origin" not in answer.headers
    assert executions(server) == before


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("media", ["text/plain", "text/plain;charset=UTF-8",
                                   "application/x-www-form-urlencoded",
                                   "Multipart/Form-Data; boundary=x"])
def test_simple_content_types_are_refused(server: ServerThread, route: str, media: str) -> None:
    path = routes(server)[route]
    before = executions(server)
    answer = request(server.port, "POST", path, b'{"a": 1}', headers={"Content-Type": media})
    assert_error(answer, 415, "UnsupportedMediaTypeException")
    assert executions(server) == before


@pytest.mark.parametrize("route", ROUTES)
def test_an_allowed_origin_gets_through_with_cors_headers(
        server: ServerThread, route: str) -> None:
    answer = request(server.port, "POST", routes(server)[route], b"{}",
                     headers={"Origin": CONSOLE, "Sec-Fetch-Site": "cross-site",
                              "Content-Type": "application/json"})
    # the route's own answer (an unknown callback, a bad token, ...), not a refusal
    assert answer.headers.get("x-amzn-errortype") not in (
        "AccessDeniedException", "UnsupportedMediaTypeException")
    assert answer.status < 500
    assert answer.headers["access-control-allow-origin"] == CONSOLE
    assert "x-amzn-errortype" in answer.headers["access-control-expose-headers"].lower()


def test_same_origin_pages_may_change_state(server: ServerThread) -> None:
    before = executions(server)
    answer = request(server.port, "POST", "/2015-03-31/functions/adder/invocations", b'{"a": 1}',
                     headers={"Origin": f"http://localhost:{server.port}",
                              "Host": f"localhost:{server.port}", "Sec-Fetch-Site": "same-origin",
                              "X-Amz-Invocation-Type": "Event"})
    assert answer.status == 202
    assert executions(server) == before + 1


def test_reads_from_foreign_pages_get_no_cors_headers(server: ServerThread) -> None:
    arn = segment(an_execution(server))
    path = f"/2025-12-01/durable-executions/{arn}"
    foreign = request(server.port, "GET", path, headers={"Origin": "http://evil.example"})
    assert foreign.status == 200
    assert not any(h.startswith("access-control-") for h in foreign.headers)
    allowed = request(server.port, "GET", path, headers={"Origin": CONSOLE})
    assert allowed.headers["access-control-allow-origin"] == CONSOLE


def test_preflights_are_answered_for_allowed_origins_only(server: ServerThread) -> None:
    path = "/2015-03-31/functions/adder/invocations"
    asked = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type, x-amz-invocation-type"}
    answer = request(server.port, "OPTIONS", path, headers={"Origin": CONSOLE, **asked})
    assert answer.status == 204
    assert answer.headers["access-control-allow-origin"] == CONSOLE
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert answer.headers["access-control-allow-headers"] == "content-type, x-amz-invocation-type"
    refused = request(server.port, "OPTIONS", path,
                      headers={"Origin": "http://evil.example", **asked})
    assert_error(refused, 403, "AccessDeniedException")
    assert not any(h.startswith("access-control-") for h in refused.headers)


# ---------------------------------------------------------------- body limits

LIMITS = [
    ("invoke", {}, INVOKE_LIMIT, "RequestTooLargeException"),
    ("invoke", {"X-Amz-Invocation-Type": "Event"}, EVENT_INVOKE_LIMIT,
     "RequestTooLargeException"),
    ("invoke", {"X-Amz-Invocation-Type": "DryRun"}, INVOKE_LIMIT, "RequestTooLargeException"),
    ("checkpoint", {}, CHECKPOINT_LIMIT, "SerializedRequestEntityTooLargeException"),
    ("stop", {}, ERROR_BODY_LIMIT, "SerializedRequestEntityTooLargeException"),
    ("succeed", {}, CALLBACK_RESULT_LIMIT, "SerializedRequestEntityTooLargeException"),
    ("fail", {}, ERROR_BODY_LIMIT, "SerializedRequestEntityTooLargeException"),
    ("heartbeat", {}, DEFAULT_LIMIT, "SerializedRequestEntityTooLargeException"),
]


def test_the_limits_are_lambdas() -> None:
    assert INVOKE_LIMIT == 6_291_456  # synchronous Invoke
    assert EVENT_INVOKE_LIMIT == CALLBACK_RESULT_LIMIT == 1_048_576
    assert CHECKPOINT_LIMIT > 2 * INVOKE_LIMIT  # one 6 MB result, escaped, fits


@pytest.mark.parametrize(("route", "headers", "limit", "code"), LIMITS,
                         ids=[f"{r}-{h.get('X-Amz-Invocation-Type', '')}" for r, h, *_ in LIMITS])
def test_a_body_over_its_limit_is_refused_and_one_at_it_is_not(
        server: ServerThread, route: str, headers: dict[str, str], limit: int, code: str) -> None:
    path = routes(server)[route]
    before = executions(server)
    over = request(server.port, "POST", path, b"1" * (limit + 1),
                   headers={**headers, "Content-Type": "application/json"})
    assert_error(over, 413, code)
    assert over.headers["connection"] == "close"
    assert executions(server) == before
    at = request(server.port, "POST", path, b"1" * limit,
                 headers={**headers, "Content-Type": "application/json"})
    assert at.status != 413 and at.status < 500, at.body[:200]


def test_boto3_reads_the_413_of_an_oversized_invoke(lam: Any, server: ServerThread) -> None:
    before = executions(server)
    with pytest.raises(ClientError) as info:
        lam.invoke(FunctionName="adder", Payload=b"1" * (INVOKE_LIMIT + 1))
    assert info.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert isinstance(info.value, lam.exceptions.RequestTooLargeException)
    assert executions(server) == before
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        lam.invoke(FunctionName="adder", InvocationType="Event",
                   Payload=b"1" * (EVENT_INVOKE_LIMIT + 1))


def test_a_payload_of_exactly_six_mb_is_invoked(lam: Any) -> None:
    payload = json.dumps({"x": "a" * (INVOKE_LIMIT - 9)}).encode()
    assert len(payload) == INVOKE_LIMIT
    res = lam.invoke(FunctionName="echo", Payload=payload)
    assert "FunctionError" not in res
    assert len(json.loads(res["Payload"].read())["echo"]["x"]) == INVOKE_LIMIT - 9


def test_an_announced_huge_body_is_refused_before_any_of_it_is_sent(
        server: ServerThread) -> None:
    head = (f"POST /2015-03-31/functions/adder/invocations HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nContent-Length: {400 * MiB}\r\n\r\n").encode()
    received, sent = send_until_answered(server.port, head, [b"x" * 65536])
    assert sent == 0
    status, headers = head_of(received)
    assert status == 413 and headers["x-amzn-errortype"] == "RequestTooLargeException"


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_7_mb_body_is_refused_before_it_is_all_sent(server: ServerThread,
                                                      chunked: bool) -> None:
    # 6.5 MiB in 256 KiB pieces, then the last half MiB (and the end of the body) only
    # once the server has answered, or has had ample time to
    data = [b"x" * (256 << 10)] * 26 + [b"x" * (512 << 10)]
    total = sum(map(len, data))
    assert total == 7 * MiB
    before = executions(server)
    if chunked:
        pieces = [f"{len(d):x}\r\n".encode() + d + b"\r\n" for d in data]
        pieces[-1] += b"0\r\n\r\n"
        framing = "Transfer-Encoding: chunked"
    else:
        pieces = data
        framing = f"Content-Length: {total}"
    head = (f"POST /2015-03-31/functions/adder/invocations HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n{framing}\r\n\r\n").encode()
    received, sent = send_until_answered(server.port, head, pieces)
    status, headers = head_of(received)
    assert status == 413 and headers["x-amzn-errortype"] == "RequestTooLargeException"
    # answered while the body was still coming, so it was never held whole
    assert sent < sum(map(len, pieces))
    assert executions(server) == before


# ---------------------------------------------------------------- malformed input


def deep(levels: int) -> bytes:
    return ("[" * levels + "]" * levels).encode()


def test_deep_json_is_a_400_at_every_json_route(server: ServerThread) -> None:
    paths = routes(server)
    for route in ("invoke", "checkpoint", "stop", "fail"):
        for body in (b"[" * 100_000, deep(MAX_JSON_DEPTH + 1),
                     b'{"Updates": ' + deep(5000) + b"}"):
            body_msg = assert_error(request(server.port, "POST", paths[route], body),
                                    400, "InvalidRequestContentException")
            assert f"deeper than {MAX_JSON_DEPTH}" in body_msg["message"]
    # at the limit, the body is parsed and judged on its shape
    answer = request(server.port, "POST", paths["checkpoint"], deep(MAX_JSON_DEPTH))
    assert_error(answer, 400, "InvalidRequestContentException")
    assert "JSON object" in answer.json()["message"]


@pytest.mark.parametrize("function", ["adder", "echo"])
@pytest.mark.parametrize("body", [b'"\xff\xfe"', '{"a": 1}'.encode("utf-16"),
                                  b'{"a": "\xed\xa0\x80"}'], ids=["latin", "utf16", "surrogate"])
def test_a_payload_that_is_not_utf8_is_a_400(server: ServerThread, function: str,
                                             body: bytes) -> None:
    before = executions(server)
    answer = request(server.port, "POST", f"/2015-03-31/functions/{function}/invocations", body)
    message = assert_error(answer, 400, "InvalidRequestContentException")["message"]
    assert "UTF-8" in message
    assert executions(server) == before


def test_an_empty_payload_is_an_empty_event(server: ServerThread) -> None:
    answer = request(server.port, "POST", "/2015-03-31/functions/echo/invocations", b"  \n")
    assert answer.status == 200 and answer.json() == {"echo": {}}


def test_a_callback_result_that_is_not_utf8_is_a_400(server: ServerThread) -> None:
    answer = request(server.port, "POST", "/2025-12-01/durable-execution-callbacks/AAAA/succeed",
                     b"\xff\x00")
    assert "UTF-8" in assert_error(answer, 400, "InvalidParameterValueException")["message"]


@pytest.mark.parametrize("query", [
    "Marker=garbage", "Marker=12", "Marker=:arn", "Marker=%D9%A1%D9%A2:x",
    "Marker=o:-3&ReverseOrder=true", "Marker=o:x&ReverseOrder=true",
    "MaxItems=1_0", "MaxItems=%D9%A1%D9%A2", "MaxItems=+5", "MaxItems=%205", "MaxItems=1e3",
    "MaxItems=99999999999999999999", "MaxItems=-1", "ReverseOrder=yes",
    "StartedAfter=nan", "StartedAfter=inf", "StartedBefore=1e999",
    "StartedAfter=yesterday", "StartedBefore=2026-13-01T00:00:00Z",
    "Statuses=SLEEPING",
])
def test_bad_list_queries_are_a_400(server: ServerThread, query: str) -> None:
    answer = request(server.port, "GET", f"/2025-12-01/functions/adder/durable-executions?{query}")
    assert_error(answer, 400, "InvalidParameterValueException")


@pytest.mark.parametrize(("method", "path", "code"), [
    ("GET", "/2025-12-01/durable-executions/" + "a" * 1025, "InvalidParameterValueException"),
    ("GET", "/2025-12-01/durable-executions/%ff%fe/history?MaxItems=x",
     "InvalidParameterValueException"),
    ("GET", "/2015-03-31/functions/adder/invocations", "UnknownOperationException"),
    ("POST", "/2025-12-01/durable-execution-callbacks/a!b/succeed",
     "InvalidParameterValueException"),
    ("POST", "/2025-12-01/durable-execution-callbacks/" + "A" * 1025 + "/heartbeat",
     "InvalidParameterValueException"),
    ("POST", "/2015-03-31/functions/" + "f" * 257 + "/invocations",
     "InvalidParameterValueException"),
    ("PATCH", "/2025-12-01/durable-executions/x/stop", "UnknownOperationException"),
    ("GET", "/2025-12-01/nothing-here", "UnknownOperationException"),
])
def test_bad_paths_and_methods_are_4xx(server: ServerThread, method: str, path: str,
                                       code: str) -> None:
    answer = request(server.port, method, path, b"" if method != "GET" else None)
    assert 400 <= answer.status < 500
    assert_error(answer, answer.status, code)


def test_a_bad_client_token_is_a_400(server: ServerThread) -> None:
    arn, _ = server.service.runtime.engine.start("raw", "{}")
    inv = server.service.runtime.engine.begin_invocation(arn)
    assert inv is not None
    for client_token, code in (({"x": 1}, "InvalidRequestContentException"),
                               ("a" * 65, "InvalidParameterValueException"),
                               ("with space", "InvalidParameterValueException")):
        body = json.dumps({"CheckpointToken": inv.token, "Updates": [],
                           "ClientToken": client_token}).encode()
        answer = request(server.port, "POST",
                         f"/2025-12-01/durable-executions/{segment(arn)}/checkpoint", body)
        assert_error(answer, 400, code)


@pytest.mark.parametrize(("update", "problem"), [
    ({"Id": ["s1"], "Type": "STEP", "Action": "START"}, "Updates[0].Id"),
    ({"Id": "s1", "Type": "STEP"}, "Action"),
    ({"Id": "s1", "Type": "STEP", "Action": "START", "Payload": {"a": 1}}, "Payload"),
    ({"Id": "s1", "Type": "STEP", "Action": "FAIL", "Error": {"ErrorMessage": [1]}},
     "ErrorMessage"),
    ({"Id": "s1", "Type": "STEP", "Action": "START", "Colour": "red"}, "Colour"),
])
def test_a_checkpoint_update_not_of_the_models_shape_is_a_400(
        server: ServerThread, update: dict[str, Any], problem: str) -> None:
    arn, _ = server.service.runtime.engine.start("raw", "{}")
    inv = server.service.runtime.engine.begin_invocation(arn)
    assert inv is not None
    body = json.dumps({"CheckpointToken": inv.token, "Updates": [update]}).encode()
    answer = request(server.port, "POST",
                     f"/2025-12-01/durable-executions/{segment(arn)}/checkpoint", body)
    assert problem in assert_error(answer, 400, "InvalidRequestContentException")["message"]
    # nothing was applied: the token still works
    state = request(server.port, "GET", f"/2025-12-01/durable-executions/{segment(arn)}/state"
                    f"?CheckpointToken={segment(inv.token)}")
    assert state.status == 200 and [o["Type"] for o in state.json()["Operations"]] == [
        "EXECUTION"]


def test_a_stop_or_failure_error_not_of_the_models_shape_is_a_400(server: ServerThread) -> None:
    paths = routes(server)
    for route in ("stop", "fail"):
        for error in ({"ErrorMessage": {"nested": 1}}, {"StackTrace": "not a list"}, [1]):
            answer = request(server.port, "POST", paths[route], json.dumps(error).encode())
            assert_error(answer, 400, "InvalidRequestContentException")
