"""Helpers shared by the ``parallel`` and ``map`` handlers."""

from __future__ import annotations

from typing import Any

from aws_durable_execution_sdk_python.concurrency.models import BatchResult


def projection(result: BatchResult[Any], *fields: str) -> dict[str, Any]:
    """The summary object many batch cases return, restricted to ``fields``."""
    values: dict[str, Any] = {
        "completionReason": result.completion_reason.value,
        "status": result.status.value,
        "successCount": result.success_count,
        "failureCount": result.failure_count,
        "totalCount": result.total_count,
    }
    return {name: values[name] for name in fields}


FULL = ("completionReason", "status", "successCount", "failureCount", "totalCount")
NO_STATUS = ("completionReason", "successCount", "failureCount", "totalCount")
