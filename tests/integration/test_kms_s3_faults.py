"""Throttling and dropped connections, injected at the HTTP level between boto3 and moto.

A loopback proxy in front of the moto server answers chosen requests with the
services' own throttling responses, or closes the connection without answering.
The stages must raise the SDK's RetryableSerDesError (the invocation is retried, the
operation is not failed), and a real execution must complete after the retry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import Duration
from aws_durable_execution_sdk_python.exceptions import RetryableSerDesError, SerDesError
from aws_durable_execution_sdk_python.serdes import SerDesContext
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner
from botocore.config import Config
from servers import TEST_CREDENTIALS, FaultProxy, kms_action, s3_method

import durable_ext
from durable_ext.errors import RetryableSerializationError
from durable_ext.serializers.defaults import DefaultSerdesContext
from durable_ext.serializers.s3 import read_pointer

pytestmark = pytest.mark.integration

CTX = SerDesContext("op-1", "arn:exec-faults")
#: two attempts per call, so two injected faults exhaust botocore's own retries
ATTEMPTS = 2


@pytest.fixture(scope="module")
def proxy(moto_server) -> Iterator[FaultProxy]:
    p = FaultProxy(moto_server.port)
    yield p
    p.close()


@pytest.fixture(scope="module")
def setup(moto_server) -> dict[str, str]:
    bucket = moto_server.unique("faults")
    moto_server.client("s3").create_bucket(Bucket=bucket)
    key = moto_server.client("kms").create_key()["KeyMetadata"]["Arn"]
    return {"bucket": bucket, "key": key}


def client(service: str, endpoint: str) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": ATTEMPTS},
                    connect_timeout=2, read_timeout=10)
    return boto3.client(service, endpoint_url=endpoint, config=config, **TEST_CREDENTIALS)


def pipeline(proxy: FaultProxy, setup: dict[str, str], prefix: str) -> durable_ext.Pipeline:
    return durable_ext.serdes(
        f"msgpack+kms:{setup['key']}+s3://{setup['bucket']}/{prefix}",
        options={"kms": {"client": client("kms", proxy.endpoint_url)},
                 "s3": {"client": client("s3", proxy.endpoint_url)}})


def assert_retryable(exc: BaseException, *words: str) -> None:
    assert isinstance(exc, RetryableSerializationError)
    assert isinstance(exc, RetryableSerDesError) and not isinstance(exc, SerDesError)
    assert exc.__cause__ is not None
    for w in words:
        assert w in str(exc)


def test_kms_throttling_and_dropped_connections_are_retryable(proxy, setup):
    s = pipeline(proxy, setup, "f1")
    proxy.fail(kms_action("GenerateDataKey"), "throttle", ATTEMPTS)
    with pytest.raises(RetryableSerializationError) as err:
        s.serialize({"a": 1}, CTX)
    assert_retryable(err.value, "ThrottlingException", "GenerateDataKey", "op-1")
    text = s.serialize({"a": 1}, CTX)  # the next attempt goes through
    reader = pipeline(proxy, setup, "f1")
    proxy.fail(kms_action("Decrypt"), "drop", ATTEMPTS)
    with pytest.raises(RetryableSerializationError) as err:
        reader.deserialize(text, CTX)
    assert_retryable(err.value, "Decrypt", "could not reach")
    assert reader.deserialize(text, CTX) == {"a": 1}


def test_s3_slowdown_and_dropped_connections_are_retryable(proxy, setup, moto_server):
    s = pipeline(proxy, setup, "f2")
    value = {"blob": b"\x01" * 300_000}
    s.serialize("warm the data key", CTX)
    proxy.fail(s3_method("PUT"), "throttle", ATTEMPTS)
    with pytest.raises(RetryableSerializationError) as err:
        s.serialize(value, CTX)
    assert_retryable(err.value, "SlowDown", "PutObject", f"s3://{setup['bucket']}/f2/")
    listed = moto_server.client("s3").list_objects_v2(Bucket=setup["bucket"], Prefix="f2/")
    assert listed.get("KeyCount", 0) == 0  # nothing half-written
    text = s.serialize(value, CTX)
    assert read_pointer(text) is not None
    reader = pipeline(proxy, setup, "f2")
    proxy.fail(s3_method("GET"), "drop", ATTEMPTS)
    with pytest.raises(RetryableSerializationError) as err:
        reader.deserialize(text, CTX)
    assert_retryable(err.value, "GetObject")
    assert reader.deserialize(text, CTX) == value


def test_an_execution_completes_after_injected_faults(proxy, setup):
    invocations: list[int] = []
    before = dict(proxy.injected)

    @durable_execution
    def handler(event: dict, context: Any) -> int:
        invocations.append(1)
        # cold caches in every invocation, as in a new Lambda process
        ctx = DefaultSerdesContext(context, pipeline(proxy, setup, "f3"))
        data = ctx.step(lambda _: b"\x02" * 300_000, name="big")
        ctx.wait(Duration.from_seconds(1), name="nap")
        return len(data)

    # First invocation: KMS throttles the data key. Replay: S3 drops the read.
    proxy.fail(kms_action("GenerateDataKey"), "throttle", ATTEMPTS)
    proxy.fail(s3_method("GET"), "drop", ATTEMPTS)
    with DurableFunctionTestRunner(handler=handler, poll_interval=0.05) as r:
        result = r.run(input="{}", execution_timeout=120)
    assert result.status.value == "SUCCEEDED", result.error
    assert json.loads(result.result) == 300_000
    assert proxy.injected["throttle"] - before.get("throttle", 0) == ATTEMPTS
    assert proxy.injected["drop"] - before.get("drop", 0) == ATTEMPTS
    # two invocations failed and were retried, two did the work
    assert len(invocations) == 4
    step = result.get_step("big")
    assert step.status.value == "SUCCEEDED" and read_pointer(step.result) is not None
