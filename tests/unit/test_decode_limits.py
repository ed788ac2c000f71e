"""Hostile payloads: every decoder is bounded in depth, bytes and objects.

Each payload is decoded in a child process (tests/hostile.py), so a crash fails the test,
not the run, and the child's peak memory is measured. Limits: the defaults of
durable_ext.serializers.limits (32 levels, 32 MiB, 8M container items).
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import hostile as h
import msgpack
import pytest
from aws_durable_execution_sdk_python.serdes import SerDesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import durable_ext
from durable_ext.errors import ConfigError, DisallowedContentError, SerializationError
from durable_ext.serializers.frames import armor, frame, unarmor
from durable_ext.serializers.limits import DecodeLimits

#: what a refused hostile payload may cost the decoding process at most
PEAK_MIB = 1024
CTX = SerDesContext("op-limits", "arn:limits")


def assert_refused(outcome: h.Outcome, *phrases: str) -> None:
    assert outcome.returncode == 0, f"decoder crashed: {outcome.message}"
    assert outcome.result in ("SerializationError", "DisallowedContentError"), outcome
    assert "op-hostile" in outcome.message  # says where
    for phrase in phrases:
        assert phrase in outcome.message, outcome.message
    assert outcome.peak_mib < PEAK_MIB, outcome


# -- depth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "spec", "payload"),
    [
        ("layout-1 tuples", "msgpack", h.msgpack_frame(h.nested_ext(1, 400), 1)),
        ("registered objects", "msgpack", h.msgpack_frame(h.nested_objects(400))),
        ("batch results", "msgpack", h.msgpack_frame(h.nested_ext(13, 400))),
        ("models", "model", h.msgpack_frame(h.nested_objects(400, "Crate", 64), wire=b"M")),
        ("marked bodies", "msgpack", h.msgpack_frame(h.nested_ext(11, 400), 3)),
    ],
)
def test_extension_types_nested_past_the_depth_limit_are_refused_not_a_crash(name, spec, payload):
    # ~1-4 KB of input: each level is a nested native unpack with ~40 KB of C stack
    assert len(payload) < 8000
    assert_refused(h.run_case(payload, spec), "nested more than 32 levels deep", "max_depth")


def test_the_depth_limit_is_configurable_both_ways():
    payload = h.msgpack_frame(h.nested_ext(1, 20), 1)
    assert_refused(h.run_case(payload, limits={"max_depth": 10}), "more than 10 levels")
    assert h.run_case(payload).result == "ok"


def test_deep_json_is_a_serialization_error_not_recursion():
    foreign = h.deep_json(200_000)  # unarmored: read as the SDK's JSON
    assert_refused(h.run_case(foreign), "JSON nested too deeply")
    # the SDK's type envelope nested in itself: its decoder recurses once per level.
    # Interpreters with more stack decode it; none may crash or raise RecursionError.
    envelope = '{"t":"list","v":[' * 3_000 + "]}" * 3_000
    outcome = h.run_case(envelope)
    assert outcome.returncode == 0 and outcome.result in ("ok", "SerializationError"), outcome
    framed = armor(h.zstd_frame(frame(b"j", 1, h.deep_json(200_000).encode())))
    assert_refused(h.run_case(framed, "json+zstd"), "JSON nested too deeply")


# -- bytes -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("codec", "spec"),
    [
        ("zstd", "msgpack+zstd"),
        ("zstd-unsized", "msgpack+zstd"),
        ("zlib", "msgpack+zlib"),
        # a pipeline without codecs still reads compressed frames: bounded the same way
        ("zstd", "msgpack"),
    ],
)
def test_decompression_bombs_are_refused_within_the_byte_budget(codec, spec):
    payload = h.compressed_zeros(codec, 1 << 30)  # a GiB of zeros in tens of KB
    assert len(payload) < 2 << 20
    assert_refused(h.run_case(payload, spec), "decode limit of 33554432 bytes", "max_bytes")


def test_the_byte_budget_is_shared_by_every_frame_of_a_payload():
    # 400 KiB of noise behind zstd and zlib: three frames of ~400 KiB each, 1.2 MiB in all,
    # over a 1 MiB budget though every frame fits in it
    inner = frame(b"m", 2, msgpack.packb(os.urandom(400 << 10)))
    payload = armor(h.zlib_frame(h.zstd_frame(inner)))
    outcome = h.run_case(payload, "msgpack+zstd+zlib", limits={"max_bytes": 1 << 20})
    assert_refused(outcome, "decode limit of 1048576 bytes")
    assert h.run_case(payload, "msgpack+zstd+zlib", limits={"max_bytes": 2 << 20}).result == "ok"


def test_a_stage_nested_in_itself_is_refused_before_it_is_inflated():
    payload = armor(h.zlib_frame(h.zlib_frame(h.zlib_frame(h.zeros_bomb(1 << 28)))))
    assert len(payload) < 1000
    outcome = h.run_case(payload, "msgpack+zlib")
    assert_refused(outcome, "nests stage id b'l' 2 times")


def test_extension_bodies_copied_at_every_level_are_bounded_in_bytes():
    # 30 levels around 20 MiB: each level is a copy held while the inner one is decoded
    payload = armor(h.zstd_frame(frame(b"m", 2, h.fat_nested_ext(30, 20 << 20))))
    assert_refused(h.run_case(payload, "msgpack+zstd"), "bytes of nested bodies at once")


def test_an_oversized_plain_payload_is_refused_before_base64_decoding():
    payload = h.msgpack_frame(b"\xc6" + (40 << 20).to_bytes(4, "big") + b"\x00" * (40 << 20))
    assert_refused(h.run_case(payload), "the armored payload would exceed", "max_bytes")


# -- objects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("30M empty maps in one array", h.empty_containers(30_000_000)),
        ("15 arrays of 2M empty maps", b"\x9f" + h.empty_containers(2_000_000) * 15),
        ("30M empty arrays, marked layout", h.empty_containers(30_000_000, 0x90)),
    ],
)
def test_bodies_of_empty_containers_are_bounded_in_items(name, body):
    layout = 3 if "marked" in name else 2
    payload = armor(h.zstd_frame(frame(b"m", layout, body)))
    assert len(payload) < 4000  # ~60 bytes of Python objects per input byte if unbounded
    assert_refused(h.run_case(payload, "msgpack+zstd"), "container items", "max_items")


@pytest.mark.parametrize("layout", [2, 3])
def test_the_item_count_is_shared_by_every_body_of_a_payload(layout):
    # 31 tuples of ~1M empty maps each: every body is under the size past which a body is
    # counted on its own, together they are 31M containers (~2 GiB of Python objects)
    def tuples(n: int) -> bytes:
        one = msgpack.packb(msgpack.ExtType(1, h.empty_containers(1_000_000)))
        return b"\xdd" + n.to_bytes(4, "big") + one * n

    payload = armor(h.zstd_frame(frame(b"m", layout, tuples(31))))
    assert len(payload) < 4000
    assert_refused(h.run_case(payload, "msgpack+zstd"), "over 8000000 container items")
    # without compression: the payload's own bytes put it past the size that counts
    assert_refused(h.run_case(h.msgpack_frame(tuples(9), layout)), "over 8000000 container")


def test_json_bodies_of_empty_containers_are_bounded_in_items():
    payload = armor(h.zstd_frame(frame(b"j", 1, h.bracket_json(10_000_000).encode())))
    assert_refused(h.run_case(payload, "json+zstd"),
                   "JSON text takes the payload over", "max_items")


def test_large_legitimate_payloads_still_decode():
    rows = [{"id": i, "sku": f"sku-{i % 977}", "qty": i % 7} for i in range(250_000)]
    s = durable_ext.serdes("msgpack+zstd")
    assert len(unarmor(s.serialize(rows, CTX), "t")) < 32 << 20
    assert s.deserialize(s.serialize(rows, CTX), CTX) == rows


# -- what a pipeline writes, it reads ------------------------------------------------------


def test_a_payload_over_the_byte_budget_is_refused_when_written():
    s = durable_ext.serdes("msgpack", limits={"max_bytes": 1 << 20})
    with pytest.raises(SerializationError, match="decode limit of 1048576 bytes"):
        s.serialize(b"x" * (2 << 20), CTX)
    assert s.deserialize(s.serialize(b"x" * 1000, CTX), CTX) == b"x" * 1000


def test_a_payload_whose_frames_together_pass_the_budget_is_refused_when_written():
    # incompressible 700 KiB under localkey: the format frame and the sealed frame count
    s = durable_ext.serdes(
        "msgpack+localkey",
        options={"localkey": {"key": b"k" * 32}},
        limits={"max_bytes": 1 << 20},
    )
    with pytest.raises(SerializationError, match="decodes through"):
        s.serialize(os.urandom(700 << 10), CTX)


@dataclasses.dataclass
class Node:
    payload: bytes
    child: "Node | None" = None


def test_nested_objects_that_would_pass_the_budget_are_refused_when_written():
    s = durable_ext.serdes("msgpack", types=[Node], limits={"max_bytes": 4 << 20})
    value = Node(b"a" * (1536 << 10), Node(b"b" * (1536 << 10), Node(b"c")))
    with pytest.raises(SerializationError, match="nested bodies need"):
        s.serialize(value, CTX)
    roomy = durable_ext.serdes("msgpack", types=[Node], limits={"max_bytes": 16 << 20})
    assert roomy.deserialize(roomy.serialize(value, CTX), CTX) == value


def test_limits_are_checked_when_built():
    with pytest.raises(ConfigError, match="max_depth must be an int >= 1"):
        DecodeLimits(max_depth=0)
    with pytest.raises(ConfigError, match="known: max_depth"):
        durable_ext.serdes("msgpack", limits={"depth": 3})


# -- stage ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("wire", [b"s3", b"kms", b"localkey", b"pickle", b"msgpack", b"zstd"])
def test_a_builtin_stage_spelled_by_its_name_is_an_unknown_id(wire):
    inner = unarmor(durable_ext.serdes("msgpack").serialize({"a": 1}, CTX), "t")
    with pytest.raises(SerializationError, match="unknown stage id") as info:
        durable_ext.serdes("msgpack").deserialize(armor(frame(wire, 1, inner)), CTX)
    assert "op-limits" in str(info.value)


@pytest.mark.parametrize("wire", [b"s", b"k", b"K", b"p"])
def test_stages_with_outside_effects_are_refused_unless_configured(wire):
    with pytest.raises(DisallowedContentError, match="not configured"):
        durable_ext.serdes("msgpack").deserialize(armor(frame(wire, 1, b"\x00" * 40)), CTX)


@pytest.mark.parametrize("wire", [b"\xff\xfe", b"no-such-stage", b"z3"])
def test_unknown_stage_ids_are_refused(wire):
    with pytest.raises(SerializationError, match="unknown"):
        durable_ext.serdes("msgpack").deserialize(armor(frame(wire, 1, b"\x00" * 8)), CTX)


# -- fuzz: random compositions of frames and extension types --------------------------------

FUZZ_SCRIPT = r"""
import sys, json
sys.path.insert(0, {tests!r})
from hypothesis import given, settings, HealthCheck
from aws_durable_execution_sdk_python.exceptions import SerDesError
import durable_ext
from durable_ext.serializers.model_format import ModelRegistry
from hostile import hostile_payloads
from durable_ext.serializers.base import SerDesContext
import dataclasses, pydantic

