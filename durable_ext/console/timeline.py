"""An execution's history as the rows of a timeline: one row per operation, nested.

:func:`build_timeline` is a pure function of the history events (as
``GetDurableExecutionHistory`` returns them, from any store or from Lambda) and the time
"now": it does no I/O and decodes nothing. Each :class:`Row` is an operation placed in
the tree its ``ParentId`` s draw (child contexts, map items, parallel branches), with the
spans a Gantt chart draws for it:

* ``attempt``: a step attempt, from its ``StepStarted`` to its outcome;
* ``retry``: the delay before the next attempt (``NextAttemptDelaySeconds``), as the
  service scheduled it;
* ``wait``: a durable wait, up to its ``ScheduledEndTimestamp``;
* ``callback``: a callback from its start to its outcome;
* ``run``: any other operation (a context, a chained invoke) from start to end.

Times are epoch milliseconds. An operation still open ends at ``now`` while the execution
runs, and at the execution's end once it has ended.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Row", "Span", "Timeline", "build_timeline", "to_ms"]

#: event-type prefixes of operations
_OPERATION_TYPES = ("ChainedInvoke", "Callback", "Context", "Step", "Wait")
_OUTCOMES = {
    "Succeeded": "SUCCEEDED",
    "Failed": "FAILED",
    "TimedOut": "TIMED_OUT",
    "Stopped": "STOPPED",
    "Cancelled": "CANCELLED",
}
#: event type -> (operation type, what happened), for every operation event
_KINDS = {f"{op}{what}": (op, what)
          for op in _OPERATION_TYPES for what in (*_OUTCOMES, "Started")}
_EXECUTION_ENDS = frozenset({"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut",
                             "ExecutionStopped"})
_OPEN_STATUSES = frozenset({"STARTED", "PENDING"})
#: narrowest bar drawn, in percent of the timeline, so instant operations stay visible
MIN_WIDTH = 0.3


def to_ms(value: Any) -> int | None:
    """Return a history timestamp (a datetime, or epoch ms as stored) as epoch ms."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return round(value.timestamp() * 1000)
    return int(value)


@dataclass(frozen=True, slots=True)
class Span:
    """One bar of a row: what happened between ``start_ms`` and ``end_ms``.

    Attributes:
        kind: ``attempt``, ``retry``, ``wait``, ``callback`` or ``run``.
        start_ms: Where the bar starts.
        end_ms: Where it ends (``now`` for one still open).
        status: The outcome (``SUCCEEDED``, ``FAILED``...), ``STARTED`` while open.
        label: What a reader is told about it (attempt number, delay, due time).
        open: Still going on: its end is not known yet.

    """

    kind: str
    start_ms: int
    end_ms: int
    status: str
    label: str
    open: bool = False


@dataclass(slots=True)
class Row:
    """One operation of the execution, where it sits in the tree, and its spans.

    Attributes:
        id: The operation id.
        name: Its name (may be None).
        type: ``Step``, ``Wait``, ``Callback``, ``Context`` or ``ChainedInvoke``.
        subtype: The SDK's subtype (``Map``, ``MapIteration``, ``Parallel``...).
        parent_id: The enclosing operation, None at the top.
        depth: Nesting level, 0 at the top.
        start_ms: First event of the operation.
        end_ms: Its outcome; None while open.
        status: ``STARTED``, ``PENDING`` (a retry is scheduled), or the outcome.
        attempts: Step attempts started.
        due_ms: When a wait ends, a retry starts, or a callback times out.
        callback_id: The id a callback is completed with.
        result: The result payload (checkpoint text).
        error: The error object (``ErrorType``, ``ErrorMessage``, ``ErrorData``...).
        input: The input payload of a chained invoke.
        spans: The bars to draw, in time order.
        event_ids: The history events about this operation.

    """

    id: str
    name: str | None
    type: str
    subtype: str | None
    parent_id: str | None
    depth: int = 0
    start_ms: int = 0
    end_ms: int | None = None
    status: str = "STARTED"
    attempts: int = 0
    due_ms: int | None = None
    callback_id: str | None = None
    result: str | None = None
    error: Mapping[str, Any] | None = None
    input: str | None = None
    spans: list[Span] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """Whether the operation has no outcome yet."""
        return self.status in _OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class Timeline:
    """The rows of an execution in tree order, and the time range they are drawn over.

    Attributes:
        rows: Operations, each parent before its children, siblings by start.
        start_ms: Left edge (the execution's start).
        end_ms: Right edge (its end, or now, or the latest due wait or retry).
        invocations: One ``run`` span per invocation of the handler.
        execution_status: The status the events say (``RUNNING`` until an end event).

    """

    rows: tuple[Row, ...]
    start_ms: int
    end_ms: int
    invocations: tuple[Span, ...]
    execution_status: str

    def place(self, span: Span) -> tuple[float, float]:
        """Return a span's left edge and width, in percent of the timeline."""
        total = max(self.end_ms - self.start_ms, 1)
        left = (span.start_ms - self.start_ms) * 100 / total
        width = (span.end_ms - span.start_ms) * 100 / total
        left = min(max(left, 0.0), 100 - MIN_WIDTH)
        return round(left, 2), round(min(max(width, MIN_WIDTH), 100 - left), 2)

    def offset(self, ms: int) -> float:
        """Return seconds from the execution's start."""
        return (ms - self.start_ms) / 1000


