"""Stop signals that arrive while a worker process is still starting.

A worker needs a few hundred milliseconds (imports, opening the store, importing the
handlers) before :meth:`Worker.install_signal_handlers` runs. A SIGTERM in that window
would kill it with the default action (exit status -15) instead of a clean stop, so the
command line records stop signals from its first line on and the worker acts on them
once it can. A starter that wants no window at all spawns the worker with SIGTERM and
SIGINT blocked: they stay pending until the worker unblocks them, ready to stop.
"""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["STOP_SIGNALS", "defer_stop_signals", "deferred_stop", "unblock_stop_signals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []


def _record(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)


def defer_stop_signals() -> None:
    """Record SIGTERM and SIGINT from now on instead of dying (main thread only)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _record)


def deferred_stop() -> int | None:
    """Return the first stop signal recorded since :func:`defer_stop_signals`, if any."""
    return _received[0] if _received else None


def unblock_stop_signals() -> None:
    """Deliver stop signals the starter held back (blocked) to the handlers now in place."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
