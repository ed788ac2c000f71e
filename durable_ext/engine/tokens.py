"""Ids the engine hands out: checkpoint tokens and callback ids, MACed under the store's secret.

A callback id names its execution and operation, and a checkpoint token its execution,
token sequence and invocation, so any engine sharing the store can act on them without a
lookup. Both carry an HMAC-SHA256 tag (128 bits) under a key derived from
:meth:`Store.secret <durable_ext.backends.store.Store.secret>`, one key per kind: whoever
holds one callback id cannot mint another, turn a token into a callback id, or change what
either names. Both are standard base64 (``[A-Za-z0-9+/]+={0,2}``, the service's pattern)::

    tag (16 bytes) | JSON [arn, operation id]               callback id
    tag (16 bytes) | JSON [execution id, sequence, invocation]  checkpoint token
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CALLBACK_ID_MAX",
    "TOKEN_MAX",
    "CheckpointToken",
    "IdSigner",
    "peek_callback_id",
]

#: the service's bounds on the two strings (botocore's Lambda model)
CALLBACK_ID_MAX = 1024
TOKEN_MAX = 2048
_TAG = 16
_CALLBACK_LABEL = b"durable_ext callback id v1"
_TOKEN_LABEL = b"durable_ext checkpoint token v1"


@dataclass(frozen=True, slots=True)
class CheckpointToken:
    """``(execution id, token sequence, invocation id)``: what a checkpoint token names."""

    execution_id: str
    sequence: int
    invocation_id: str


def _split(text: str, limit: int) -> tuple[bytes, bytes] | None:
    """Split a base64 id into its tag and body; None when malformed or too long."""
    if not isinstance(text, str) or not 0 < len(text) <= limit:
        return None
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeError, binascii.Error):
        return None
    return raw[:_TAG], raw[_TAG:]


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def peek_callback_id(callback_id: str) -> tuple[str, str] | None:
    """Read which execution and operation a callback id names, without verifying it.

    For routing only (a tool finding the store an execution lives in); the engine
    verifies the id before it acts on it.
    """
    parts = _split(callback_id, CALLBACK_ID_MAX)
    body = None if parts is None else _parse(parts[1])
    if not (isinstance(body, list) and len(body) == 2 and all(isinstance(x, str) for x in body)):
        return None
    return body[0], body[1]


class IdSigner:
    """Makes and verifies the callback ids and checkpoint tokens of one store.

    Example:
        >>> signer = IdSigner(b"s" * 32)
        >>> cid = signer.callback_id("arn:aws:lambda:...:exec", "op-1")
        >>> signer.callback_target(cid)
        ('arn:aws:lambda:...:exec', 'op-1')
        >>> IdSigner(b"t" * 32).callback_target(cid) is None
        True

    """

    __slots__ = ("_callback_key", "_token_key")

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("the id secret must be at least 16 bytes")
        self._callback_key = hmac.digest(secret, _CALLBACK_LABEL, "sha256")
        self._token_key = hmac.digest(secret, _TOKEN_LABEL, "sha256")

    @staticmethod
    def _seal(key: bytes, body: Any) -> str:
        raw = json.dumps(body, separators=(",", ":")).encode()
        tag = hmac.digest(key, raw, "sha256")[:_TAG]
        return base64.b64encode(tag + raw).decode("ascii")

    @staticmethod
    def _open(key: bytes, text: str, limit: int) -> Any:
        parts = _split(text, limit)
        if parts is None:
            return None
        tag, raw = parts
        if not hmac.compare_digest(tag, hmac.digest(key, raw, "sha256")[:_TAG]):
            return None
        return _parse(raw)

    def callback_id(self, arn: str, op_id: str) -> str:
        """Return the callback id of operation ``op_id`` of execution ``arn``."""
        return self._seal(self._callback_key, [arn, op_id])

    def callback_target(self, callback_id: str) -> tuple[str, str] | None:
        """Return ``(arn, op_id)`` of a genuine callback id; None for anything else."""
        body = self._open(self._callback_key, callback_id, CALLBACK_ID_MAX)
        if not (
            isinstance(body, list) and len(body) == 2 and all(isinstance(x, str) for x in body)
        ):
            return None
        return body[0], body[1]

    def token(self, token: CheckpointToken) -> str:
        """Return the wire form of a checkpoint token."""
        return self._seal(
            self._token_key, [token.execution_id, token.sequence, token.invocation_id]
        )

    def parse_token(self, text: str) -> CheckpointToken | None:
        """Return the token a genuine checkpoint token names; None for anything else."""
        body = self._open(self._token_key, text, TOKEN_MAX)
        if not (isinstance(body, list) and len(body) == 3):
            return None
        eid, seq, inv = body
        if not (isinstance(eid, str) and type(seq) is int and isinstance(inv, str)):
            return None
        return CheckpointToken(eid, seq, inv)
