"""Plumbing shared by the AWS-backed stages (``kms``, ``s3``).

* :func:`aws_errors` translates botocore failures into the package's two serializer
  errors: throttling, timeouts, 5xx and connection failures become
  :class:`~durable_ext.errors.RetryableSerializationError` (the SDK retries the
  invocation, the operation is not failed); everything else (access denied, bad
  ciphertext, a missing object, a checksum mismatch) becomes a permanent
  :class:`~durable_ext.errors.SerializationError` or
  :class:`~durable_ext.errors.IntegrityError`. Messages say what and where, never
  payload bytes or key material.
* :class:`LazyClient` builds a boto3 client on first use (so building a pipeline does
  no I/O) unless one is injected.
* :class:`BoundedCache` is a thread-safe LRU bounded by entries and bytes whose
  :meth:`~BoundedCache.get_or_load` runs at most one loader per key at a time, so
  parallel map branches replaying the same pointer or data key make one request.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from durable_ext._aws import (
    INTEGRITY_CODES,
    RETRYABLE_CODES,
    RETRYABLE_STATUS,
    AwsFailure,
    make_client,
    translated,
)
from durable_ext.errors import IntegrityError, RetryableSerializationError, SerializationError

__all__ = [
    "INTEGRITY_CODES",
    "RETRYABLE_CODES",
    "RETRYABLE_STATUS",
    "BoundedCache",
    "LazyClient",
    "aws_errors",
]


@contextmanager
def aws_errors(service: str, action: str, where: str) -> Iterator[None]:
    """Translate botocore errors raised inside the block.

    Args:
        service: ``"kms"`` or ``"s3"``, for the message.
        action: the API call, e.g. ``"GenerateDataKey"``.
        where: the operation and object concerned, e.g. ``"operation '1', s3://b/k"``.

    Example:
        >>> with aws_errors("s3", "GetObject", "operation '1'"):
        ...     pass

    """
    def error(failure: AwsFailure) -> Exception:
        what = f"{where}: {service} {action}"
        if failure.kind == "network":
            return RetryableSerializationError(
                f"{what} could not reach the service ({failure.message.split(':')[0]}); "
                "the invocation will be retried"
            )
        if failure.kind == "checksum":
            return IntegrityError(f"{what} returned data whose checksum does not match")
        if failure.kind == "credentials":
            return SerializationError(f"{what} has no AWS credentials to sign the request with")
        if failure.kind == "client":
            return SerializationError(f"{what} failed ({failure.message})")
        what += f" failed with {failure.label}"
        if failure.retryable:
            return RetryableSerializationError(
                f"{what}; this is transient, the invocation will be retried"
            )
        if failure.integrity:
            return IntegrityError(
                f"{what}: the data or its key does not verify (tampered, truncated, "
                "or encrypted under another key or context)"
            )
        # The service message names resources, never payloads.
        return SerializationError(f"{what}: {failure.message or 'permanent error'}")

    with translated(error):
        yield


class LazyClient:
    """A boto3 client given by the caller, or built on first use.

    Args:
        service: the boto3 service name.
        client: an existing client to use as is (tests, custom sessions, endpoints).
        config: botocore ``Config`` for a client built here; the default has short
            timeouts and three attempts, so a stalled call fails the invocation
            (which is retried) instead of hanging it.
        client_kwargs: further arguments for ``boto3.client`` (``region_name``,
            ``endpoint_url``).

    """

    def __init__(self, service: str, client: Any = None, config: Any = None,
                 **client_kwargs: Any) -> None:
        self.service = service
        self._client = client
        self._config = config
        self._kwargs = {k: v for k, v in client_kwargs.items() if v is not None}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "given" if self._client is not None else "lazy"
        return f"LazyClient({self.service!r}, {state})"

    def get(self) -> Any:
        """Return the client, building it on first call."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    kwargs = dict(self._kwargs)
                    self._client = make_client(
                        self.service, region=kwargs.pop("region_name", None),
                        config=self._config, connect_timeout=3, read_timeout=20, **kwargs,
                    )
                client = self._client
        return client


K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A thread-safe LRU bounded by entry count, total bytes and age.

    Args:
        max_entries: most entries kept.
        max_bytes: most total bytes kept (as reported by the ``size`` of each put).
        max_age: seconds an entry stays valid; ``None`` keeps it until evicted.
        clock: monotonic time source (tests pass a fake one).

    """

    def __init__(self, *, max_entries: int, max_bytes: int, max_age: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._clock = clock
        self._items: OrderedDict[K, tuple[V, int, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[K, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(entries={len(self._items)}, bytes={self._bytes})"

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """Return the cached value, or ``None`` when absent or expired."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if self.max_age is not None and self._clock() - item[2] > self.max_age:
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Insert ``value``; a value larger than ``max_bytes`` is not kept."""
        with self._lock:
            if key in self._items:
                self._drop(key)
            if size > self.max_bytes or self.max_entries <= 0:
                return
            self._items[key] = (value, size, self._clock())
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._items)))

    def get_or_load(self, key: K, load: Callable[[], tuple[V, int]]) -> V:
        """Return the cached value or ``load()`` it; one load per key at a time."""
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            gate = self._loading.setdefault(key, threading.Lock())
        try:
            with gate:
                value = self.get(key)
                if value is None:
                    value, size = load()
                    self.put(key, value, size)
        finally:
            with self._lock:
                if self._loading.get(key) is gate and not gate.locked():
                    del self._loading[key]
        return value

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _drop(self, key: K) -> None:
        _, size, _ = self._items.pop(key)
        self._bytes -= size
