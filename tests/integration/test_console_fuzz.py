"""Fuzz the console's query parameters and action bodies on a real server: never a 500.

Pages and actions take hostile input from any link a visitor follows: hypothesis builds
query strings from the console's own parameter names (real and random values: any text,
digits of other scripts, times at the ends of the calendar) and JSON bodies of any shape
and depth. Every answer must be below 500. Example counts are bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_ext.console.app import ConsoleSettings
from durable_ext.console.server import ConsoleServer, guarded_console
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.readable import Decoder

pytestmark = pytest.mark.integration

FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


@durable_execution
def done(event: Any, ctx: DurableContext) -> str:
    ctx.step(lambda _: {"n": 1}, name="one")
    return "ok"


@pytest.fixture(scope="module")
def console() -> Iterator[tuple[httpx.Client, str]]:
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("done", done)
        arn = rt.start("done", {}, name="ended")
        rt.run_until_idle()
        app = guarded_console(rt, ConsoleSettings(decoder=Decoder()))
        with ConsoleServer(app) as server, \
                httpx.Client(base_url=server.url, timeout=30) as http:
            yield http, arn


_EDGE_TEXT = st.sampled_from([
    "", "0", "25", "²", "٣", "\uff12\uff15", "1_000", " 50", "-1", "99999999999", "\x00",
    "%", "arn:",
    "0001-01-01T00:00+01:00", "9999-12-31T23:59-14:00", "9999-12-31T23:59", "0001-01-01",
    "2026-13-01T00:00", "2026-01-01T00:00+25:00", "nan", "1e309", "Z", "T",
    "RUNNING", "SUCCEEDED", "main", "rows", "detail", "1:arn:x", "x" * 3000,
])
_VALUE = st.one_of(_EDGE_TEXT, st.text(max_size=40),
                   st.integers(-10**12, 10**12).map(str))
_PAGE_PARAMS = {
    "/": ["status", "function", "name", "after", "before", "size", "marker", "fragment"],
    "/execution": ["arn", "fragment"],
    "/operation": ["arn", "op", "fragment"],
    "/history": ["arn", "event"],
    "/api/state": ["arn"],
}


@st.composite
def page_requests(draw: st.DrawFn, arn: str) -> tuple[str, list[tuple[str, str]]]:
    path = draw(st.sampled_from(sorted(_PAGE_PARAMS)))
    names = _PAGE_PARAMS[path]
    pairs = draw(st.lists(st.tuples(st.sampled_from(names),
                                    st.one_of(_VALUE, st.just(arn))), max_size=6))
    return path, pairs


@FUZZ
@given(data=st.data())
def test_no_query_string_answers_a_server_error(
        console: tuple[httpx.Client, str], data: st.DataObject) -> None:
    http, arn = console
    path, pairs = data.draw(page_requests(arn))
    answer = http.get(path, params=pairs)
    assert answer.status_code < 500, (path, pairs, answer.text[:300])


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              _EDGE_TEXT, st.text(max_size=20), st.just("ARN")),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(
                                ["arn", "callback_id", "outcome", "payload", "message",
                                 "reason", "x"]), inner, max_size=5)),
    max_leaves=20)


@FUZZ
@given(action=st.sampled_from(["stop", "pause", "resume", "delete", "rerun", "callback"]),
       body=st.one_of(_JSON.map(json.dumps),
                      st.integers(1, 20_000).map(lambda n: "[" * n + "]" * n),
                      st.integers(1, 20_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
                      st.binary(max_size=64).map(lambda b: b.decode("latin-1"))))
def test_no_action_body_answers_a_server_error(
        console: tuple[httpx.Client, str], action: str, body: str) -> None:
    http, arn = console
    body = body.replace('"ARN"', json.dumps(arn))  # the real execution, now and then
    answer = http.post(f"/api/{action}", content=body.encode("utf-8", "surrogatepass"),
                       headers={"Content-Type": "application/json"})
    assert answer.status_code < 500, (action, body[:200], answer.text[:300])


@pytest.mark.parametrize(("path", "params"), [
    ("/", {"size": "²"}),
    ("/", {"after": "0001-01-01T00:00+01:00"}),
    ("/", {"before": "9999-12-31T23:59-14:00"}),
])
def test_out_of_range_query_values_are_refused_with_400(
        console: tuple[httpx.Client, str], path: str, params: dict[str, str]) -> None:
    http, _ = console
    answer = http.get(path, params=params)
    assert answer.status_code == 400, answer.text[:300]
    assert "Cannot show this" in answer.text


def test_json_nested_past_the_parser_s_depth_is_refused_with_400(
        console: tuple[httpx.Client, str]) -> None:
    http, _ = console
    answer = http.post("/api/stop", content=b"[" * 30_000,
                       headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "JSON" in answer.json()["message"]