@dataclasses.dataclass
class Box:
    items: list

class Crate(pydantic.BaseModel):
    items: list

PIPELINES = [durable_ext.serdes("msgpack+zstd+zlib", types=[Box]),
             durable_ext.serdes("model", types=ModelRegistry([Box, Crate])),
             durable_ext.serdes("msgpack", limits={{"max_depth": 4}})]
seen = {{"ok": 0, "refused": 0}}

@settings(max_examples={n}, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(hostile_payloads())
def run(payload):
    for p in PIPELINES:
        try:
            p.deserialize(payload, SerDesContext("op-fuzz"))
            seen["ok"] += 1
        except SerDesError as exc:
            assert "op-fuzz" in str(exc), exc
            seen["refused"] += 1

run()
print(json.dumps(seen))
"""


def test_fuzzed_compositions_decode_or_raise_serdes_errors_in_a_child_process():
    tests = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run(
        [sys.executable, "-c", FUZZ_SCRIPT.format(tests=tests, n=300)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["refused"] > 0 and sum(seen.values()) == 900


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(
    st.none() | st.integers() | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=40,
))
def test_values_within_the_limits_round_trip_under_tight_limits(value):
    s = durable_ext.serdes("msgpack+zstd", limits={"max_depth": 64, "max_bytes": 1 << 16})
    assert s.deserialize(s.serialize(value, CTX), CTX) == value
