"""Where durable_ext's own work reports to a tracing plugin: serializer stages, commits.

Dependency-free and off by default. :data:`OBSERVERS` maps an execution ARN to the
:class:`Observer` of its running invocation (durable_ext's SDK plugin registers one per
invocation, see :mod:`durable_ext.tracing_plugin`); the pipeline and the service client
look an observer up by the ARN the SDK hands them, which works on any thread (the SDK's
checkpoint thread carries no context). With nothing registered the cost is one test of
an empty dict per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ["OBSERVERS", "Observer", "observed", "register", "unregister"]

T = TypeVar("T")


class Observer(Protocol):
    """What a tracing plugin implements to see durable_ext's work for one invocation."""

    def serializer(self, direction: str, pipeline: str, operation_id: str | None,
                   run: Callable[[], T], size: Callable[[T], int]) -> T:
        """Run ``run`` (an encode or decode) inside the observer's span; its result."""
        ...

    def commit(self, what: str, arn: str, updates: int, run: Callable[[], T]) -> T:
        """Run ``run`` (a checkpoint or a state read) inside the observer's span."""
        ...


OBSERVERS: dict[str, Observer] = {}
_lock = threading.Lock()


def register(arn: str, observer: Observer) -> None:
    """Report the work of execution ``arn`` to ``observer`` until :func:`unregister`."""
    with _lock:
        OBSERVERS[arn] = observer


def unregister(arn: str, observer: Observer) -> None:
    """Stop reporting ``arn`` to ``observer`` (another invocation's observer stays)."""
    with _lock:
        if OBSERVERS.get(arn) is observer:
            del OBSERVERS[arn]


def observed(arn: str | None) -> Observer | None:
    """Return the observer of ``arn``'s running invocation, if any."""
    return OBSERVERS.get(arn) if arn else None


