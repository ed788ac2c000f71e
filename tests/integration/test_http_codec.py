"""The codec server: payloads decoded and encoded over HTTP, behind the API's guard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from botocore.config import Config
from http_raw import assert_error, request

import durable_ext
from durable_ext.http import LocalService, ServerThread
from durable_ext.http.codec import MAX_PAYLOADS
from durable_ext.http.guard import GuardConfig

CONSOLE = "http://console.test:8080"
SPEC = "msgpack+zstd"
DECODE = "/_durable_ext/codec/decode"
ENCODE = "/_durable_ext/codec/encode"


@durable_execution
@durable_ext.default_serdes(SPEC)
def orders(event: dict[str, Any], ctx: DurableContext) -> dict[str, Any]:
    lines = ctx.step(lambda _: [("sku-1", 2), ("sku-2", 1)], name="lines")
    return {"lines": len(lines)}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    svc = LocalService("memory://", virtual_time=True)
    svc.register("orders", orders)
    svc.enable_codec(SPEC)
    with ServerThread(svc, guard=GuardConfig.build(origins=[CONSOLE])) as srv:
        yield srv


def post(server: ServerThread, path: str, body: Any, **headers: str) -> Any:
    return request(server.port, "POST", path, json.dumps(body).encode(),
                   {"content-type": "application/json", **headers})


def test_payloads_of_a_boto3_history_decode(server: ServerThread) -> None:
    lam = boto3.client("lambda", endpoint_url=server.url, region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local",
                       config=Config(retries={"max_attempts": 1}))
    arn = lam.invoke(FunctionName="orders", Payload=b"{}")["DurableExecutionArn"]
    events = lam.get_durable_execution_history(DurableExecutionArn=arn,
                                               IncludeExecutionData=True)["Events"]
    [step] = [e for e in events if e["EventType"] == "StepSucceeded"]
    raw = step["StepSucceededDetails"]["Result"]["Payload"]
    res = post(server, DECODE, {"payloads": [{"data": raw, "executionArn": arn,
                                              "operationId": step["Id"]}, {"data": "plain"}]})
    assert res.status == 200
    first, second = res.json()["payloads"]
    assert first["Value"] == [["sku-1", 2], ["sku-2", 1]]
    assert second == {"Value": "plain", "Encoding": "text", "Chars": 5}


def test_encode_writes_what_the_handlers_serdes_reads(server: ServerThread) -> None:
    res = post(server, ENCODE, {"payloads": [{"value": {"approved": True, "by": "ops"}}]})
    [text] = res.json()["payloads"]
    assert durable_ext.serdes(SPEC).deserialize(text, None) == {"approved": True, "by": "ops"}


@pytest.mark.parametrize("body", [{}, {"payloads": "x"}, {"payloads": [1]},
                                  {"payloads": [{"data": 5}]},
                                  {"payloads": [{"data": "x"}] * (MAX_PAYLOADS + 1)}])
def test_malformed_requests_are_4xx(server: ServerThread, body: Any) -> None:
    assert_error(post(server, DECODE, body), 400, "InvalidRequestContentException")


def test_undecodable_payloads_are_views_not_errors(server: ServerThread) -> None:
    truncated = "\u00c1\x01m\x02\x92\x01"  # an array of two holding one item
    res = post(server, DECODE, {"payloads": [{"data": "wQFrAQAAAA"}, {"data": truncated}]})
    assert res.status == 200
    assert all("Undecoded" in p for p in res.json()["payloads"])


def test_only_configured_origins_reach_it(server: ServerThread) -> None:
    body = {"payloads": [{"data": "plain"}]}
    allowed = post(server, DECODE, body, origin=CONSOLE)
    assert allowed.status == 200
    assert allowed.headers.get("access-control-allow-origin") == CONSOLE
    assert_error(post(server, DECODE, body, origin="http://evil.test"), 403,
                 "AccessDeniedException")


def test_it_is_off_unless_enabled() -> None:
    with ServerThread(LocalService("memory://")) as srv:
        assert_error(post(srv, DECODE, {"payloads": []}), 404, "UnknownOperationException")


def test_one_answer_carries_decoded_views_within_its_budget(
        server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """Payloads that each inflate within their limits cannot add up past the answer's."""
    from durable_ext.serializers import readable

    monkeypatch.setattr(readable, "VIEW_CHARS", 1 << 20)
    bomb = durable_ext.serdes(SPEC).serialize("x" * 300_000, None)  # a few hundred bytes
    res = post(server, DECODE, {"payloads": [{"data": bomb}] * 10})
    assert res.status == 200 and len(res.body) < 2 << 20  # not 3 MB of views
    views = res.json()["payloads"]
    assert [v["Value"] for v in views if "Value" in v] == ["x" * 300_000] * 3
    spent = views[-1]["Undecoded"]
    assert spent["Encoding"] == SPEC and "limited to 1048576 characters" in spent["Reason"]


def test_a_decoded_history_page_shares_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from durable_ext.serializers import readable

    monkeypatch.setattr(readable, "VIEW_CHARS", 1 << 20)
    bomb = durable_ext.serdes(SPEC).serialize("x" * 300_000, None)
    events = [{"Id": str(i), "StepSucceededDetails": {"Result": {"Payload": bomb}}}
              for i in range(10)]
    page = readable.Decoder(SPEC).history({"Events": events})
    views = [e["StepSucceededDetails"]["Result"]["Decoded"] for e in page["Events"]]
    assert sum("Value" in v for v in views) == 3 and "Undecoded" in views[-1]
