"""``_X_AMZN_TRACE_ID`` for the invocation being run, correct under threads.

The Lambda runtime sets ``_X_AMZN_TRACE_ID`` in the process environment before each
invocation, and everything downstream reads it from there: the SDK's OpenTelemetry
plugin (``os.environ.get`` in its X-Ray extractor, at invocation start), the X-Ray SDK,
user code. A process running one invocation at a time can simply set it; the runtime's
inline invocations share one process and may run concurrently, so a plain
``os.environ`` write would hand one invocation another's trace.

So :func:`trace_scope` keeps the value in a context variable and ``os.environ`` is
given a subclass (the same object, so ``from os import environ`` sees it too) whose
lookups of that one key answer from the context variable first. The SDK runs the
handler and the plugin hooks in a copy of the invoking thread's context whenever a
plugin is registered, and its map/parallel branches in copies of their parent's, so
every read the invocation makes sees its own header.

Without a plugin the SDK starts the handler in a fresh worker thread that does not
carry the context; for that case the real environment also holds the header of the
invocation that started last (exact when invocations do not overlap, as on Lambda).
A process per invocation (``isolation="process"``, HTTP API handler processes) sets the
real environment and needs none of this.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

from durable_ext.engine.trace import TRACE_ENV

__all__ = ["current_trace", "set_process_trace", "trace_scope"]

_current: ContextVar[str | None] = ContextVar("durable_ext_trace_header", default=None)
_lock = threading.Lock()
_scopes = 0
_saved: str | None = None
_base_environ: Any = type(os.environ)


class _TraceAwareEnviron(_base_environ):  # type: ignore[misc]
    """``os.environ``, with ``_X_AMZN_TRACE_ID`` read from the running invocation."""

    def __getitem__(self, key: str) -> str:
        if key == TRACE_ENV:
            value = _current.get()
            if value is not None:
                return value
        result: str = super().__getitem__(key)
        return result

    def __contains__(self, key: object) -> bool:
        if key == TRACE_ENV and _current.get() is not None:
            return True
        return bool(super().__contains__(key))

    def copy(self) -> dict[str, str]:
        out: dict[str, str] = dict(super().copy())
        value = _current.get()
        if value is not None:
            out[TRACE_ENV] = value
        return out


def _install() -> None:
    if not isinstance(os.environ, _TraceAwareEnviron):
        os.environ.__class__ = _TraceAwareEnviron


def _real_value() -> str | None:
    try:
        value: str = _base_environ.__getitem__(os.environ, TRACE_ENV)
    except KeyError:
        return None
    return value


def current_trace() -> str | None:
    """Return the ``_X_AMZN_TRACE_ID`` of the invocation this code runs in, if any."""
    return _current.get() or os.environ.get(TRACE_ENV)


@contextmanager
def trace_scope(header: str | None) -> Iterator[None]:
    """Run the body as an invocation with trace ``header`` (nothing when None)."""
    global _scopes, _saved
    if header is None:
        yield
        return
    _install()
    token = _current.set(header)
    with _lock:
        if _scopes == 0:
            _saved = _real_value()
        _scopes += 1
        os.environ[TRACE_ENV] = header
    try:
        yield
    finally:
        _current.reset(token)
        with _lock:
            _scopes -= 1
            if _scopes == 0:
                set_process_trace(_saved)


def set_process_trace(header: str | None) -> None:
    """Set (or, with None, remove) the header in this process's real environment."""
    if header is None:
        with suppress(KeyError):  # not pop: it would read the running invocation's value
            del os.environ[TRACE_ENV]
    else:
        os.environ[TRACE_ENV] = header
