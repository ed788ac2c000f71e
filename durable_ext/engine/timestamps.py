"""The timestamp fields of an engine operation, which keeps them as epoch milliseconds.

Each consumer (the SDK's ``Operation``, the REST-JSON wire) converts them its own way
through :func:`convert_timestamps`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["DETAIL_TIMESTAMPS", "OP_TIMESTAMPS", "convert_timestamps"]

OP_TIMESTAMPS = ("StartTimestamp", "EndTimestamp")
DETAIL_TIMESTAMPS = (
    ("StepDetails", "NextAttemptTimestamp"),
    ("WaitDetails", "ScheduledEndTimestamp"),
)


def convert_timestamps(op: Mapping[str, Any], convert: Callable[[Any], Any]) -> dict[str, Any]:
    """Return a copy of ``op`` with every timestamp that is set passed through ``convert``.

    The detail blocks are copied only when one of their timestamps changes, so the
    input is never modified.
    """
    out = dict(op)
    for key in OP_TIMESTAMPS:
        if out.get(key) is not None:
            out[key] = convert(out[key])
    for block, key in DETAIL_TIMESTAMPS:
        inner = out.get(block)
        if inner and inner.get(key) is not None:
            inner = dict(inner)
            inner[key] = convert(inner[key])
            out[block] = inner
    return out