def build_timeline(events: Iterable[Mapping[str, Any]], now_ms: int) -> Timeline:
    """Turn history events into timeline rows (see the module docstring).

    Args:
        events: The history, oldest first.
        now_ms: The time open operations run to while the execution runs.

    """
    rows: dict[str, Row] = {}
    invocations: list[Span] = []
    first_ms: int | None = None
    last_ms = now_ms
    ended_ms: int | None = None
    status = "RUNNING"
    for event in events:
        kind = str(event.get("EventType", ""))
        ts = to_ms(event.get("EventTimestamp")) or 0
        first_ms = ts if first_ms is None else min(first_ms, ts)
        last_ms = max(last_ms, ts)
        if kind in _EXECUTION_ENDS:
            ended_ms, status = ts, _outcome(kind[len("Execution"):])
            continue
        if kind == "InvocationCompleted":
            details = event.get("InvocationCompletedDetails") or {}
            start = to_ms(details.get("StartTimestamp")) or ts
            end = to_ms(details.get("EndTimestamp")) or ts
            invocations.append(Span("run", start, end, "SUCCEEDED",
                                    f"invocation {len(invocations) + 1}"))
            continue
        known = _KINDS.get(kind)
        if known is None or not event.get("Id"):
            continue  # the execution's own events (started, paused, resumed)
        op_type, what = known
        row = rows.get(str(event["Id"]))
        if row is None:
            row = Row(id=str(event["Id"]), name=event.get("Name"), type=op_type,
                      subtype=event.get("SubType"), parent_id=event.get("ParentId"),
                      start_ms=ts)
            rows[row.id] = row
        if isinstance(event.get("EventId"), int):
            row.event_ids.append(event["EventId"])
        _apply(row, what, ts, event.get(f"{kind}Details") or {})
    start = first_ms if first_ms is not None else now_ms
    # "now" is never before the history's last event, whichever clock wrote it
    until = ended_ms if ended_ms is not None else max(last_ms, start)
    for row in rows.values():
        _close_open_spans(row, until)
    ordered = _tree_order(rows)
    end = max([until, *(r.due_ms for r in ordered if r.is_open and r.type != "Callback"
                        and r.due_ms is not None)])
    return Timeline(rows=tuple(ordered), start_ms=start, end_ms=max(end, start + 1),
                    invocations=tuple(invocations), execution_status=status)


def _outcome(suffix: str) -> str:
    return _OUTCOMES.get(suffix, suffix.upper())


