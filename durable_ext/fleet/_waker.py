"""Where an idle worker sleeps when its store pushes wake-ups (see ``WakingStore``).

The worker sleeps until the first of: a signal that work is due now (a commit set an
entry due already, or the store asks for a look after a reconnect), the earliest due time
it knows of (from its last claim or from a signal) comes, a poke from inside the worker
(a slot freed, a stop), or its fallback deadline. Signals that arrive while the worker is
claiming are kept, so none is lost between the claim and the sleep.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable

from durable_ext.runtime.clock import Clock

__all__ = ["Waker"]


class Waker:
    """A condition variable plus the earliest due time signalled since the last reset."""

    def __init__(self, kinds: Iterable[str]) -> None:
        self._kinds = frozenset(kinds)
        self._cond = threading.Condition()
        self._poked = False
        self._next_ms: int | None = None
        self.signals = 0
        """Signals received of the kinds this worker acts on."""
        self.woke: Counter[str] = Counter()
        """Why each sleep ended: ``poked``, ``due`` or ``fallback``."""

    def signal(self, kind: str, due_ms: int) -> None:
        """Take the store's signal: ``kind`` set due at ``due_ms`` (``""``: look now)."""
        if kind and kind not in self._kinds:
            return
        with self._cond:
            self.signals += 1
            if not kind:
                self._poked = True
            elif self._next_ms is None or due_ms < self._next_ms:
                self._next_ms = due_ms
            self._cond.notify_all()

    def poke(self) -> None:
        """Wake the sleeper now (a slot freed, a stop was asked for)."""
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def reset(self) -> None:
        """Forget what was signalled: called right before the worker looks for work."""
        with self._cond:
            self._poked = False
            self._next_ms = None

    def sleep(self, clock: Clock, known_next_ms: int | None, max_seconds: float) -> str:
        """Sleep as described above; returns why it woke (also counted in ``woke``)."""
        why = self._sleep(clock, known_next_ms, max_seconds)
        self.woke[why] += 1
        return why

    def _sleep(self, clock: Clock, known_next_ms: int | None, max_seconds: float) -> str:
        end = time.monotonic() + max(0.0, max_seconds)
        with self._cond:
            while True:
                if self._poked:
                    return "poked"
                candidates = [t for t in (known_next_ms, self._next_ms) if t is not None]
                nxt = min(candidates) if candidates else None
                now = clock.now_ms()
                if nxt is not None and nxt <= now:
                    return "due"
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return "fallback"
                if nxt is not None:
                    remaining = min(remaining, (nxt - now) / 1000)
                self._cond.wait(remaining)
