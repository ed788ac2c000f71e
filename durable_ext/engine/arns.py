"""Execution and function ARNs: the version an execution runs is part of its ARN."""

from __future__ import annotations

import re

__all__ = ["LATEST", "is_version", "split_qualifier", "version_of"]

LATEST = "$LATEST"
_VERSION = re.compile(r"\$LATEST|[1-9][0-9]{0,9}")


def is_version(qualifier: str) -> bool:
    """Whether ``qualifier`` is a version (``$LATEST`` or a number), not an alias."""
    return bool(_VERSION.fullmatch(qualifier))


def split_qualifier(function_name: str) -> tuple[str, str | None]:
    """``fn``, ``fn:qualifier`` or a function ARN -> ``(fn, qualifier or None)``."""
    if function_name.startswith("arn:"):
        parts = function_name.split(":")
        name = parts[6] if len(parts) > 6 else ""
        return name, (parts[7] if len(parts) > 7 and parts[7] else None)
    name, _, qualifier = function_name.partition(":")
    return name, qualifier or None


def version_of(arn: str) -> str:
    """Return the version an execution ARN records (``$LATEST`` when it names none)."""
    head = arn.split("/durable-execution/", 1)[0]
    parts = head.split(":")
    return parts[7] if len(parts) > 7 and parts[7] else LATEST
