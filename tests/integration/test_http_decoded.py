"""Decoded views in GetDurableExecution and its history: on request, on a server that has them.

The handler checkpoints msgpack+zstd; the default answers stay the Lambda API's bytes
(boto3 reads them as before), and ``decoded=true`` (or the header) adds the views.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from botocore.config import Config
from cli_server import serving
from http_raw import Answer, assert_error, request, segment

import durable_ext
from durable_ext.http import LocalService, ServerThread
from durable_ext.http.app import DECODED_HEADER
from durable_ext.serializers.base import SerDesContext

SPEC = "msgpack+zstd"
V = "/2025-12-01/durable-executions/"


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int


@durable_execution
@durable_ext.default_serdes(SPEC, types=[Line])
def orders(event: dict[str, Any], ctx: DurableContext) -> dict[str, Any]:
    # long enough that zstd pays off: the step's checkpoint is a compressed frame
    lines = ctx.step(lambda _: [Line(f"sku-{i:03d} blue widget", i) for i in range(40)],
                     name="lines")
    return {"lines": len(lines), "first": lines[0].sku}


def _lambda(url: str) -> Any:
    return boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local",
                        config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ServerThread, str]]:
    svc = LocalService("memory://", virtual_time=True)
    svc.register("orders", orders)
    svc.enable_decoded_views(SPEC, types=[Line])
    with ServerThread(svc) as srv:
        arn = _lambda(srv.url).invoke(FunctionName="orders",
                                      Payload=b'{"id": "o-1"}')["DurableExecutionArn"]
        yield srv, arn


def get(port: int, path: str, **headers: str) -> Answer:
    return request(port, "GET", path, headers=headers)


def _without_views(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_views(v) for k, v in value.items()
                if k != "Decoded" and not k.startswith("Decoded")}
    if isinstance(value, list):
        return [_without_views(v) for v in value]
    return value


def _step_payload(events: list[dict[str, Any]]) -> dict[str, Any]:
    [step] = [e for e in events if e["EventType"] == "StepSucceeded"]
    result: dict[str, Any] = step["StepSucceededDetails"]["Result"]
    return result


def test_history_decoded_on_request(served: tuple[ServerThread, str]) -> None:
    srv, arn = served
    path = V + segment(arn) + "/history"
    plain = get(srv.port, path)
    decoded = get(srv.port, path + "?decoded=true")
    assert plain.status == decoded.status == 200
    assert b"Decoded" not in plain.body
    # The views are added beside the payloads; nothing else of the answer changes.
    assert _without_views(decoded.json()) == plain.json()
    result = _step_payload(decoded.json()["Events"])
    assert result["Payload"] == _step_payload(plain.json()["Events"])["Payload"]
    view = result["Decoded"]
    assert view["Encoding"] == SPEC and view["Chars"] == len(result["Payload"])
    assert view["Value"][0] == {"$type": "Line", "sku": "sku-000 blue widget", "qty": 0}
    assert len(view["Value"]) == 40


def test_execution_decoded_by_header(served: tuple[ServerThread, str]) -> None:
    srv, arn = served
    plain = get(srv.port, V + segment(arn))
    decoded = get(srv.port, V + segment(arn), **{DECODED_HEADER: "true"})
    body = decoded.json()
    assert body["DecodedResult"]["Value"] == {"lines": 40, "first": "sku-000 blue widget"}
    assert body["DecodedInputPayload"]["Value"] == {"id": "o-1"}
    assert _without_views(body) == plain.json()
    assert b"Decoded" not in plain.body


def test_boto3_reads_the_default_answers(served: tuple[ServerThread, str]) -> None:
    srv, arn = served
    lam = _lambda(srv.url)
    desc = lam.get_durable_execution(DurableExecutionArn=arn)
    assert json.loads(desc["Result"]) == {"lines": 40, "first": "sku-000 blue widget"}
    assert "DecodedResult" not in desc
    events = lam.get_durable_execution_history(DurableExecutionArn=arn,
                                               IncludeExecutionData=True)["Events"]
    raw = _step_payload(events)["Payload"]
    ctx = SerDesContext("", arn)
    assert durable_ext.serdes(SPEC, types=[Line]).deserialize(raw, ctx)[1] == Line(
        "sku-001 blue widget", 1)


def test_bad_values_are_4xx(served: tuple[ServerThread, str]) -> None:
    srv, arn = served
    assert_error(get(srv.port, V + segment(arn) + "?decoded=yes"), 400,
                 "InvalidParameterValueException")
    assert_error(get(srv.port, V + segment(arn), **{DECODED_HEADER: "1"}), 400,
                 "InvalidParameterValueException")


def test_a_server_without_a_decoder_refuses_the_views() -> None:
    svc = LocalService("memory://", virtual_time=True)
    svc.register("orders", orders)
    with ServerThread(svc) as srv:
        arn = _lambda(srv.url).invoke(FunctionName="orders",
                                      Payload=b"{}")["DurableExecutionArn"]
        res = get(srv.port, V + segment(arn) + "/history?decoded=true")
        assert_error(res, 400, "InvalidParameterValueException")
        assert "--decode" in res.json()["message"]
        assert get(srv.port, V + segment(arn) + "/history?decoded=false").status == 200


HANDLER = '''
from aws_durable_execution_sdk_python import durable_execution
import durable_ext

@durable_execution
@durable_ext.default_serdes("msgpack+zstd")
def handler(event, ctx):
    return ctx.step(lambda _: {"words": ["durable"] * 300}, name="words")["words"][0]
'''


def test_serve_decode_flag(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(HANDLER)
    args = ["--backend", "memory://", "--virtual-time", "--isolation", "inline",
            "--handlers", "app:handler", "--decode", SPEC]
    with serving(args, tmp_path) as srv:
        lam = _lambda(f"http://127.0.0.1:{srv.port}")
        arn = lam.invoke(FunctionName="app", Payload=b"{}")["DurableExecutionArn"]
        res = get(srv.port, V + segment(arn) + "/history?decoded=true")
        view = _step_payload(res.json()["Events"])["Decoded"]
        assert view["Encoding"] == SPEC
        assert view["Value"] == {"words": ["durable"] * 300}
