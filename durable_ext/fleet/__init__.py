"""A fleet of workers sharing executions through Redis or DynamoDB, with leases and fencing.

Example:
    >>> from durable_ext.fleet import Worker
    >>> worker = Worker("redis://127.0.0.1:6379/0", concurrency=4)  # doctest: +SKIP

"""

from __future__ import annotations

from durable_ext.fleet.worker import SkewedClock, Worker, WorkerStats

__all__ = ["SkewedClock", "Worker", "WorkerStats"]
