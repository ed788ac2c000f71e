"""Where status-change events go: an in-process hook, a webhook, an SQS queue.

A sink's :meth:`EventSink.send` either takes the event or raises; the
:class:`~durable_ext.events.outbox.Outbox` sends it again later (with the same ``id``).
Sinks therefore see each event at least once and must tolerate duplicates: the ``id``
says which ones they are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from durable_ext.errors import ConfigError, DeliveryError

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "EventSink",
    "HookSink",
    "SqsSink",
    "WebhookSink",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-Durable-Ext-Signature"
"""``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` under the webhook's secret."""
TIMESTAMP_HEADER = "X-Durable-Ext-Timestamp"
"""Epoch seconds the request was signed at (part of the signed text: replays show)."""
ID_HEADER = "X-Durable-Ext-Event-Id"
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_BODY_ECHO = 200


@runtime_checkable
class EventSink(Protocol):
    """Takes status-change events (EventBridge-shaped dicts); raises when it could not."""

    name: str

    def send(self, event: Mapping[str, Any]) -> None:
        """Deliver ``event`` or raise."""
        ...


def _body(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """Return the signature header value of ``body`` signed at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *,
           max_age: float = 300.0, now: float | None = None) -> bool:
    """Check a webhook request's signature and age (what a receiver runs)."""
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        return False
    return age <= max_age and hmac.compare_digest(sign(secret, timestamp, body), signature)


class HookSink:
    """Call ``hook(event)`` in this process (a test's list, a metrics counter...)."""

    name = "hook"

    def __init__(self, hook: Callable[[Mapping[str, Any]], Any]) -> None:
        self.hook = hook

    def send(self, event: Mapping[str, Any]) -> None:
        """Call the hook; what it raises makes the event be sent again later."""
        self.hook(event)


class WebhookSink:
    """POST each event as JSON to ``url``, signed, with retries and capped backoff.

    Args:
        url: ``http://`` or ``https://`` endpoint.
        secret: HMAC key of :data:`SIGNATURE_HEADER` (None: unsigned).
        attempts: Tries per :meth:`send` (the outbox calls again later when all fail).
        base_delay: First backoff, seconds; doubled per try, full jitter, capped.
        max_delay: Longest backoff between tries.
        timeout: Seconds per request.

    A 2xx answer takes the event; 408, 425, 429 and 5xx answers and connection failures
    are retried; other answers are the receiver refusing it, and are raised at once (the
    outbox still sends it again later: nothing is dropped).

    Example:
        >>> WebhookSink("https://hooks.example.com/durable", secret=b"k").name
        'webhook'

    """

    name = "webhook"

    def __init__(self, url: str, *, secret: bytes | str | None = None, attempts: int = 4,
                 base_delay: float = 0.2, max_delay: float = 5.0, timeout: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL must be http:// or https://, got {url[:80]!r}")
        if attempts < 1 or base_delay < 0 or max_delay < 0 or timeout <= 0:
            raise ConfigError("webhook: attempts >= 1, delays >= 0 and timeout > 0")
        self.url = url
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self._sleep = sleep

    def _request(self, event: Mapping[str, Any]) -> urllib.request.Request:
        body = _body(event)
        headers = {"Content-Type": "application/json", "User-Agent": "durable-ext",
                   ID_HEADER: str(event.get("id", ""))}
        if self.secret is not None:
            stamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = sign(self.secret, stamp, body)
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def send(self, event: Mapping[str, Any]) -> None:
        """POST the event; raise :class:`DeliveryError` when every try failed."""
        import random

        why = ""
        for attempt in range(self.attempts):
            if attempt:
                cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                self._sleep(random.uniform(0, cap))
            try:
                # signed per try: the timestamp is part of the signature
                with urllib.request.urlopen(self._request(event), timeout=self.timeout):
                    return
            except urllib.error.HTTPError as exc:
                why = f"HTTP {exc.code}"
                if exc.code not in _RETRY_STATUS:
                    text = exc.read(_MAX_BODY_ECHO).decode("utf-8", "replace")
                    raise DeliveryError(
                        f"webhook {self.url} refused event {event.get('id')}: {why} {text!r}"
                    ) from exc
            except (urllib.error.URLError, OSError) as exc:
                why = str(getattr(exc, "reason", exc))
        raise DeliveryError(
            f"webhook {self.url}: event {event.get('id')} not taken after {self.attempts} "
            f"tries ({why})"
        )


class SqsSink:
    """Send each event to an SQS queue (a FIFO queue keeps each execution's order).

    Args:
        queue_url: The queue's URL.
        client: A boto3 SQS client (default: one for ``region``/``endpoint_url``).
        region: Region of the default client.
        endpoint_url: Endpoint of the default client (a local emulator).

    The body is the event as JSON; the message attributes carry its ``id``, the execution
    ARN and the status. On a FIFO queue (``.fifo``) the group is the execution and the
    deduplication id the event's ``id``, so SQS itself drops a duplicate sent within its
    five-minute window.

    """

    name = "sqs"

    def __init__(self, queue_url: str, *, client: Any = None, region: str | None = None,
                 endpoint_url: str | None = None) -> None:
        if not queue_url:
            raise ConfigError("the SQS sink needs a queue URL")
        self.queue_url = queue_url
        self._client = client
        self._region = region
        self._endpoint_url = endpoint_url

    @property
    def client(self) -> Any:
        """The boto3 SQS client (built on first use)."""
        if self._client is None:
            from durable_ext._aws import make_client

            self._client = make_client("sqs", region=self._region,
                                       endpoint_url=self._endpoint_url)
        return self._client

    def send(self, event: Mapping[str, Any]) -> None:
        """SendMessage; AWS failures raise :class:`DeliveryError` (sent again later)."""
        from botocore.exceptions import BotoCoreError, ClientError

        detail = event.get("detail") or {}
        arn = str(detail.get("DurableExecutionArn", ""))
        params: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MessageBody": _body(event).decode(),
            "MessageAttributes": {
                "id": {"DataType": "String", "StringValue": str(event.get("id"))},
                "status": {"DataType": "String", "StringValue": str(detail.get("Status"))},
                "execution": {"DataType": "String", "StringValue": arn or "-"},
            },
        }
        if self.queue_url.endswith(".fifo"):
            params["MessageGroupId"] = hashlib.sha256(arn.encode()).hexdigest()[:64]
            params["MessageDeduplicationId"] = str(event.get("id"))
        try:
            self.client.send_message(**params)
        except (BotoCoreError, ClientError) as exc:
            raise DeliveryError(
                f"SQS {self.queue_url}: event {event.get('id')} not sent: {exc}"
            ) from exc
