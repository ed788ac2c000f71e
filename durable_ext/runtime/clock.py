"""Clocks: the runtime's notion of "now" for timestamps and timers."""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "RealClock", "VirtualClock"]


class Clock(Protocol):
    """What the runtime needs from a clock."""

    def now_ms(self) -> int:
        """Return the current time, epoch milliseconds."""
        ...

    def sleep_until(self, due_ms: int, max_seconds: float) -> None:
        """Let time pass until ``due_ms`` (or at most ``max_seconds`` of real time)."""
        ...


class RealClock:
    """Wall-clock time; waits really wait."""

    def now_ms(self) -> int:
        """Return the wall-clock time."""
        return int(time.time() * 1000)

    def sleep_until(self, due_ms: int, max_seconds: float) -> None:
        """Sleep until ``due_ms``, bounded by ``max_seconds``."""
        delay = (due_ms - self.now_ms()) / 1000
        if delay > 0:
            time.sleep(min(delay, max_seconds))


class VirtualClock:
    """Virtual time that only moves when told to: long waits become instant.

    The runtime advances it to the next due timer whenever nothing else is runnable;
    timestamps and history keep the modelled durations.

    Example:
        >>> clock = VirtualClock(start_ms=0)
        >>> clock.advance(3600)
        >>> clock.now_ms()
        3600000

    """

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        """Return the virtual time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += int(seconds * 1000)

    def sleep_until(self, due_ms: int, max_seconds: float) -> None:
        """Jump to ``due_ms`` at once (never backwards)."""
        with self._lock:
            self._now = max(self._now, int(due_ms))
