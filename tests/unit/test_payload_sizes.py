"""A pipeline's checkpoint string is never longer than the SDK's JSON, but for a constant.

The SDK stores an over-limit child-context result empty and rebuilds it by replay, so a
serializer longer than the SDK's JSON changes behaviour; durable_ext's bound is
``durable_ext.serializers.shortest.SLACK`` characters over the shorter of the SDK's two
JSON serializers, with or without compression.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.constants import CHECKPOINT_SIZE_LIMIT_BYTES
from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, JsonSerDes, SerDesContext
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.shortest import SLACK

CTX = SerDesContext("op-size", "arn:size")
SDK = (ExtendedTypeSerDes(), JsonSerDes())
PIPELINES = [durable_ext.serdes("msgpack"), durable_ext.serdes("msgpack+zstd"),
             durable_ext.serdes("msgpack+zlib")]


def sdk_length(value: Any) -> int:
    return min(len(s.serialize(value, CTX)) for s in SDK)


def assert_within_bound(value: Any) -> None:
    bound = sdk_length(value) + SLACK
    for p in PIPELINES:
        text = p.serialize(value, CTX)
        assert len(text) <= bound, (p, len(text), bound)
        assert p.deserialize(text, CTX) == value


JSON_VALUES = st.recursive(
    # NaN never equals itself, so the round trip check would not hold; infinities are in
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=400),
    lambda inner: st.lists(inner, max_size=30)
    | st.dictionaries(st.text(max_size=30), inner, max_size=12),
    max_leaves=300,
)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(JSON_VALUES)
@example({"0000000000000000": 0.0})  # base64 armor's third on the key outweighed one float
def test_every_json_value_is_within_the_bound(value: Any) -> None:
    assert_within_bound(value)


RNG = random.Random(5)
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "über", "naïve"]


@pytest.mark.parametrize(
    "value",
    [
        {"data": "A" * 200_000},
        {"prose": " ".join(RNG.choice(WORDS) for _ in range(40_000))},
        {"html": '<div class="row"><p>Hello <b>world</b></p></div>\n' * 4_000},
        {"doc": json.dumps([{"k": i, "v": "x" * 10} for i in range(3_000)])},
        {"letters": "".join(RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(100_000))},
        [0.5] * 2_000,
        [round(RNG.random() * 100, 2) for _ in range(2_000)],
        [{"name": f"alice-cooper-{i}", "score": 0.5} for i in range(1_000)],
        {"text": "日本語のテキスト" * 5_000},
        [RNG.random() for _ in range(2_000)],
    ],
    ids=["ascii", "prose", "html", "json-in-string", "random-letters", "short-floats",
         "two-decimals", "records-with-a-float", "cjk", "random-floats"],
)
def test_text_and_float_heavy_values_are_within_the_bound(value: Any) -> None:
    assert_within_bound(value)


def test_values_json_cannot_carry_exactly_keep_their_types() -> None:
    # float-heavy, but with a tuple, int keys or bytes: JSON would change them
    for value in ([0.5] * 100 + [(1, 2)], {1: [0.5] * 100}, [0.5] * 100 + [b"x"]):
        text = PIPELINES[0].serialize(value, CTX)
        assert PIPELINES[0].deserialize(text, CTX) == value
        assert type(PIPELINES[0].deserialize(text, CTX)) is type(value)
    # NaN and Infinity are not JSON: written (as the SDK writes them) only where the armor
    # would break the size bound, and read back exactly either way
    for value in ([0.5] * 100 + [math.nan], [0.25] * 100 + [math.inf], [math.nan]):
        text = PIPELINES[0].serialize(value, CTX)
        assert len(text) <= sdk_length(value) + SLACK
        assert repr(PIPELINES[0].deserialize(text, CTX)) == repr(value)
    assert "NaN" not in PIPELINES[0].serialize({"x": "y" * 400, "nan": math.nan}, CTX)
    # a {"t", "v"} object would read back as the SDK's type envelope
    envelope_like = {"t": [0.5] * 100, "v": [0.25] * 100}
    assert PIPELINES[0].deserialize(PIPELINES[0].serialize(envelope_like, CTX), CTX) \
        == envelope_like


def test_a_250_kb_text_child_result_fits_the_checkpoint_as_under_json() -> None:
    big = "lorem ipsum dolor sit amet " * 9_300  # 251,100 characters
    seen: list[Any] = []

    @durable_execution
    @durable_ext.default_serdes("msgpack")
    def handler(event: Any, ctx: DurableContext) -> Any:
        out = ctx.run_in_child_context(lambda c: {"data": big}, name="child")
        seen.append(out)
        ctx.create_callback(name="pause").result()  # a second invocation replays it
        return len(out["data"])

    assert len(json.dumps({"data": big})) < CHECKPOINT_SIZE_LIMIT_BYTES
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("fn", handler)
        arn = rt.start("fn", {})
        rt.run_until_idle(60)
        events = rt.history(arn)["Events"]
        done = next(e for e in events if e["EventType"] == "ContextSucceeded")
        stored = done["ContextSucceededDetails"]["Result"]["Payload"]
        assert len(stored) <= len(json.dumps({"data": big})) + SLACK
        child = next(op for op in rt.store.operations(arn) if op.data.get("Name") == "child")
        assert child.data["ContextDetails"].get("ReplayChildren") is False  # no replay mode
        cb = next(e for e in events if e["EventType"] == "CallbackStarted")
        rt.send_callback_success(cb["CallbackStartedDetails"]["CallbackId"], "go")
        rt.run_until_idle(60)
        assert rt.describe(arn)["Status"] == "SUCCEEDED"
    assert all(s == {"data": big} for s in seen)


def test_json_a_reader_would_refuse_is_never_written_instead_of_the_armor() -> None:
    # float-heavy, so JSON is shorter; but its brackets (in a string) exceed max_items
    value = {"data": "[" * 9_000_000, "f": [0.1] * 2_000}
    text = PIPELINES[0].serialize(value, CTX)
    assert not text.startswith("{")
    assert PIPELINES[0].deserialize(text, CTX) == value


@pytest.mark.parametrize("value", ["nested step result", "", "日本", 0, -7, 10**9, 0.1, 1e300,
                                   True, False, None])
def test_bare_json_scalars_are_written_as_the_json_the_sdk_would_write(value: Any) -> None:
    for pipeline in PIPELINES:
        text = pipeline.serialize(value, CTX)
        assert text == json.dumps(value)  # what json.loads of a step's result expects
        back = pipeline.deserialize(text, CTX)
        assert back == value and type(back) is type(value)


def test_scalars_json_would_change_or_lengthen_keep_the_format() -> None:
    for value in (math.nan, -math.inf, b"bytes", 2**80):
        text = PIPELINES[0].serialize(value, CTX)
        assert not text[:1].isascii() or text.startswith("w")  # armored, not JSON
        assert repr(PIPELINES[0].deserialize(text, CTX)) == repr(value)
    signed = durable_ext.serdes("pickle", options={"pickle": {"key": b"k" * 32}})
    assert signed.serialize("x", CTX) != '"x"'  # a signed format signs its scalars too
