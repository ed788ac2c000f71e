"""Opaque identifiers the engine hands out: checkpoint tokens, callback ids, markers."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

__all__ = ["CheckpointToken", "decode_callback_id", "encode_callback_id"]


@dataclass(frozen=True, slots=True)
class CheckpointToken:
    """``(execution id, token sequence, invocation id)``, base64 JSON on the wire."""

    execution_id: str
    sequence: int
    invocation_id: str

    def encode(self) -> str:
        """Encode to the wire form (``[A-Za-z0-9+/]+={0,2}``, as the service's tokens)."""
        raw = json.dumps([self.execution_id, self.sequence, self.invocation_id]).encode()
        return base64.b64encode(raw).decode()

    @classmethod
    def decode(cls, token: str) -> CheckpointToken | None:
        """Parse a token; None when it is not one of ours."""
        try:
            eid, seq, inv = json.loads(base64.b64decode(token.encode(), validate=True))
        except (ValueError, TypeError, binascii.Error):
            return None
        if not (isinstance(eid, str) and isinstance(seq, int) and isinstance(inv, str)):
            return None
        return cls(eid, seq, inv)


def encode_callback_id(arn: str, op_id: str) -> str:
    """Make a callback id naming its execution and operation (URL-safe, no padding)."""
    raw = json.dumps([arn, op_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_callback_id(callback_id: str) -> tuple[str, str] | None:
    """Inverse of :func:`encode_callback_id`; None when malformed."""
    try:
        padded = callback_id + "=" * (-len(callback_id) % 4)
        arn, op_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error):
        return None
    if not (isinstance(arn, str) and isinstance(op_id, str)):
        return None
    return arn, op_id
