"""The outbox's delivery: send each execution's status events in order, then remove them.

The events themselves are written by the engine, in the commit that changes the status
(:mod:`durable_ext.engine.outbox`). :class:`Outbox` reads them from the store's due-time
index, sends each to every sink, and removes it only once every sink took it. A failure
keeps that execution's later events back (order per execution holds) and is retried
with capped exponential backoff; other executions go on. A process that dies between
sending and removing sends the event again when anyone delivers next: duplicates carry
the same ``id``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from durable_ext.backends.store import DueEntry
from durable_ext.engine import DueKind, Engine
from durable_ext.errors import NotFoundError
from durable_ext.events.sinks import EventSink

__all__ = ["Outbox"]

log = logging.getLogger("durable_ext.events")


class Outbox:
    """Deliver the status events an engine recorded to ``sinks``.

    Args:
        engine: The engine whose store holds the outbox.
        sinks: Where every event goes.
        base_delay: First backoff after a failed delivery, seconds (doubled, capped).
        max_delay: Longest backoff.
        clock: Monotonic seconds (for the backoff).

    """

    def __init__(self, engine: Engine, sinks: Sequence[EventSink], *, base_delay: float = 0.5,
                 max_delay: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.sinks = tuple(sinks)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self.delivered = 0
        """Events every sink took (and that were removed from the outbox)."""
        self.last_error: BaseException | None = None

    def pending(self, arn: str | None = None) -> list[DueEntry]:
        """Return the events not delivered yet (of ``arn``, or of all), in delivery order."""
        try:
            entries = self.engine.store.due(None, arn=arn, kinds=[DueKind.EMIT])
        except NotFoundError:
            return []
        return sorted(entries, key=lambda d: (d.arn, d.key))

    def deliver(self, *, arn: str | None = None,
                accept: Callable[[DueEntry], bool] | None = None) -> int:
        """Send what is pending (of ``arn``, or of every execution ``accept`` takes).

        Returns:
            How many events were delivered and removed.

        """
        with self._lock:
            # The index across executions may lag (DynamoDB's does): it only says which
            # executions have events; each one's are then read from its own records.
            arns = dict.fromkeys(e.arn for e in self.pending(arn) if accept is None or accept(e))
            done = 0
            now = self._clock()
            for target in arns:
                failed = self._failures.get(target)
                if failed is not None and failed[1] > now:
                    continue  # backing off
                done += self._deliver_in_order(target, self.pending(target))
            self.delivered += done
            return done

    def _deliver_in_order(self, arn: str, entries: list[DueEntry]) -> int:
        sent: list[str] = []
        try:
            self._send_in_order(arn, entries, sent)
        finally:
            if sent:
                # one commit for everything sent: a crash before it resends them (same ids)
                with contextlib.suppress(NotFoundError):  # deleted meanwhile
                    self.engine.clear_due(arn, *sent)
        return len(sent)

    def _send_in_order(self, arn: str, entries: list[DueEntry], sent: list[str]) -> None:
        for entry in entries:
            # a copy: a sink that changes what it got changes nothing stored
            event: Any = copy.deepcopy(entry.data.get("event"))
            try:
                for sink in self.sinks:
                    sink.send(event)
            except Exception as exc:  # any sink's failure: the event is sent again later
                count = self._failures.get(arn, (0, 0.0))[0] + 1
                delay = min(self.max_delay, self.base_delay * 2 ** (count - 1))
                self._failures[arn] = (count, self._clock() + delay)
                self.last_error = exc
                log.warning("status event %s of %s not delivered (try %d, again in %.1f s): %s",
                            event.get("id") if isinstance(event, dict) else "?", arn, count,
                            delay, exc)
                return
            self._failures.pop(arn, None)
            sent.append(entry.key)
