"""The decoder: any payload as readable JSON, without the handler's classes or keys if need be."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.serdes import SerDesContext
from hypothesis import given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.readable import Decoder, readable

ARN = "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST/durable-execution/x/y"
CTX = SerDesContext("op-1", ARN)
KEY = {"localkey": {"key": b"k" * 32}}


class Tier(enum.Enum):
    GOLD = "gold"


@dataclasses.dataclass
class Order:
    id: str
    at: dt.datetime
    lines: tuple[int, ...]
    tier: Tier


ORDER = Order("o-1", dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC), (1, 2), Tier.GOLD)
WRITER = durable_ext.serdes("msgpack+zstd", types=[Order, Tier],
                            options={"zstd": {"threshold": 0}})


def test_objects_of_classes_the_decoder_lacks_are_shown_by_tag_and_fields() -> None:
    view = Decoder().payload(WRITER.serialize({"order": ORDER, "raw": b"\x00"}, CTX))
    assert view is not None
    assert view["Value"] == {
        "order": {"$type": "Order", "id": "o-1", "at": "2024-01-02T03:04:00+00:00",
                  "lines": [1, 2], "tier": {"$type": "Tier", "$member": "GOLD"}},
        "raw": {"$bytes": "AA=="},
    }
    json.dumps(view)  # plain JSON all through


def test_with_the_handlers_types_objects_decode_as_themselves() -> None:
    view = Decoder("msgpack", types=[Order, Tier]).payload(WRITER.serialize(ORDER, CTX))
    assert view is not None and view["Value"]["$type"] == "Order"
    assert view["Value"]["tier"] == "gold"  # a real enum shows its value


def test_encrypted_payloads_are_described_without_the_key_and_decoded_with_it() -> None:
    text = durable_ext.serdes("msgpack+localkey", options=KEY).serialize([1, 2], CTX)
    view = Decoder().payload(text, operation_id="op-1", execution_arn=ARN)
    assert view is not None and set(view) == {"Undecoded"}
    assert view["Undecoded"]["Encrypted"] is True
    assert view["Undecoded"]["Encoding"] == "…+localkey"
    assert "localkey" in view["Undecoded"]["Reason"]
    keyed = Decoder("msgpack+localkey", options=KEY)
    assert keyed.payload(text, operation_id="op-1", execution_arn=ARN)["Value"] == [1, 2]
    # bound to where it was written: another operation's view is refused, not faked
    moved = keyed.payload(text, operation_id="op-2", execution_arn=ARN)
    assert moved is not None and "Undecoded" in moved


@pytest.mark.parametrize("text,value,encoding", [
    ("successful", "successful", "text"),
    ('{"approved": true}', {"approved": True}, "json"),
    ('{"t": "dt", "v": "2024-01-01T00:00:00"}', "2024-01-01T00:00:00", "json"),
])
def test_outside_text_and_sdk_json_are_shown_as_sent(text: str, value: Any,
                                                     encoding: str) -> None:
    view = Decoder().payload(text)
    assert view == {"Value": value, "Encoding": encoding, "Chars": len(text)}


def test_readable_covers_the_types_payloads_carry() -> None:
    assert readable({1: {3, 1}, "d": Decimal("1.50"), "u": uuid.UUID(int=1),
                     "td": dt.timedelta(seconds=90), "n": float("nan")}) == {
        "1": [1, 3], "d": "1.50", "u": "00000000-0000-0000-0000-000000000001",
        "td": {"$seconds": 90.0}, "n": "nan"}
    deep: Any = []
    for _ in range(200):
        deep = [deep]
    json.dumps(readable(deep))  # cut, not a RecursionError


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300)
       | st.binary(max_size=300).map(lambda b: "\u00c1" + b.decode("latin-1")))
def test_any_string_gets_a_view_never_an_exception(text: str) -> None:
    view = Decoder().payload(text)
    assert view is not None and ("Value" in view or "Undecoded" in view)
    json.dumps(view)


def test_a_history_gets_a_decoded_view_beside_every_payload() -> None:
    @durable_execution
    @durable_ext.default_serdes("msgpack+zstd", types=[Order, Tier])
    def handler(event: Any, ctx: DurableContext) -> Any:
        ctx.step(lambda _: ORDER, name="load")
        return {"done": (1, 2)}

    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("fn", handler)
        arn = rt.start("fn", {"id": 7})
        rt.run_until_idle(30)
        history = rt.history(arn, include_execution_data=True)
    decoded = Decoder().history(history, execution_arn=arn)
    assert decoded is not history
    [step] = [e for e in decoded["Events"] if e["EventType"] == "StepSucceeded"]
    assert step["StepSucceededDetails"]["Result"]["Decoded"]["Value"]["id"] == "o-1"
    [started] = [e for e in decoded["Events"] if e["EventType"] == "ExecutionStarted"]
    assert started["ExecutionStartedDetails"]["Input"]["Decoded"]["Value"] == {"id": 7}
    [done] = [e for e in decoded["Events"] if e["EventType"] == "ExecutionSucceeded"]
    assert done["ExecutionSucceededDetails"]["Result"]["Decoded"]["Value"] == {"done": [1, 2]}
    # the raw payloads are kept as they were
    assert all("Decoded" not in json.dumps(e, default=str) for e in history["Events"])
