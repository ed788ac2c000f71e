"""Callback results under default_serdes are what the SDK hands over: the text that was sent.

Handlers written for the SDK's pass-through callbacks keep working when they adopt
`default_serdes("msgpack")`: JSON text stays text, plain text never fails the execution,
whatever an outside system sends. `callback_serdes=True` opts in to decoding payloads a
durable_ext sender framed, and still hands any other text over unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.serdes import SerDesContext

import durable_ext
from durable_ext.runtime import Runtime, VirtualClock

PAYLOADS = {
    "json text": '{"approved": true, "by": "ops"}',
    "plain text": "successful",
    "text starting like base64 armor": "wonderful news",
    "empty": "",
    "binary-looking": "\x00\x01\xff\xfe\u00c1\u00c1garbage",
    "large": "A" * 300_000,
    "unicode": "approved by 日本",
}


def _runtime() -> Runtime:
    return Runtime("memory://", clock=VirtualClock())


def _run(handler: Any, payloads: list[str]) -> dict[str, Any]:
    with _runtime() as rt:
        rt.register("fn", handler)
        arn = rt.start("fn", {})
        rt.run_until_idle(30)
        for payload in payloads:
            events = rt.history(arn)["Events"]
            started = [e["CallbackStartedDetails"]["CallbackId"] for e in events
                       if e["EventType"] == "CallbackStarted"]
            done = {e.get("Id") for e in events if e["EventType"].startswith("CallbackSucceeded")}
            ids = [e["CallbackStartedDetails"]["CallbackId"] for e in events
                   if e["EventType"] == "CallbackStarted" and e.get("Id") not in done]
            assert ids, f"no callback waiting among {started}"
            rt.send_callback_success(ids[0], payload)
            rt.run_until_idle(30)
        desc = rt.describe(arn)
    assert desc["Status"] == "SUCCEEDED", desc.get("Error")
    result: dict[str, Any] = json.loads(desc["Result"])
    return result


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_create_callback_hands_over_what_was_sent(payload: str) -> None:
    @durable_execution
    @durable_ext.default_serdes("msgpack")
    def handler(event: Any, ctx: DurableContext) -> Any:
        got = ctx.create_callback(name="cb").result()
        return {"type": type(got).__name__, "value": got}

    out = _run(handler, [payload])
    # the SDK hands an empty result over as None; everything else is the text itself
    assert out == ({"type": "NoneType", "value": None} if payload == ""
                   else {"type": "str", "value": payload})


@pytest.mark.parametrize("payload", ["successful", '{"n": 1}', "wonderful"])
def test_wait_for_callback_and_map_children_hand_over_what_was_sent(payload: str) -> None:
    @durable_execution
    @durable_ext.default_serdes("msgpack+zstd")
    def handler(event: Any, ctx: DurableContext) -> Any:
        direct = ctx.wait_for_callback(lambda callback_id, _ctx: None, name="wfc")
        in_child = ctx.run_in_child_context(
            lambda c: c.create_callback(name="child-cb").result(), name="child"
        )
        in_map = ctx.map(
            [1], lambda c, x, i, items: c.create_callback(name="map-cb").result(), name="m"
        ).get_results()
        return {"direct": direct, "child": in_child, "map": in_map}

    out = _run(handler, [payload, payload, payload])
    assert out == {"direct": payload, "child": payload, "map": [payload]}


def test_callback_serdes_decodes_framed_payloads_and_hands_over_the_rest() -> None:
    sender = durable_ext.serdes("msgpack")
    framed = sender.serialize({"ids": (1, 2), "ok": True}, SerDesContext())

    @durable_execution
    @durable_ext.default_serdes("msgpack", callback_serdes=True)
    def handler(event: Any, ctx: DurableContext) -> Any:
        first = ctx.create_callback(name="a").result()
        second = ctx.create_callback(name="b").result()
        return {"first_is_tuple": first["ids"] == (1, 2), "second": second}

    out = _run(handler, [framed, "plain text from a webhook"])
    assert out == {"first_is_tuple": True, "second": "plain text from a webhook"}


@pytest.mark.parametrize(
    "text",
    [
        "\u00c1\x03abc\x01 and then some words",  # a latin-1 sentence shaped like a header
        "wQFxAWJvZHk=",  # base64 of a header naming no stage ("q")
        "wQJzMwE",  # the S3 stage spelled by its name, which is no stage id
    ],
)
def test_text_shaped_like_a_frame_of_no_known_stage_is_handed_over(text: str) -> None:
    @durable_execution
    @durable_ext.default_serdes("msgpack", callback_serdes=True)
    def handler(event: Any, ctx: DurableContext) -> Any:
        return {"got": ctx.create_callback(name="a").result()}

    assert _run(handler, [text]) == {"got": text}
