"""Bad input fed to deserialize raises only SerDesError, says where, and never hangs."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from aws_durable_execution_sdk_python.exceptions import SerDesError
from aws_durable_execution_sdk_python.serdes import SerDesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.serializers.frames import MAGIC, armor, unarmor

CTX = SerDesContext("op-bad", "arn:x")
PIPELINES = {
    "msgpack": durable_ext.serdes("msgpack"),
    "msgpack+zstd": durable_ext.serdes("msgpack+zstd", options={"zstd": {"threshold": 0}}),
    "msgpack+zlib": durable_ext.serdes("msgpack+zlib", options={"zlib": {"threshold": 0}}),
}
SAMPLE = {
    "id": uuid.UUID(int=7),
    "at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    "lines": [("a", Decimal("1.5"), {1, 2})] * 20,
    "blob": b"\x00" * 300,
}
VALID = {name: p.serialize(SAMPLE, CTX) for name, p in PIPELINES.items()}
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_rejected(pipeline, data):
    try:
        pipeline.deserialize(data, CTX)
    except SerDesError as exc:
        assert "op-bad" in str(exc)  # says where
        return
    # a mutation may by chance still be a valid payload: that is not an error


@FUZZ
@given(st.text(max_size=300))
def test_random_strings(text):
    for p in PIPELINES.values():
        assert_rejected(p, text)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_behind_a_valid_armor_and_magic(raw):
    for p in PIPELINES.values():
        assert_rejected(p, armor(bytes([MAGIC]) + raw))
        assert_rejected(p, armor(raw))


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_truncated_payloads(name, data):
    text = VALID[name]
    cut = data.draw(st.integers(0, len(text) - 1))
    with pytest.raises(SerDesError):
        PIPELINES[name].deserialize(text[:cut], CTX)


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_flipped_bytes_never_escape_as_other_exceptions(name, data):
    raw = bytearray(unarmor(VALID[name], "test"))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    assert_rejected(PIPELINES[name], armor(bytes(raw)))


@pytest.mark.parametrize(
    "header",
    [
        bytes([MAGIC, 0]),  # empty stage id
        bytes([MAGIC, 200]) + b"x",  # id longer than the frame
        bytes([MAGIC, 1]) + b"m",  # no version byte
        bytes([MAGIC, 1]) + b"?" + b"\x01",  # unknown stage
        bytes([MAGIC, 4]) + b"nope" + b"\x01data",  # unknown third-party stage
        bytes([MAGIC, 6]) + b"pickle" + b"\x01data",  # pickle is never decoded unless configured
    ],
)
def test_wrong_headers_are_named(header):
    with pytest.raises(SerDesError) as info:
        PIPELINES["msgpack"].deserialize(armor(header), CTX)
    assert "op-bad" in str(info.value)


def test_nested_frames_are_bounded():
    inner = unarmor(VALID["msgpack+zlib"], "test")
    import zlib

    data = inner
    for _ in range(40):
        data = bytes([MAGIC, 1]) + b"l\x01" + zlib.compress(data)
    # a stage nested in itself is refused at its second frame, before inflating it
    with pytest.raises(SerDesError, match="nests stage id b'l' 2 times"):
        PIPELINES["msgpack"].deserialize(armor(data), CTX)


def test_decompression_bomb_is_refused_not_inflated():
    import zstandard

    bomb = zstandard.ZstdCompressor().compress(b"\x00" * (1 << 20))
    assert zstandard.get_frame_parameters(bomb).content_size == 1 << 20
    small = durable_ext.serdes("msgpack+zstd", limits={"max_bytes": 1 << 16})
    with pytest.raises(SerDesError, match=r"zstd frame \(declaring 1048576 bytes\).*max_bytes"):
        small.deserialize(armor(bytes([MAGIC, 1]) + b"z\x01" + bomb), CTX)


def test_non_string_input_is_refused():
    with pytest.raises(SerDesError, match="expected a str"):
        PIPELINES["msgpack"].deserialize(b"bytes", CTX)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "envelope",
    ['{"t":"dt","v":"not a date"}', '{"t":"d","v":"1.2.3"}', '{"t":"u","v":"zz"}',
     '{"t":"D","v":[]}', '{"t":"l","v":5}'],
)
def test_malformed_sdk_envelopes_are_serdes_errors(envelope):
    for p in PIPELINES.values():
        with pytest.raises(SerDesError, match=r"op-bad.*malformed SDK JSON envelope"):
            p.deserialize(envelope, CTX)


@FUZZ
@given(st.sampled_from(["dt", "d", "u", "D", "t", "B", "l", "m", "br"]),
       st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                        max_size=3),
                    max_leaves=8))
def test_fuzzed_sdk_envelopes_raise_only_serdes_errors(tag, value):
    import json

    assert_rejected(PIPELINES["msgpack"], json.dumps({"t": tag, "v": value}))


def test_json_that_merely_looks_like_an_envelope_is_plain_json():
    assert PIPELINES["msgpack"].deserialize('{"t":"nope","v":1}', CTX) == {"t": "nope", "v": 1}
    assert PIPELINES["msgpack"].deserialize('{"t":"dt","v":"2024-01-01T00:00:00"}', CTX) \
        == dt.datetime(2024, 1, 1)
