"""The json format: compact JSON where JSON is exact, the SDK's envelope otherwise."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, JsonSerDes, SerDesContext
from hypothesis import given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.serializers.frames import armor, frame

CTX = SerDesContext("op-json", "arn:json")
JSON = durable_ext.serdes("json")
JSON_ZSTD = durable_ext.serdes("json+zstd")


@pytest.mark.parametrize("value", [
    {"order": {"id": 7, "lines": [{"sku": "a", "qty": 2}], "paid": True, "note": None}},
    [1, 2.5, "x", [], {}],
    {"t": 1, "x": 2},
])
def test_json_values_are_written_as_compact_plain_json(value: Any) -> None:
    text = JSON.serialize(value, CTX)
    assert text == json.dumps(value, separators=(",", ":"))  # any JSON reader reads it
    assert len(text) <= len(JsonSerDes().serialize(value, CTX))
    assert JSON.deserialize(text, CTX) == value


@pytest.mark.parametrize("value", [
    {"at": dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC), "id": uuid.UUID(int=5)},
    {"pair": (1, 2)},
    {"amount": Decimal("1.10"), "raw": b"\x00\x01"},
    {"t": [1], "v": (2,)},
    {"t": "s", "v": "looks like the envelope"},
])
def test_values_json_would_change_keep_their_types(value: Any) -> None:
    for pipeline in (JSON, JSON_ZSTD):
        back = pipeline.deserialize(pipeline.serialize(value, CTX), CTX)
        assert back == value
        assert {k: type(v) for k, v in back.items()} == {k: type(v) for k, v in value.items()}


def test_what_the_sdks_envelope_cannot_keep_is_as_under_the_sdk() -> None:
    # integer keys come back as strings, as the SDK's own JSON gives them back
    assert JSON.deserialize(JSON.serialize({1: "a"}, CTX), CTX) \
        == ExtendedTypeSerDes().deserialize(ExtendedTypeSerDes().serialize({1: "a"}, CTX))


def test_payloads_of_the_first_layout_still_decode() -> None:
    value = {"at": dt.date(2024, 5, 6), "pair": (1, "b")}
    old = armor(frame(b"j", 1, ExtendedTypeSerDes().serialize(value, CTX).encode()))
    assert JSON.deserialize(old, CTX) == value
    assert durable_ext.serdes("msgpack").deserialize(old, CTX) == value


def test_compressed_json_is_framed_and_reads_back() -> None:
    value = [{"customer": f"c-{i}", "total": i * 1.5} for i in range(2_000)]
    text = JSON_ZSTD.serialize(value, CTX)
    assert len(text) < len(json.dumps(value)) // 4
    assert JSON_ZSTD.deserialize(text, CTX) == value


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=8) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES)
def test_every_value_reads_back_with_its_types(value: Any) -> None:
    back = JSON.deserialize(JSON.serialize(value, CTX), CTX)
    assert repr(back) == repr(value)
