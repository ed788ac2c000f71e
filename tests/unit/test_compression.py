import base64
import subprocess
import sys
import textwrap

import pytest
from aws_durable_execution_sdk_python.serdes import SerDesContext

import durable_ext
from durable_ext.errors import ConfigError, SerializationError, SpecError
from durable_ext.serializers.frames import read_frame, unarmor

CTX = SerDesContext("op-c", "arn:c")
BIG = {"rows": [{"sku": f"sku-{i % 7}", "qty": i % 3, "note": "repeat " * 4} for i in range(300)]}


def outer_stage(text: str) -> bytes:
    wire, _, _ = read_frame(unarmor(text, "test"), "test")
    return wire


@pytest.mark.parametrize("spec", ["msgpack+zstd", "msgpack+zlib"])
def test_compresses_large_payloads_and_says_so_in_the_header(spec):
    plain = durable_ext.serdes("msgpack").serialize(BIG, CTX)
    packed = durable_ext.serdes(spec).serialize(BIG, CTX)
    assert len(packed) < len(plain) / 5
    assert outer_stage(packed) == (b"z" if "zstd" in spec else b"l")
    assert durable_ext.serdes("msgpack").deserialize(packed, CTX) == BIG  # any pipeline reads it


@pytest.mark.parametrize("spec", ["msgpack+zstd", "msgpack+zlib"])
def test_small_payloads_are_left_alone(spec):
    text = durable_ext.serdes(spec).serialize({"a": 1}, CTX)
    assert outer_stage(text) == b"m"


def test_incompressible_payloads_are_left_alone():
    import os

    blob = os.urandom(20_000)
    text = durable_ext.serdes("msgpack+zstd").serialize(blob, CTX)
    assert outer_stage(text) == b"m"
    assert durable_ext.serdes("msgpack+zstd").deserialize(text, CTX) == blob


def test_level_and_threshold_from_spec_and_options():
    s = durable_ext.serdes("msgpack+zstd:19", options={"zstd": {"threshold": 10_000_000}})
    zstd = s.codecs[0]
    assert (zstd.settings.level, zstd.settings.threshold) == (19, 10_000_000)
    assert outer_stage(s.serialize(BIG, CTX)) == b"m"
    with pytest.raises(SpecError, match="compression level"):
        durable_ext.serdes("msgpack+zstd:max")
    with pytest.raises(ConfigError, match="threshold"):
        durable_ext.serdes("msgpack+zlib", options={"zlib": {"threshold": -1}})
    with pytest.raises(ConfigError, match="unexpected keyword"):
        durable_ext.serdes("msgpack+zlib", options={"zlib": {"lvl": 3}})
    with pytest.raises(ConfigError, match="not in"):
        durable_ext.serdes("msgpack", options={"kmz": {}})


def test_zstd_falls_back_to_zlib_frames_without_zstandard():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["zstandard"] = None
        import durable_ext
        from aws_durable_execution_sdk_python.serdes import SerDesContext
        ctx = SerDesContext("op", "arn")
        value = {"rows": ["repeat me"] * 500}
        pipeline = durable_ext.serdes("msgpack+zstd")
        text = pipeline.serialize(value, ctx)
        assert pipeline.deserialize(text, ctx) == value  # reads its own payloads
        assert durable_ext.serdes("msgpack").deserialize(text, ctx) == value
        print(text[:6])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    raw = unarmor(out.stdout.strip(), "test")
    assert raw[2:3] == b"l"  # the frame says zlib, which every reader can inflate


def test_reading_zstd_without_zstandard_names_the_extra():
    text = durable_ext.serdes("msgpack+zstd").serialize(BIG, CTX)
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["zstandard"] = None
        import durable_ext
        from aws_durable_execution_sdk_python.serdes import SerDesContext
        try:
            durable_ext.serdes("msgpack").deserialize({text!r}, SerDesContext("op", "arn"))
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("SerializationError")
    assert "pip install 'durable-ext[zstd]'" in out.stdout


def test_corrupt_compressed_body_is_a_serialization_error():
    text = durable_ext.serdes("msgpack+zlib").serialize(BIG, CTX)
    raw = bytearray(unarmor(text, "test"))
    raw[10] ^= 0xFF
    with pytest.raises(SerializationError, match="zlib"):
        durable_ext.serdes("msgpack").deserialize(base64.b64encode(bytes(raw)).decode(), CTX)
