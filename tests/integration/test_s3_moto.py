"""The s3 stage (with and without kms) against a real moto server on 127.0.0.1.

Handlers are real durable functions driven by the official testing SDK's runner; the
payloads it checkpoints, the objects in the bucket and the HTTP requests each
invocation made are all inspected.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import Duration
from aws_durable_execution_sdk_python.serdes import SerDesContext
from aws_durable_execution_sdk_python.waits import (
    WaitForConditionConfig,
    WaitForConditionDecision,
)
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner
from servers import HOST, FaultProxy, RequestCounter, listens, s3_method

import durable_ext
from durable_ext.errors import (
    DisallowedContentError,
    IntegrityError,
    RetryableSerializationError,
    SerializationError,
)
from durable_ext.serializers.defaults import DefaultSerdesContext
from durable_ext.serializers.frames import is_armored, read_frame, unarmor
from durable_ext.serializers.limits import DecodeBudget, DecodeLimits, decoding
from durable_ext.serializers.s3 import (
    DEFAULT_THRESHOLD,
    delete_execution_objects,
    execution_prefix,
    lifecycle_rule,
    read_pointer,
)

pytestmark = pytest.mark.integration

KB = 1024
ARN = "arn:aws:lambda:us-east-1:123456789012:function:f:1/durable-execution/e/i"
CTX = SerDesContext("op-1", ARN)


def blob(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


class UrlCounter(RequestCounter):
    """Also counts each (operation, path), to tell pointers apart."""

    def __init__(self, client: Any) -> None:
        self.paths: Counter[tuple[str, str]] = Counter()
        super().__init__(client)

    def _on_send(self, request: Any = None, event_name: str = "", **kw: Any) -> None:
        super()._on_send(request=request, event_name=event_name, **kw)
        with self._lock:
            self.paths[(event_name.rsplit(".", 1)[-1], request.url.split("?")[0])] += 1


@pytest.fixture(scope="module")
def bucket(moto_server) -> str:
    name = moto_server.unique("ckpt")
    moto_server.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def key_arn(moto_server) -> str:
    return str(moto_server.client("kms").create_key()["KeyMetadata"]["Arn"])


def objects(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def make(moto_server, spec: str, **s3_options: Any) -> tuple[durable_ext.Pipeline, UrlCounter]:
    s3 = moto_server.client("s3")
    counter = UrlCounter(s3)
    options: dict[str, Any] = {"s3": {"client": s3, **s3_options}}
    if "kms" in spec:
        options["kms"] = {"client": moto_server.client("kms")}
    return durable_ext.serdes(spec, options=options), counter


def test_the_servers_are_our_children_on_loopback(moto_server, redis_server):
    import os
    import socket

    for server in (moto_server, redis_server):
        assert listens(server.pid, server.port)  # the listener is our child's socket
        assert os.getpgid(server.pid) == server.pid  # own process group, stopped as one
        status = Path(f"/proc/{server.pid}/status").read_text()
        assert f"PPid:\t{os.getpid()}" in status
    assert moto_server.endpoint_url == f"http://{HOST}:{moto_server.port}" and HOST == "127.0.0.1"
    with socket.create_connection((HOST, redis_server.port), timeout=2) as conn:
        conn.sendall(b"PING\r\n")
        assert conn.recv(16).startswith(b"+PONG")


# -- the stage on its own ---------------------------------------------------------------


def test_below_threshold_no_request_over_it_one_put_and_replay_at_most_one_get(
        moto_server, bucket):
    writer, w = make(moto_server, f"msgpack+s3://{bucket}/t1")
    small = writer.serialize({"n": 1, "pad": "x" * 1000}, CTX)
    assert read_pointer(small) is None and w.total() == 0
    big_value = {"blob": blob(1, 300 * KB)}
    big = writer.serialize(big_value, CTX)
    assert len(big) < 1000 and read_pointer(big) is not None
    assert w.counts == {"PutObject": 1}
    assert writer.deserialize(big, CTX) == big_value  # first-run round trip: from memory
    assert w.counts == {"PutObject": 1}

    reader, r = make(moto_server, f"msgpack+s3://{bucket}/t1")  # a new invocation
    for _ in range(3):
        assert reader.deserialize(big, CTX) == big_value
    assert r.counts == {"GetObject": 1}


def test_a_retried_write_creates_no_duplicate(moto_server, bucket):
    value = blob(2, 300 * KB)
    first, c1 = make(moto_server, f"msgpack+s3://{bucket}/t2")
    again, c2 = make(moto_server, f"msgpack+s3://{bucket}/t2")  # the retried invocation
    assert first.serialize(value, CTX) == again.serialize(value, CTX)
    assert c1.counts == {"PutObject": 1}
    # 412: the object there is checked to be ours by its stored SHA-256, not downloaded
    assert c2.counts == {"PutObject": 1, "HeadObject": 1}
    assert len(objects(first.offload.client.get(), bucket, "t2/")) == 1
    head_first, c3 = make(moto_server, f"msgpack+s3://{bucket}/t2?conditional=0")
    head_first.serialize(value, CTX)
    assert c3.counts == {"HeadObject": 1}  # found it: no PUT
    assert len(objects(first.offload.client.get(), bucket, "t2/")) == 1


def test_replaced_truncated_or_missing_objects_are_errors_naming_bucket_and_key(
        moto_server, bucket):
    s3 = moto_server.client("s3")
    writer, _ = make(moto_server, f"msgpack+s3://{bucket}/t3")
    text = writer.serialize(blob(3, 300 * KB), CTX)
    ptr = read_pointer(text)
    assert ptr is not None
    original = s3.get_object(Bucket=bucket, Key=ptr.key)["Body"].read()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 1
    for replacement, match in ((bytes(tampered), "SHA-256 does not match"),
                               (original[:-1], "replaced or truncated"),
                               (original + b"x", "replaced or truncated")):
        s3.put_object(Bucket=bucket, Key=ptr.key, Body=replacement)
        reader, _ = make(moto_server, f"msgpack+s3://{bucket}/t3")
        with pytest.raises(IntegrityError, match=match) as err:
            reader.deserialize(text, CTX)
        assert ptr.url in str(err.value) and "op-1" in str(err.value)
    s3.delete_object(Bucket=bucket, Key=ptr.key)
    reader, _ = make(moto_server, f"msgpack+s3://{bucket}/t3")
    with pytest.raises(SerializationError, match="NoSuchKey") as err:
        reader.deserialize(text, CTX)
    assert ptr.url in str(err.value)


def test_with_kms_first_s3_holds_only_ciphertext_and_pointers_cannot_be_swapped(
        moto_server, bucket, key_arn):
    spec = f"msgpack+kms:{key_arn}+s3://{bucket}/t4"
    writer, _ = make(moto_server, spec, preview=lambda v: {"kind": "secret"})
    marker = b"card-4111-1111-1111-1111" * 20_000
    ctx2 = SerDesContext("op-2", CTX.durable_execution_arn)
    one, two = writer.serialize({"m": marker}, CTX), writer.serialize({"m": marker[::-1]}, ctx2)
    for text in (one, two):
        ptr = read_pointer(text)
        assert ptr is not None and ptr.preview is None  # no preview of encrypted data
        stored = moto_server.client("s3").get_object(Bucket=bucket, Key=ptr.key)["Body"].read()
        assert read_frame(stored, "t")[0] == b"k" and b"card-4111" not in stored
    reader, _ = make(moto_server, spec)
    assert reader.deserialize(one, CTX) == {"m": marker}
    with pytest.raises(IntegrityError, match="copied from another operation"):
        reader.deserialize(two, CTX)  # a valid pointer of op-2 presented as op-1


def test_preview_of_plain_payloads_and_forged_buckets(moto_server, bucket):
    writer, _ = make(moto_server, f"msgpack+zstd+s3://{bucket}/t5",
                     preview=lambda v: {"id": v["id"], "rows": len(v["rows"])})
    value = {"id": "order-9", "rows": [blob(i, 1000).hex() for i in range(300)]}
    text = writer.serialize(value, CTX)
    ptr = read_pointer(text)
    assert ptr is not None and ptr.preview == {"id": "order-9", "rows": 300}
    other, _ = make(moto_server, "msgpack+s3://another-bucket/x")
    with pytest.raises(DisallowedContentError, match=bucket):
        other.deserialize(text, CTX)


def test_sse_kms_settings_are_passed_through(moto_server, bucket, key_arn):
    writer, _ = make(moto_server, f"msgpack+s3://{bucket}/t6", sse_kms_key_id=key_arn,
                     bucket_key_enabled=True, put_args={"StorageClass": "STANDARD_IA"})
    ptr = read_pointer(writer.serialize(blob(6, 300 * KB), CTX))
    assert ptr is not None
    head = moto_server.client("s3").head_object(Bucket=bucket, Key=ptr.key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_arn.rsplit("/", 1)[-1] in head["SSEKMSKeyId"]
    assert head["StorageClass"] == "STANDARD_IA"


def test_cleanup_of_one_execution_and_a_lifecycle_rule(moto_server, bucket):
    s3 = moto_server.client("s3")
    writer, _ = make(moto_server, f"msgpack+s3://{bucket}/t7", threshold=0)
    a = SerDesContext("op", "arn:exec-a")
    b = SerDesContext("op", "arn:exec-b")
    for i in range(5):
        writer.serialize(i, SerDesContext(f"op-{i}", a.durable_execution_arn))
    writer.serialize("keep", b)
    assert len(objects(s3, bucket, execution_prefix("arn:exec-a", "t7"))) == 5
    assert delete_execution_objects(bucket, "arn:exec-a", prefix="t7", client=s3) == 5
    assert objects(s3, bucket, execution_prefix("arn:exec-a", "t7")) == []
    assert len(objects(s3, bucket, execution_prefix("arn:exec-b", "t7"))) == 1
    assert delete_execution_objects(bucket, "arn:exec-a", prefix="t7", client=s3) == 0
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [lifecycle_rule(30, "t7")]})
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rules[0]["Expiration"] == {"Days": 30}


def sha256_b64(data: bytes) -> str:
    import base64

    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_a_write_after_the_object_was_deleted_puts_it_again(moto_server, bucket):
    s3 = moto_server.client("s3")
    writer, w = make(moto_server, f"msgpack+s3://{bucket}/t8")
    value = blob(8, 300 * KB)
    text = writer.serialize(value, CTX)
    ptr = read_pointer(text)
    assert ptr is not None
    s3.delete_object(Bucket=bucket, Key=ptr.key)  # cleanup, a lifecycle rule, an operator
    w.reset()
    assert writer.serialize(value, CTX) == text
    assert w.counts == {"HeadObject": 1, "PutObject": 1}  # checked, found gone, written
    reader, _ = make(moto_server, f"msgpack+s3://{bucket}/t8")
    assert reader.deserialize(text, CTX) == value
    w.reset()
    writer.serialize(value, CTX)  # there and ours: one HEAD, no body sent
    assert w.counts == {"HeadObject": 1}


def planted(moto_server, bucket: str, prefix: str, value: Any) -> tuple[str, Any]:
    """The key ``value`` is written at, holding other bytes planted there first."""
    probe, _ = make(moto_server, f"msgpack+s3://{bucket}/{prefix}")
    ptr = read_pointer(probe.serialize(value, CTX))
    assert ptr is not None
    return ptr.key, ptr


@pytest.mark.parametrize("how", ["same size, no checksum", "same size, its own SHA-256",
                                 "another size"])
def test_an_object_planted_at_our_key_is_refused_not_taken_as_written(
        moto_server, bucket, how):
    s3 = moto_server.client("s3")
    prefix = moto_server.unique("t9")
    value = blob(9, 300 * KB)
    key, ptr = planted(moto_server, bucket, prefix, value)
    other = blob(10, ptr.size if how.startswith("same size") else ptr.size + 7)
    extra = ({"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": sha256_b64(other)}
             if "SHA-256" in how else {})
    s3.put_object(Bucket=bucket, Key=key, Body=other, **extra)
    for conditional in ("", "?conditional=0"):
        writer, w = make(moto_server, f"msgpack+s3://{bucket}/{prefix}{conditional}")
        with pytest.raises(IntegrityError, match="is not the payload") as err:
            writer.serialize(value, CTX)
        assert f"s3://{bucket}/{key}" in str(err.value) and "op-1" in str(err.value)
        if how != "same size, no checksum":
            assert w["GetObject"] == 0  # the stored size or SHA-256 told it apart
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == other  # left as found


def test_an_object_already_there_without_a_stored_checksum_is_hashed(moto_server, bucket):
    s3 = moto_server.client("s3")
    prefix = moto_server.unique("t10")
    value = blob(11, 300 * KB)
    key, ptr = planted(moto_server, bucket, prefix, value)
    same = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=same)  # ours, but no SHA-256 stored with it
    writer, w = make(moto_server, f"msgpack+s3://{bucket}/{prefix}")
    assert read_pointer(writer.serialize(value, CTX)) == ptr
    assert w.counts == {"PutObject": 1, "HeadObject": 1, "GetObject": 1}


def test_loads_are_checked_against_the_decode_budget_before_downloading(moto_server, bucket):
    writer, _ = make(moto_server, f"msgpack+s3://{bucket}/t11")
    text = writer.serialize(blob(12, 300 * KB), CTX)
    ptr = read_pointer(text)
    assert ptr is not None
    body = read_frame(unarmor(text, "t"), "t")[2]
    reader, r = make(moto_server, f"msgpack+s3://{bucket}/t11")
    for stage in (reader.offload, writer.offload):  # fetched or cached: the same check
        tight = DecodeBudget(DecodeLimits(max_bytes=ptr.size - 1), where="operation 'op-1'")
        with decoding(tight), pytest.raises(SerializationError, match="max_bytes") as err:
            stage.load(body, 1, CTX)
        assert ptr.url in str(err.value) and str(ptr.size - 1) in str(err.value)
    assert r.total() == 0  # refused before the GET
    enough = DecodeBudget(DecodeLimits(max_bytes=ptr.size + 100))
    enough.charge(50, "the pointer itself")
    with decoding(enough):
        assert len(reader.offload.load(body, 1, CTX)) == ptr.size
    # the stage only checks; the pipeline charges what a stage returns, once
    assert enough.used == 50 and r.counts == {"GetObject": 1}
    whole = durable_ext.serdes(
        f"msgpack+s3://{bucket}/t11", options={"s3": {"client": reader.offload.client.get()}},
        limits={"max_bytes": ptr.size + 400},
    )
    assert whole.deserialize(text, CTX) == blob(12, 300 * KB)


def test_a_failed_check_of_an_existing_object_is_retryable(moto_server, bucket):
    import boto3
    from botocore.config import Config
    from servers import TEST_CREDENTIALS

    value = blob(13, 300 * KB)
    proxy = FaultProxy(moto_server.port)
    try:
        client = boto3.client("s3", endpoint_url=proxy.endpoint_url,
                              config=Config(retries={"total_max_attempts": 1}),
                              **TEST_CREDENTIALS)
        writer = durable_ext.serdes(f"msgpack+s3://{bucket}/t12",
                                    options={"s3": {"client": client}})
        text = writer.serialize(value, CTX)
        # Dropped, not throttled, and nothing else sent through the proxy after it: the
        # proxy's replies to HEAD are not faithful (a throttling reply has a body, and a
        # forwarded one loses its Content-Length).
        proxy.fail(s3_method("HEAD"), "drop", 1)
        with pytest.raises(RetryableSerializationError, match="HeadObject could not reach"):
            writer.serialize(value, CTX)  # written before: checked, and the check cut off
    finally:
        proxy.close()
    reader, _ = make(moto_server, f"msgpack+s3://{bucket}/t12")
    assert reader.deserialize(text, CTX) == value


# -- real handlers ----------------------------------------------------------------------


def payloads(history: Any) -> list[tuple[str, str, str]]:
    """Every (event type, name, payload) the execution checkpointed, input excluded."""
    found = []
    for event in history.events:
        d = event.to_dict()
        for key, details in d.items():
            if key.endswith("Details") and isinstance(details, dict) and key != \
                    "ExecutionStartedDetails":
                for field in ("Result", "Payload"):
                    part = details.get(field)
                    if isinstance(part, dict) and part.get("Payload") is not None:
                        found.append((d["EventType"], d.get("Name", ""), part["Payload"]))
    return found


def big_workflow(make_serdes):
    def poll(state: dict, check_ctx: Any) -> dict:
        return {"n": state["n"] + 1, "pad": blob(900 + state["n"], 300 * KB)}

    def strategy(state: dict, attempt: int) -> WaitForConditionDecision:
        if state["n"] < 2:
            return WaitForConditionDecision.continue_waiting(Duration.from_seconds(1))
        return WaitForConditionDecision.stop_polling()

    @durable_execution
    def handler(event: dict, context: Any) -> dict:
        ctx = DefaultSerdesContext(context, make_serdes())
        big = ctx.step(lambda _: {"blob": blob(1, 5 * KB * KB), "n": 1}, name="big")
        items = ctx.map([0, 1, 2, 3], lambda c, x, i, all_: blob(100 + x, 300 * KB),
                        name="items")
        child = ctx.run_in_child_context(lambda c: blob(7, 400 * KB), name="child")
        par = ctx.parallel([lambda c: blob(8, 300 * KB), lambda c: "small"], name="par")
        state = ctx.wait_for_condition(
            poll, WaitForConditionConfig(strategy, {"n": 0, "pad": b""}), name="poll")
        ctx.wait(Duration.from_seconds(1), name="nap")
        h = hashlib.sha256(big["blob"])
        for part in [*items.get_results(), child, *par.get_results(), state["pad"]]:
            h.update(part if isinstance(part, bytes) else part.encode())
        return {"digest": h.hexdigest(), "n": state["n"]}

    return handler


def expected_digest() -> str:
    h = hashlib.sha256(blob(1, 5 * KB * KB))
    for part in [*(blob(100 + x, 300 * KB) for x in range(4)), blob(7, 400 * KB),
                 blob(8, 300 * KB), b"small", blob(901, 300 * KB)]:
        h.update(part)
    return h.hexdigest()


def test_large_results_of_every_operation_kind_encrypted_and_offloaded(
        moto_server, bucket, key_arn):
    prefix = moto_server.unique("e2e")
    spec = f"msgpack+zstd+kms:{key_arn}+s3://{bucket}/{prefix}"
    invocations: list[tuple[UrlCounter, RequestCounter]] = []

    def make_serdes() -> durable_ext.Pipeline:
        # A new pipeline and clients per invocation, as in a fresh Lambda process.
        s3, kms = moto_server.client("s3"), moto_server.client("kms")
        invocations.append((UrlCounter(s3), RequestCounter(kms)))
        return durable_ext.serdes(spec, options={"s3": {"client": s3}, "kms": {"client": kms}})

    with DurableFunctionTestRunner(handler=big_workflow(make_serdes), poll_interval=0.05) as r:
        arn = r.run_async(input="{}", execution_timeout=120)
        result = r.wait_for_result(arn, timeout=120)
        history = r.get_execution_history(arn, include_execution_data=True)
    assert result.status.value == "SUCCEEDED", result.error
    assert json.loads(result.result) == {"digest": expected_digest(), "n": 2}
    assert len(invocations) >= 3  # first run, wait_for_condition poll, after the wait

    found = payloads(history)
    assert all(len(p) <= DEFAULT_THRESHOLD for _, _, p in found)
    pointers = {name for _, name, p in found if is_armored(p) and read_pointer(p)}
    assert {"big", "map-item-0", "map-item-3", "items", "child", "parallel-branch-0", "par",
            "poll"} <= pointers
    child_events = [p for t, n, p in found if n == "child" and t == "ContextSucceeded"]
    assert len(child_events) == 1 and read_pointer(child_events[0]) is not None  # no summary

    s3 = moto_server.client("s3")
    stored = objects(s3, bucket, f"{prefix}/")
    puts = sum(s[0]["PutObject"] for s in invocations)
    assert puts == len(stored) >= 10  # one PUT per oversized write, no duplicates
    sample = blob(1, 5 * KB * KB)[1000:1064]
    for key in stored:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert read_frame(body, "t")[0] == b"k" and sample not in body  # ciphertext only
    generated = 0
    for s3_count, kms_count in invocations:
        gets = [n for (op, _), n in s3_count.paths.items() if op == "GetObject"]
        assert max(gets, default=0) <= 1  # at most one GET per pointer per invocation
        assert kms_count["GenerateDataKey"] <= 1
        assert kms_count["Decrypt"] <= generated  # at most one Decrypt per data key
        generated += kms_count["GenerateDataKey"]
    assert sum(s[0]["GetObject"] for s in invocations) >= 1  # replays did read S3


def test_a_shared_pipeline_replays_from_its_cache(moto_server, bucket, key_arn):
    prefix = moto_server.unique("shared")
    s3, kms = moto_server.client("s3"), moto_server.client("kms")
    s3_count, kms_count = RequestCounter(s3), RequestCounter(kms)
    serdes = durable_ext.serdes(f"msgpack+kms:{key_arn}+s3://{bucket}/{prefix}",
                                options={"s3": {"client": s3}, "kms": {"client": kms}})

    @durable_execution
    @durable_ext.default_serdes(serdes)
    def handler(event: dict, ctx: Any) -> int:
        data = ctx.step(lambda _: blob(5, 5 * KB * KB), name="big")
        ctx.wait(Duration.from_seconds(1), name="nap")
        return len(data)

    with DurableFunctionTestRunner(handler=handler, poll_interval=0.05) as r:
        result = r.run(input="{}", execution_timeout=60)
    assert result.status.value == "SUCCEEDED", result.error
    assert json.loads(result.result) == 5 * KB * KB
    assert s3_count.counts == {"PutObject": 1}
    assert kms_count.counts == {"GenerateDataKey": 1}
