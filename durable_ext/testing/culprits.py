"""Catch the usual causes of non-determinism in a handler's code outside steps.

A handler's code outside steps runs again on every replay; anything it reads from the
outside world (the clock, randomness, uuids, the environment) can take another path on
the next invocation. :class:`CulpritWatch` profiles the handler's threads while it runs
and records each such read made *from the user's own code* (not the SDK's, durable_ext's
or the standard library's own use), with the line that made it. Step bodies are not
watched: that is where such reads belong.

Calls are recognised by the function object called, so ``from time import time`` is
caught as well as ``time.time()``; ``random`` and ``secrets`` functions, ``uuid1`` and
``uuid4``, ``os.urandom``, ``os.environ`` and ``os.getenv`` are caught through the
standard-library code that calls into them.
"""

from __future__ import annotations

import _collections_abc
import datetime
import os
import random
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from durable_ext.runtime.trace_env import _TraceAwareEnviron
from durable_ext.testing._source import Location, is_user_file, location_of

__all__ = ["Culprit", "CulpritWatch", "stepping"]

# builtin function -> what it reads; keyed by (id(__self__), __name__): bound builtins
# are made afresh at each attribute access, their owner and name are not
_C_TARGETS: dict[tuple[int, str], str] = {
    (id(time), "time"): "time.time()",
    (id(time), "time_ns"): "time.time_ns()",
    (id(datetime.datetime), "now"): "datetime.now()",
    (id(datetime.datetime), "utcnow"): "datetime.utcnow()",
    (id(datetime.datetime), "today"): "datetime.today()",
    (id(datetime.date), "today"): "date.today()",
    (id(random._inst), "random"): "random.random()",
    (id(random._inst), "getrandbits"): "random.getrandbits()",
    (id(sys.modules[os.urandom.__module__ or "posix"]), "urandom"): "os.urandom()",
}
# Python functions -> what they read (the call event's caller must be the user's code)
_CALL_TARGETS: dict[Any, str] = {
    os._Environ.__getitem__.__code__: "os.environ",
    os._Environ.__iter__.__code__: "os.environ",
    uuid.uuid1.__code__: "uuid.uuid1()",
}
# standard-library code between the user's call and the read it makes, by the file name
# its code objects carry (frozen modules say "<frozen os>", not their __file__)
_MODULE_OF = {
    random.randint.__code__.co_filename: "random",
    uuid.uuid4.__code__.co_filename: "uuid",
    secrets.token_hex.__code__.co_filename: "secrets",
    os.getenv.__code__.co_filename: "os",
    _collections_abc.Mapping.get.__code__.co_filename: "os.environ",
    # the runtime's os.environ, which answers the trace header per invocation
    _TraceAwareEnviron.__getitem__.__code__.co_filename: "os.environ",
}
_THROUGH = frozenset(_MODULE_OF)


@dataclass(frozen=True, slots=True)
class Culprit:
    """A read of the outside world from the handler's code outside any step."""

    what: str
    location: Location

    def __str__(self) -> str:
        return f"{self.what} outside a step at {self.location}"


_local = threading.local()


def _in_step() -> bool:
    return bool(getattr(_local, "steps", 0))


@contextmanager
def stepping() -> Iterator[None]:
    """Mark this thread as running a step body (not watched, and not profiled)."""
    _local.steps = getattr(_local, "steps", 0) + 1
    saved = sys.getprofile()
    sys.setprofile(None)
    try:
        yield
    finally:
        sys.setprofile(saved)
        _local.steps -= 1


class CulpritWatch:
    """Profile the threads a handler starts; keep each culprit once, in order found."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str, int], Culprit] = {}
        self._lock = threading.Lock()

    @property
    def culprits(self) -> list[Culprit]:
        """What was found, first first."""
        with self._lock:
            return list(self._found.values())

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            what = _C_TARGETS.get((id(getattr(arg, "__self__", None)),
                                   getattr(arg, "__name__", "")))
            if what is not None:
                self._hit(frame, what)
        elif event == "call":
            what = _CALL_TARGETS.get(frame.f_code)
            if what is not None:
                self._hit(frame.f_back, what)

    def _hit(self, frame: FrameType | None, what: str) -> None:
        if _in_step():
            return
        f, callee = frame, None
        for _ in range(32):
            if f is None or f.f_code.co_filename not in _THROUGH:
                break
            callee, f = f, f.f_back
        if f is None or not is_user_file(f.f_code.co_filename):
            return  # the SDK's, the stdlib's or a library's own use
        if callee is not None:
            # name what the user called (random.randint, uuid.uuid4, os.getenv...)
            what = f"{_MODULE_OF.get(callee.f_code.co_filename, '?')}.{callee.f_code.co_name}()"
        loc = location_of(f)
        with self._lock:
            self._found.setdefault((what, loc.file, loc.line), Culprit(what, loc))

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Watch the threads started inside the block (the SDK runs the handler in one)."""
        previous: Callable[..., Any] | None = threading.getprofile()
        threading.setprofile(self._profile)
        try:
            yield
        finally:
            threading.setprofile(previous)
