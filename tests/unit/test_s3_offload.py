"""The s3 stage without a network: thresholds, keys, pointers, spec parsing."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import pytest
from aws_durable_execution_sdk_python.serdes import SerDesContext

import durable_ext
from durable_ext.errors import (
    ConfigError,
    DisallowedContentError,
    IntegrityError,
    SerializationError,
    SpecError,
)
from durable_ext.serializers.frames import armor, frame, unarmor
from durable_ext.serializers.s3 import (
    DEFAULT_THRESHOLD,
    S3Offload,
    S3Pointer,
    execution_prefix,
    lifecycle_rule,
    object_key,
    read_pointer,
)

CTX = SerDesContext("op-1", "arn:aws:lambda:us-east-1:1:function:f:$LATEST/durable-execution/e/i")


def test_default_threshold_leaves_headroom_below_the_checkpoint_limit():
    assert DEFAULT_THRESHOLD == 256 * 1024 - 1024
    s = durable_ext.serdes("msgpack+s3://bucket/p")
    offload = s.offload
    # The largest value kept inline still makes a checkpoint under the limit.
    n = DEFAULT_THRESHOLD * 3 // 4 - 16
    text = s.serialize(b"x" * n, CTX)
    assert len(text) <= DEFAULT_THRESHOLD and read_pointer(text) is None
    assert offload.client._client is None  # no client built: no S3 request was possible


def test_store_measures_the_armored_checkpoint_string():
    o = S3Offload("b", threshold=400)
    assert o.store(b"x" * 300, CTX) is None  # 300 bytes armor to 400 characters
    assert o.client._client is None
    with pytest.raises(SerializationError, match="no bucket is configured"):
        S3Offload(threshold=0).store(b"x", CTX)


def test_keys_are_deterministic_content_addressed_and_grouped_by_execution():
    d1, d2 = hashlib.sha256(b"one").digest(), hashlib.sha256(b"two").digest()
    k = object_key(CTX.durable_execution_arn, "op-1", d1, "pre")
    assert k == object_key(CTX.durable_execution_arn, "op-1", d1, "pre/")
    assert k.startswith(execution_prefix(CTX.durable_execution_arn, "pre"))
    assert k.endswith(d1.hex()) and k.startswith("pre/")
    others = {object_key(CTX.durable_execution_arn, "op-2", d1, "pre"),
              object_key(CTX.durable_execution_arn, "op-1", d2, "pre"),
              object_key("arn:other", "op-1", d1, "pre")}
    assert k not in others and len(others) == 3
    assert "function" not in k  # the ARN is hashed: no names leak into keys


def pointer_payload(ptr: S3Pointer) -> str:
    return armor(frame(b"s", 1, ptr.pack()))


def test_pointer_round_trip_and_read_pointer():
    ptr = S3Pointer("bkt", "k/1", 5, hashlib.sha256(b"hello").digest(), {"id": 7})
    assert S3Pointer.unpack(ptr.pack(), "t") == ptr
    assert read_pointer(pointer_payload(ptr)) == ptr
    assert read_pointer(durable_ext.serdes("msgpack").serialize(1, CTX)) is None
    assert read_pointer('{"json": true}') is None
    assert "sha256" not in repr(ptr) and ptr.url == "s3://bkt/k/1"


def test_truncated_or_malformed_pointers_are_refused():
    body = S3Pointer("bkt", "key", 5, hashlib.sha256(b"hello").digest()).pack()
    o = S3Offload("bkt")
    for n in range(len(body)):
        with pytest.raises(IntegrityError, match="s3 pointer"):
            o.load(body[:n], 1, CTX)
    import msgpack

    for fields in ([], ["bkt", "key", -1, b"x" * 32], ["bkt", "key", 5, b"short"],
                   ["", "key", 5, b"x" * 32], {"b": 1}, ["bkt", "key", 5, b"x" * 32, 1, 2]):
        with pytest.raises(IntegrityError, match="malformed"):
            o.load(msgpack.packb(fields), 1, CTX)
    assert o.client._client is None
    with pytest.raises(SerializationError, match="upgrade"):
        o.load(body, 2, CTX)


def test_pointers_to_other_buckets_are_refused_before_any_request():
    body = S3Pointer("elsewhere", "key", 5, hashlib.sha256(b"hello").digest()).pack()
    o = S3Offload("mine")
    with pytest.raises(DisallowedContentError, match="elsewhere"):
        o.load(body, 1, CTX)
    assert S3Offload("mine", allowed_buckets=["mine", "old"]).allowed_buckets == {"mine", "old"}
    assert S3Offload().allowed_buckets is None
    assert o.client._client is None


def test_spec_forms_and_options():
    o = S3Offload.from_spec("bkt/a/b?threshold=1000&sse=aws:kms&sse_kms_key_id=alias/s3")
    assert (o.bucket, o.prefix, o.threshold) == ("bkt", "a/b/", 1000)
    assert o._put_args["ServerSideEncryption"] == "aws:kms"
    assert o._put_args["SSEKMSKeyId"] == "alias/s3"
    assert S3Offload.from_spec("bkt").prefix == "durable-ext/"
    assert S3Offload.from_spec("bkt?conditional=0").conditional is False
    assert S3Offload(sse_kms_key_id="k")._put_args["ServerSideEncryption"] == "aws:kms"
    s = durable_ext.serdes("msgpack+zstd+localkey+s3://bkt/pre",
                           options={"localkey": {"key": b"k" * 32}, "s3": {"threshold": 0}})
    assert s.offload.bucket == "bkt" and s.offload.threshold == 0
    with pytest.raises(SpecError, match="unknown spec option"):
        S3Offload.from_spec("bkt?colour=red")
    with pytest.raises(SpecError, match="integer"):
        S3Offload.from_spec("bkt?threshold=big")
    with pytest.raises(SpecError, match="needs a bucket"):
        S3Offload.from_spec("/prefix")
    with pytest.raises(ConfigError, match="both in the spec"):
        S3Offload.from_spec("bkt?threshold=5", threshold=6)
    with pytest.raises(ConfigError, match="sse must be"):
        S3Offload("b", sse="rot13")
    with pytest.raises(ConfigError, match="put_args"):
        S3Offload("b", put_args={"Bucket": "other"})
    with pytest.raises(ConfigError, match="threshold"):
        S3Offload("b", threshold=-1)
    with pytest.raises(ConfigError, match="bucket"):
        S3Offload("b/c")


def test_lifecycle_rule():
    rule = lifecycle_rule(30, "checkpoints")
    assert rule["Filter"] == {"Prefix": "checkpoints/"} and rule["Expiration"] == {"Days": 30}
    assert rule["Status"] == "Enabled"
    with pytest.raises(ConfigError):
        lifecycle_rule(0)


def test_missing_msgpack_gives_the_install_hint():
    code = textwrap.dedent("""
        import sys
        sys.modules["msgpack"] = None
        try:
            import durable_ext.serializers.s3
        except ImportError as exc:
            print(type(exc).__name__, exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "MissingDependencyError" in out and "pip install 'durable-ext[s3]'" in out


def test_a_pipeline_reads_s3_pointers_only_when_configured_for_them():
    ptr = S3Pointer("bkt", "key", 5, hashlib.sha256(b"hello").digest())
    with pytest.raises(DisallowedContentError, match="s3"):
        durable_ext.serdes("msgpack").deserialize(pointer_payload(ptr), CTX)
    assert unarmor(pointer_payload(ptr), "test")[2:3] == b"s"


def test_a_pointer_over_the_decode_budget_is_refused_before_any_request():
    from durable_ext.serializers.limits import DecodeBudget, DecodeLimits, decoding

    body = S3Pointer("bkt", "k/big", 10 << 20, hashlib.sha256(b"big").digest()).pack()
    o = S3Offload("bkt")
    budget = DecodeBudget(DecodeLimits(max_bytes=1 << 20), where="operation 'op-1'")
    with decoding(budget), pytest.raises(SerializationError) as err:
        o.load(body, 1, CTX)
    assert "s3://bkt/k/big" in str(err.value) and "max_bytes" in str(err.value)
    assert str(1 << 20) in str(err.value) and str(10 << 20) in str(err.value)
    assert o.client._client is None  # refused before a client, let alone a GET
