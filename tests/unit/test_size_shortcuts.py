"""The shortcuts that keep the size bound cheap are bounds, not guesses.

A pipeline decides between armor and JSON without making the JSON when it can tell from
cheaper facts: the packer's word that a value holds a type JSON lacks, a floor on the
JSON of a short msgpack body, a floor on the JSON of a string. Each is checked here
against the JSON itself, over generated values.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from decimal import Decimal
from typing import Any

import pytest
from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, SerDesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.serializers.frames import (
    _PRINTABLE,
    _SCAN_SLICE,
    _text_test,
    armor,
    armor_counting,
)
from durable_ext.serializers.msgpack_format import MsgpackFormat
from durable_ext.serializers.shortest import (
    _FLOAT_GAIN,
    FLOAT64,
    MEASURED_MAX,
    SLACK,
    string_json_floor,
)

CTX = SerDesContext("op-short", "arn:short")
FMT = MsgpackFormat()
SDK_JSON = json.JSONEncoder().encode  # the SDK's spacing, NaN and Infinity allowed

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=20)
    | st.dictionaries(st.text(max_size=20), inner, max_size=10),
    max_leaves=120,
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(JSON_VALUES)
def test_a_short_body_floors_the_json_by_its_floats(value: Any) -> None:
    _, body, maybe_json = FMT.encode_layout(value, CTX)
    assert maybe_json
    if len(body) + 4 <= MEASURED_MAX and not isinstance(value, str):
        assert len(SDK_JSON(value)) >= len(body) - _FLOAT_GAIN * body.count(FLOAT64)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=2000) | st.text(alphabet='"ab\\é', max_size=200))
def test_a_string_floors_its_json_without_encoding_it(value: str) -> None:
    floor = string_json_floor(value)
    assert floor <= len(SDK_JSON(value))
    for beat in (0, len(value), floor - 1, floor):
        # stopped early only past beat, and never above the whole floor
        early = string_json_floor(value, beat)
        assert early <= floor and (early > beat or early == floor)


@pytest.mark.parametrize("value", [
    (1, 2), {1, 2}, frozenset({3}), dt.datetime(2025, 1, 2, tzinfo=dt.UTC), dt.date(2025, 1, 2),
    uuid.UUID(int=7), Decimal("1.5"), b"raw", {"at": dt.time(1, 2)}, [{"id": uuid.UUID(int=1)}],
])
def test_the_packer_tells_values_json_lacks(value: Any) -> None:
    assert FMT.encode_layout(value, CTX)[2] is False


@pytest.mark.parametrize("value", [
    None, 1, 2**80, -2**70, 1.5, "text", [1, [2.5, "x"]], {"a": {"b": None}}, [],
])
def test_the_packer_lets_json_values_through(value: Any) -> None:
    assert FMT.encode_layout(value, CTX)[2] is True


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=5 * _SCAN_SLICE),
       st.integers(min_value=0, max_value=100), st.sampled_from([None, b"\xcb", b"\x00"]))
def test_the_sliced_printable_test_agrees_with_counting_everything(
        seed: int, size: int, share: int, byte: bytes | None) -> None:
    # printable text with a chosen share of random bytes mixed in, around the one-fifth line
    noise = random.Random(seed).randbytes(size)
    text = bytes(b if i % 100 < share else 0x61 for i, b in enumerate(noise))
    printable = len(text.translate(None, _PRINTABLE)) * 5 <= len(text)
    assert _text_test(text, byte) == (printable, text.count(byte) if byte else 0)
    if byte is not None:
        assert armor_counting(text, byte) == (armor(text), text.count(byte))
    assert (armor(text) == text.decode("latin-1")) == printable


@pytest.mark.parametrize("value", [b"", b"plain ascii text " * 50, bytes(range(256)) * 40])
def test_a_bytes_value_is_base64_as_in_the_sdks_json(value: bytes) -> None:


    for spec in ("msgpack", "msgpack+zstd"):
        pipeline = durable_ext.serdes(spec)
        text = pipeline.serialize(value, CTX)
        assert pipeline.deserialize(text, CTX) == value
        assert len(text) <= len(ExtendedTypeSerDes().serialize(value, CTX)) + SLACK  # type: ignore[no-untyped-call]
    assert durable_ext.serdes("msgpack").serialize(value, CTX).startswith("w")
