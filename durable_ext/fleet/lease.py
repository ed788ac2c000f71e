"""Invocation leases on top of the public Store API: read, renew, and judge them.

The engine opens an invocation with a ``LEASE`` due entry (key ``"lease"``) whose
``due_ms`` is in wall-clock time and whose data names the invocation and its owner. A
fleet worker keeps that lease alive while its invocation runs, and another worker may
take the execution over once the lease has been expired for longer than the clock-skew
margin. Fencing needs nothing from here: taking over opens a new invocation, and the
engine refuses every checkpoint token of the old one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from durable_ext.backends.store import CommitBatch, DueEntry, DueKind, Store
from durable_ext.errors import ConflictError, NotFoundError

__all__ = ["LEASE_KEY", "Lease", "current_lease", "renew_lease"]

LEASE_KEY = "lease"
_RENEW_TRIES = 8


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


def renew_lease(store: Store, arn: str, invocation_id: str, until_ms: int) -> bool | None:
    """Move the lease of ``invocation_id`` to ``until_ms`` with a compare-and-set commit.

    Returns True when renewed, False when the lease is no longer ours (another worker took
    the execution over, or the invocation ended), and None when concurrent commits kept
    winning (the invocation is busy checkpointing; try again soon).
    """
    for _ in range(_RENEW_TRIES):
        try:
            header = store.header(arn)
        except NotFoundError:
            return False
        if (
            header.terminal
            or header.invocation_id != invocation_id
            or header.state.get("gate") != "INVOKING"
        ):
            return False
        lease = next(
            (d for d in store.due(arn=arn, kinds=[DueKind.LEASE]) if d.key == LEASE_KEY), None
        )
        if lease is None or str(lease.data.get("invocation")) != invocation_id:
            return False
        if lease.due_ms >= until_ms:
            return True
        batch = CommitBatch(
            header=header.evolve(revision=header.revision + 1),
            expected_revision=header.revision,
            due_set=[dataclasses.replace(lease, due_ms=until_ms)],
        )
        try:
            store.commit(batch)
        except ConflictError:
            continue
        return True
    return None
