"""One boto3 client factory and one botocore error classifier for every AWS integration.

The serializers (``kms``, ``s3``), the DynamoDB store and the Lambda control plane all
talk to AWS through boto3. They differ in what they raise (a serializer raises the SDK's
serialization errors, a store raises store errors), not in which failures are transient:
:func:`classify` decides that once, from the error code, the HTTP status and the kind
of botocore failure, and :func:`make_client` builds every client the same way (bounded
timeouts, a bounded number of attempts, placeholder credentials only for a loopback
endpoint that does not check them).

botocore is imported only when a function here is called: ``import durable_ext`` does
not need it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "INTEGRITY_CODES",
    "RETRYABLE_CODES",
    "RETRYABLE_STATUS",
    "AwsFailure",
    "classify",
    "is_loopback",
    "make_client",
    "translated",
]

RETRYABLE_CODES = frozenset({
    # throttling, by its many names across services
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "EC2ThrottledException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    # server-side and dependency faults
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "ResourceNotReadyException",
    # S3: two conditional writes of the same key raced; the loser may simply retry
    "ConditionalRequestConflict",
    "OperationAborted",
})
"""Error codes that mean "try again later", whatever the service."""

INTEGRITY_CODES = frozenset({
    "InvalidCiphertextException",
    "IncorrectKeyException",
    "BadDigest",
    "InvalidDigest",
})
"""Error codes that mean the data did not verify (tampered, wrong key, corrupt)."""

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses retried whatever the code says."""

Kind = Literal["service", "network", "checksum", "credentials", "client"]


@dataclass(frozen=True, slots=True)
class AwsFailure:
    """What a botocore failure was, in the terms every integration decides on.

    Attributes:
        kind: ``service`` (the service answered with an error code), ``network`` (no
            answer: refused, reset, timed out, cut short), ``checksum`` (the answer did
            not match its checksum), ``credentials`` (no credentials to sign with), or
            ``client`` (any other botocore failure before a request was answered).
        code: The service's error code (``""`` when it did not answer).
        status: The HTTP status (0 when it did not answer).
        message: The service's message, or botocore's, cut to 300 characters.
        retryable: Whether the same call may succeed later.
        integrity: Whether the data failed to verify (a bad ciphertext or checksum).

    """

    kind: Kind
    code: str
    status: int
    message: str
    retryable: bool
    integrity: bool

    @property
    def label(self) -> str:
        """``Code (HTTP status)``, or the kind of failure when the service did not answer."""
        if self.kind != "service":
            return self.kind
        return f"{self.code} (HTTP {self.status})" if self.status else self.code


def classify(exc: BaseException) -> AwsFailure | None:
    """Classify a botocore exception; ``None`` for anything that is not one."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        response: dict[str, Any] = getattr(exc, "response", None) or {}
        error = response.get("Error") or {}
        code = str(error.get("Code") or "")
        status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        message = str(error.get("Message") or "").strip()[:300]
        retryable = code in RETRYABLE_CODES or status in RETRYABLE_STATUS
        return AwsFailure(
            "service", code, status, message, retryable, code in INTEGRITY_CODES
        )
    if isinstance(exc, bx.FlexibleChecksumError | bx.ChecksumError):
        return AwsFailure("checksum", "", 0, str(exc)[:300], False, True)
    if isinstance(exc, bx.NoCredentialsError):
        return AwsFailure("credentials", "", 0, "no AWS credentials found", False, False)
    if isinstance(
        exc,
        bx.ConnectionError
        | bx.HTTPClientError
        | bx.IncompleteReadError
        | bx.CredentialRetrievalError,
    ):
        # Refused, reset, timed out, a body cut short, proxy and TLS failures, and a
        # metadata endpoint that did not answer: the endpoint may come back.
        return AwsFailure("network", "", 0, f"{type(exc).__name__}: {exc}"[:300], True, False)
    if isinstance(exc, bx.BotoCoreError):
        return AwsFailure("client", "", 0, f"{type(exc).__name__}: {exc}"[:300], False, False)
    return None


@contextmanager
def translated(error: Callable[[AwsFailure], Exception]) -> Iterator[None]:
    """Raise ``error(failure)`` (chained) for any botocore failure inside the block.

    Each integration says what a failure becomes in its own terms (a serializer error, a
    store error); which failures are transient is :func:`classify`'s to say.
    """
    try:
        yield
    except Exception as exc:
        failure = classify(exc)
        if failure is None:
            raise
        raise error(failure) from exc


def is_loopback(url: str | None) -> bool:
    """Whether ``url`` names a loopback host (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def make_client(
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
    max_attempts: int = 3,
    connect_timeout: float = 5,
    read_timeout: float = 20,
    **client_kwargs: Any,
) -> Any:
    """Build a boto3 client with bounded timeouts and attempts.

    ``max_attempts`` counts the first one; pass 1 where the caller retries itself. A
    loopback ``endpoint_url`` with no credentials configured gets placeholder ones (a
    local emulator does not check signatures; botocore still wants a key).

    Example:
        >>> make_client("s3", region="us-east-1").meta.service_model.service_name
        's3'

    """
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(profile_name=profile or None)
    if is_loopback(endpoint_url) and session.get_credentials() is None:
        client_kwargs.setdefault("aws_access_key_id", "local")
        client_kwargs.setdefault("aws_secret_access_key", "local")
    config = client_kwargs.pop("config", None) or Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
    )
    return session.client(
        service,
        region_name=region or session.region_name or "us-east-1",
        endpoint_url=endpoint_url or None,
        config=config,
        **client_kwargs,
    )
