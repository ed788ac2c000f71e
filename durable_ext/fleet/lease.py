"""Invocation leases on top of the public Store API: read and judge them.

The engine opens an invocation with a ``LEASE`` due entry (key ``"lease"``) whose
``due_ms`` is in wall-clock time and whose data names the invocation and its owner. A
fleet worker keeps that lease alive while its invocation runs, and another worker may
take the execution over once the lease has been expired for longer than the clock-skew
margin. Renewing and taking over are engine calls (``Engine.renew_lease`` and
``Engine.abandon_invocation``), so the lease's layout stays the engine's business.
Fencing needs nothing from here: taking over opens a new invocation, and the engine
refuses every checkpoint token of the old one.
"""

from __future__ import annotations

from dataclasses import dataclass

from durable_ext.backends.engine import LEASE_KEY
from durable_ext.backends.store import DueEntry, DueKind, Store
from durable_ext.errors import NotFoundError

__all__ = ["LEASE_KEY", "Lease", "current_lease"]


@dataclass(frozen=True, slots=True)
class Lease:
    """One invocation lease as stored."""

    arn: str
    invocation_id: str
    owner: str
    host: str
    pid: int
    due_ms: int

    @classmethod
    def of(cls, entry: DueEntry) -> Lease:
        """Return the lease described by a ``LEASE`` due entry."""
        d = entry.data
        return cls(
            arn=entry.arn,
            invocation_id=str(d.get("invocation", "")),
            owner=str(d.get("owner", "")),
            host=str(d.get("host", "")),
            pid=int(d.get("pid", 0) or 0),
            due_ms=entry.due_ms,
        )

    def expired(self, wall_ms: int, margin_ms: int) -> bool:
        """Expired for longer than ``margin_ms`` (the tolerated clock skew) at ``wall_ms``."""
        return self.due_ms + margin_ms <= wall_ms


def current_lease(store: Store, arn: str) -> Lease | None:
    """Read the execution's lease from its own records (consistent, not the index)."""
    try:
        entries = store.due(arn=arn, kinds=[DueKind.LEASE])
    except NotFoundError:
        return None
    for entry in entries:
        if entry.key == LEASE_KEY:
            return Lease.of(entry)
    return None
