"""A fleet of workers sharing executions through Redis or DynamoDB, with leases and fencing.

Example:
    >>> from durable_ext.fleet import Worker
    >>> worker = Worker("redis://127.0.0.1:6379/0", concurrency=4)  # doctest: +SKIP

"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durable_ext.fleet.worker import SkewedClock, Worker, WorkerStats

__all__ = ["SkewedClock", "Worker", "WorkerStats"]


def __getattr__(name: str) -> Any:
    # Imported on first use: ``python -m durable_ext.fleet`` must reach its signal
    # handling before the worker's heavy imports.
    if name in __all__:
        return getattr(importlib.import_module("durable_ext.fleet.worker"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