def _apply(row: Row, what: str, ts: int, details: Mapping[str, Any]) -> None:
    """Fold one event (``what``: Started, Succeeded...) into its operation's row."""
    _payloads(row, details)
    if what == "Started":
        _started(row, ts, details)
        return
    outcome = _outcome(what)
    retry = details.get("RetryDetails") or {}
    delay = retry.get("NextAttemptDelaySeconds")
    if row.type == "Step" and not row.spans:
        row.attempts = max(row.attempts, 1)  # an outcome checkpointed without a start
        row.spans.append(Span("attempt", ts, ts, "STARTED", "attempt 1", open=True))
    _finish_last(row, ts, outcome)
    if delay is not None:
        # Not an outcome: the attempt ended and the service scheduled the next one.
        due = ts + int(delay) * 1000
        row.status, row.due_ms = "PENDING", due
        row.spans.append(Span("retry", ts, due, "PENDING", f"retry in {delay} s"))
        return
    row.status, row.end_ms = outcome, ts


def _started(row: Row, ts: int, details: Mapping[str, Any]) -> None:
    row.status, row.end_ms = "STARTED", None
    if row.type == "Step":
        row.attempts += 1
        if row.spans and row.spans[-1].kind == "retry":
            last = row.spans[-1]  # the delay as it really was: until this attempt began
            row.spans[-1] = Span("retry", last.start_ms, ts, "SUCCEEDED", last.label)
        row.due_ms = None
        row.spans.append(Span("attempt", ts, ts, "STARTED", f"attempt {row.attempts}",
                              open=True))
    elif row.type == "Wait":
        row.due_ms = to_ms(details.get("ScheduledEndTimestamp"))
        if row.due_ms is None and details.get("Duration") is not None:
            row.due_ms = ts + int(details["Duration"]) * 1000
        row.spans.append(Span("wait", ts, ts, "STARTED", f"wait {details.get('Duration')} s",
                              open=True))
    elif row.type == "Callback":
        row.callback_id = details.get("CallbackId")
        if details.get("Timeout"):
            row.due_ms = ts + int(details["Timeout"]) * 1000
        row.spans.append(Span("callback", ts, ts, "STARTED", "callback", open=True))
    else:
        row.spans.append(Span("run", ts, ts, "STARTED", row.subtype or row.type, open=True))


def _finish_last(row: Row, ts: int, outcome: str) -> None:
    if row.spans and row.spans[-1].open:
        last = row.spans[-1]
        row.spans[-1] = Span(last.kind, last.start_ms, ts, outcome, last.label)


def _close_open_spans(row: Row, until: int) -> None:
    """Draw what is still open up to ``until`` (a wait up to its due time)."""
    if not row.spans or not row.spans[-1].open:
        return
    last = row.spans[-1]
    end = max(until, last.start_ms)
    if last.kind == "wait" and row.due_ms is not None:
        end = max(row.due_ms, last.start_ms)  # the wait as scheduled
    row.spans[-1] = Span(last.kind, last.start_ms, end, last.status, last.label, open=True)


def _payloads(row: Row, details: Mapping[str, Any]) -> None:
    """Keep the payloads an event carries on its row (the latest one wins)."""
    result = details.get("Result")
    if isinstance(result, Mapping) and result.get("Payload") is not None:
        row.result = result["Payload"]
    error = details.get("Error")
    if isinstance(error, Mapping) and isinstance(error.get("Payload"), Mapping):
        row.error = error["Payload"]
    given = details.get("Input")
    if isinstance(given, Mapping) and given.get("Payload") is not None:
        row.input = given["Payload"]


def _tree_order(rows: Mapping[str, Row]) -> list[Row]:
    """Order rows parent first, siblings by first event; set each one's depth.

    Iterative, so a history nested thousands of levels deep cannot exhaust the stack;
    rows in a cycle of parents (a hostile history) are shown at the top level.
    """
    children: dict[str | None, list[Row]] = {}
    for row in rows.values():  # dicts keep first-event order
        parent = row.parent_id if row.parent_id in rows and row.parent_id != row.id else None
        children.setdefault(parent, []).append(row)
    out: list[Row] = []
    seen: set[str] = set()
    for top in [*children.get(None, []), *rows.values()]:
        stack: list[tuple[Row, int]] = [(top, 0)]
        while stack:
            row, depth = stack.pop()
            if row.id in seen:
                continue
            seen.add(row.id)
            row.depth = depth
            out.append(row)
            stack.extend((c, depth + 1) for c in reversed(children.get(row.id, [])))
    return out
