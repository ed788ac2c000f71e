"""How botocore failures of the kms and s3 stages map onto the two serializer errors."""

from __future__ import annotations

import threading
import time

import pytest
from aws_durable_execution_sdk_python.exceptions import RetryableSerDesError, SerDesError
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    FlexibleChecksumError,
    IncompleteReadError,
    NoCredentialsError,
    ReadTimeoutError,
)

from durable_ext.errors import IntegrityError, RetryableSerializationError, SerializationError
from durable_ext.serializers._aws import (
    INTEGRITY_CODES,
    RETRYABLE_CODES,
    RETRYABLE_STATUS,
    BoundedCache,
    aws_errors,
)

#: the mapped codes, pinned: changing the mapping must change this test too
EXPECTED_RETRYABLE = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "SlowDown", "EC2ThrottledException", "InternalError",
    "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException",
    "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException",
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
    "ConditionalRequestConflict", "OperationAborted",
    # DynamoDB's and Lambda's: one table for every integration (durable_ext._aws)
    "ProvisionedThroughputExceededException", "LimitExceededException",
    "InternalServerError", "ServiceException", "ResourceNotReadyException",
}
EXPECTED_INTEGRITY = {"InvalidCiphertextException", "IncorrectKeyException", "BadDigest",
                      "InvalidDigest"}
PERMANENT = ["AccessDenied", "AccessDeniedException", "NoSuchKey", "NoSuchBucket",
             "NotFoundException", "DisabledException", "KMSInvalidStateException",
             "ValidationException", "InvalidKeyUsageException", "InvalidBucketName"]


def client_error(code: str, status: int = 400, op: str = "Decrypt") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, op)


def translate(exc: BaseException) -> BaseException:
    with pytest.raises(Exception) as caught, aws_errors("kms", "Decrypt", "operation 'op-7'"):
        raise exc
    assert caught.value.__cause__ is exc  # always chained
    assert "operation 'op-7'" in str(caught.value) and "kms Decrypt" in str(caught.value)
    return caught.value


def test_the_mapped_codes_are_these():
    assert set(RETRYABLE_CODES) == EXPECTED_RETRYABLE
    assert set(INTEGRITY_CODES) == EXPECTED_INTEGRITY
    assert set(RETRYABLE_STATUS) == {429, 500, 502, 503, 504}


@pytest.mark.parametrize("code", sorted(EXPECTED_RETRYABLE))
def test_transient_codes_retry_the_invocation(code):
    err = translate(client_error(code))
    assert isinstance(err, RetryableSerializationError) and isinstance(err, RetryableSerDesError)
    assert not isinstance(err, SerDesError)
    assert code in str(err)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_retry_whatever_the_code(status):
    assert isinstance(translate(client_error("SomethingNew", status)), RetryableSerializationError)


@pytest.mark.parametrize("code", sorted(EXPECTED_INTEGRITY))
def test_verification_failures_are_integrity_errors(code):
    err = translate(client_error(code))
    assert isinstance(err, IntegrityError) and isinstance(err, SerDesError)


@pytest.mark.parametrize("code", PERMANENT)
def test_other_client_errors_are_permanent(code):
    err = translate(client_error(code, 403 if "Access" in code else 400))
    assert type(err) is SerializationError
    assert code in str(err) and f"{code} happened" in str(err)


@pytest.mark.parametrize("exc", [
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
    IncompleteReadError(actual_bytes=1, expected_bytes=2),
])
def test_network_failures_retry_the_invocation(exc):
    assert isinstance(translate(exc), RetryableSerializationError)


def test_checksum_and_credential_failures_are_permanent():
    assert isinstance(translate(FlexibleChecksumError(error_msg="crc32 mismatch")), IntegrityError)
    assert type(translate(NoCredentialsError())) is SerializationError


def test_our_own_errors_and_unrelated_exceptions_pass_through():
    with pytest.raises(KeyError), aws_errors("s3", "GetObject", "x"):
        raise KeyError("k")
    own = IntegrityError("mine")
    with pytest.raises(IntegrityError) as caught, aws_errors("s3", "GetObject", "x"):
        raise own
    assert caught.value is own


def test_cache_evicts_least_recently_used_by_entries_and_bytes():
    c: BoundedCache[str, bytes] = BoundedCache(max_entries=3, max_bytes=10)
    for k in "abc":
        c.put(k, k.encode(), 3)
    assert c.get("a") == b"a"  # a is now most recent
    c.put("d", b"d", 3)  # 4 entries, 12 bytes: b goes (least recent), then c for bytes
    assert c.get("b") is None and c.get("a") == b"a" and c.get("d") == b"d"
    c.put("big", b"x", 11)  # larger than the whole cache: not kept, evicts nothing
    assert c.get("big") is None and c.get("a") == b"a"


def test_cache_expires_by_age():
    now = [0.0]
    c: BoundedCache[str, int] = BoundedCache(max_entries=5, max_bytes=5, max_age=10,
                                             clock=lambda: now[0])
    c.put("k", 1, 1)
    now[0] = 10.0
    assert c.get("k") == 1
    now[0] = 10.5
    assert c.get("k") is None and len(c) == 0


def test_concurrent_loads_of_one_key_run_the_loader_once():
    c: BoundedCache[str, int] = BoundedCache(max_entries=5, max_bytes=5)
    calls = []
    start = threading.Barrier(8)

    def load() -> tuple[int, int]:
        calls.append(1)
        time.sleep(0.05)
        return 42, 1

    results = []

    def worker() -> None:
        start.wait(timeout=5)
        results.append(c.get_or_load("k", load))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == [42] * 8 and len(calls) == 1


def test_a_failed_load_is_not_cached_and_the_next_caller_retries():
    c: BoundedCache[str, int] = BoundedCache(max_entries=5, max_bytes=5)

    def boom() -> tuple[int, int]:
        raise RetryableSerializationError("throttled")

    with pytest.raises(RetryableSerializationError):
        c.get_or_load("k", boom)
    assert c.get_or_load("k", lambda: (7, 1)) == 7
