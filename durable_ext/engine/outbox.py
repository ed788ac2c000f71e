"""Status-change events, written to the store in the commit that changes the status.

Every status transition of an execution (RUNNING at the start, PAUSING, PAUSED, RUNNING
again, SUCCEEDED, FAILED, TIMED_OUT, STOPPED, DELETING) becomes an ``EMIT`` due entry of
that execution in the same atomic commit: the outbox. Nothing is lost when the process
dies after the commit; whoever delivers (:class:`durable_ext.events.Outbox`) sends the
entries of an execution in their order and removes each once every sink took it, so an
event is delivered at least once and its duplicates carry the same ``id``.

The event is shaped like an EventBridge event of the service (``source`` ``aws.lambda``,
``detail-type`` ``Durable Execution Status Change``); its ``detail`` has the members of
the API's ``Execution`` shape (what ListDurableExecutionsByFunction returns) plus
``PreviousStatus`` and ``Sequence`` (1, 2, ... per execution).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from durable_ext.backends.store import DueEntry, ExecutionHeader
from durable_ext.engine.state import DueKey, DueKind

__all__ = ["DETAIL_TYPE", "SOURCE", "EventStamp", "event_id", "outbox_entry", "status_event"]

DETAIL_TYPE = "Durable Execution Status Change"
SOURCE = "aws.lambda"
_ID_NAMESPACE = uuid.UUID("6c1d8a4e-3b0f-5f52-9a8e-5d0f1e2b7c41")


@dataclass(frozen=True, slots=True)
class EventStamp:
    """Where events come from: the region and account in their envelope and ARNs."""

    region: str
    account: str


def event_id(arn: str, sequence: int) -> str:
    """Return the stable id of an execution's ``sequence``-th status event (a UUID)."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{arn}#{sequence}"))


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def status_event(
    header: ExecutionHeader,
    previous: str | None,
    sequence: int,
    at_ms: int,
    stamp: EventStamp,
) -> dict[str, Any]:
    """Build the status-change event of ``header`` (its new status) as EventBridge shapes it."""
    function_arn = f"arn:aws:lambda:{stamp.region}:{stamp.account}:function:{header.function_name}"
    detail: dict[str, Any] = {
        "DurableExecutionArn": header.arn,
        "DurableExecutionName": header.name,
        "FunctionArn": function_arn,
        "Status": str(header.status),
        "PreviousStatus": None if previous is None else str(previous),
        "StartTimestamp": _iso(header.start_ms),
        "Sequence": sequence,
    }
    if header.end_ms is not None:
        detail["EndTimestamp"] = _iso(header.end_ms)
    if header.error is not None:
        detail["Error"] = {k: header.error[k] for k in ("ErrorType", "ErrorMessage")
                           if k in header.error}
    return {
        "version": "0",
        "id": event_id(header.arn, sequence),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": stamp.account,
        "time": _iso(at_ms),
        "region": stamp.region,
        "resources": [header.arn, function_arn],
        "detail": detail,
    }


def outbox_entry(
    header: ExecutionHeader, previous: str | None, sequence: int, at_ms: int, stamp: EventStamp
) -> DueEntry:
    """Return the ``EMIT`` due entry holding the event until it is delivered."""
    return DueEntry(
        arn=header.arn,
        key=DueKey.emit(sequence),
        kind=DueKind.EMIT,
        due_ms=at_ms,
        data={"event": status_event(header, previous, sequence, at_ms, stamp)},
    )
