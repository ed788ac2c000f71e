"""The console's timeline: history events -> nested rows with their spans (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from durable_ext.console.timeline import MIN_WIDTH, build_timeline, to_ms

T0 = 1_800_000_000_000


def ev(kind: str, at: float, op: str | None = None, *, parent: str | None = None,
       name: str | None = None, sub: str | None = None, **details: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"EventType": kind, "EventTimestamp": T0 + int(at * 1000),
                           f"{kind}Details": details}
    for key, value in (("Id", op), ("ParentId", parent), ("Name", name), ("SubType", sub)):
        if value is not None:
            out[key] = value
    return out


def test_steps_retries_and_their_delays_become_attempt_and_retry_spans() -> None:
    events = [
        ev("ExecutionStarted", 0, "exec"),
        ev("StepStarted", 0, "s1", name="charge"),
        ev("StepFailed", 1, "s1", Error={"Payload": {"ErrorType": "Timeout"}},
           RetryDetails={"CurrentAttempt": 1, "NextAttemptDelaySeconds": 4}),
        ev("StepStarted", 6, "s1"),
        ev("StepSucceeded", 7, "s1", Result={"Payload": "42"},
           RetryDetails={"CurrentAttempt": 2}),
        ev("ExecutionSucceeded", 8, "exec"),
    ]
    tl = build_timeline(events, now_ms=T0 + 60_000)
    (row,) = tl.rows
    assert (row.status, row.attempts, row.result) == ("SUCCEEDED", 2, "42")
    assert row.error == {"ErrorType": "Timeout"}  # the failed attempt's error is kept
    assert [(s.kind, s.status, s.start_ms - T0, s.end_ms - T0) for s in row.spans] == [
        ("attempt", "FAILED", 0, 1000),
        ("retry", "SUCCEEDED", 1000, 6000),   # the delay as it really was
        ("attempt", "SUCCEEDED", 6000, 7000),
    ]
    assert (tl.start_ms, tl.end_ms, tl.execution_status) == (T0, T0 + 8000, "SUCCEEDED")


def test_a_pending_retry_is_drawn_to_its_due_time_and_widens_the_range() -> None:
    events = [ev("ExecutionStarted", 0, "exec"), ev("StepStarted", 0, "s1"),
              ev("StepFailed", 1, "s1", RetryDetails={"NextAttemptDelaySeconds": 30})]
    tl = build_timeline(events, now_ms=T0 + 2000)
    row = tl.rows[0]
    assert row.status == "PENDING" and row.is_open and row.due_ms == T0 + 31_000
    assert tl.end_ms == T0 + 31_000
    assert row.spans[-1].kind == "retry" and row.spans[-1].end_ms == T0 + 31_000


def test_nesting_follows_parent_ids_parents_first_siblings_by_start() -> None:
    events = [
        ev("ExecutionStarted", 0, "exec"),
        ev("ContextStarted", 0, "map", name="lines", sub="Map"),
        ev("ContextStarted", 0, "i0", parent="map", sub="MapIteration"),
        ev("ContextStarted", 0, "i1", parent="map", sub="MapIteration"),
        ev("StepStarted", 0, "i1.s", parent="i1"),
        ev("StepStarted", 0, "i0.s", parent="i0"),
        ev("StepStarted", 1, "after"),
    ]
    tl = build_timeline(events, now_ms=T0 + 5000)
    assert [(r.id, r.depth) for r in tl.rows] == [
        ("map", 0), ("i0", 1), ("i0.s", 2), ("i1", 1), ("i1.s", 2), ("after", 0)]
    # still running: open operations are drawn up to now
    assert all(r.spans[-1].open and r.spans[-1].end_ms == T0 + 5000 for r in tl.rows)


def test_waits_and_callbacks_keep_due_times_ids_and_state() -> None:
    due = dt.datetime.fromtimestamp((T0 + 10_000) / 1000, dt.UTC)
    events = [
        ev("ExecutionStarted", 0, "exec"),
        ev("WaitStarted", 0, "w", Duration=10, ScheduledEndTimestamp=due),
        ev("CallbackStarted", 1, "cb", name="approval", CallbackId="abc", Timeout=3600),
    ]
    tl = build_timeline(events, now_ms=T0 + 2000)
    wait, cb = tl.rows
    assert wait.due_ms == T0 + 10_000 and wait.spans[0].end_ms == T0 + 10_000
    assert (cb.callback_id, cb.status, cb.due_ms) == ("abc", "STARTED", T0 + 3_601_000)
    # a callback's timeout (an hour away) does not squash the chart; a wait's end does
    assert tl.end_ms == T0 + 10_000


def test_an_ended_execution_closes_what_was_open_at_its_end() -> None:
    events = [ev("ExecutionStarted", 0, "exec"),
              ev("CallbackStarted", 1, "cb", CallbackId="x"),
              ev("ExecutionStopped", 5, "exec")]
    tl = build_timeline(events, now_ms=T0 + 99_000)
    (cb,) = tl.rows
    assert tl.execution_status == "STOPPED" and tl.end_ms == T0 + 5000
    assert cb.spans[0].end_ms == T0 + 5000 and cb.status == "STARTED"


def test_chained_invokes_keep_their_input_and_invocations_their_spans() -> None:
    events = [
        ev("ExecutionStarted", 0, "exec"),
        ev("ChainedInvokeStarted", 0, "inv", Input={"Payload": '{"a": 1}'}),
        ev("ChainedInvokeFailed", 2, "inv", Error={"Payload": {"ErrorMessage": "no"}}),
        ev("InvocationCompleted", 3, StartTimestamp=T0, EndTimestamp=T0 + 3000),
    ]
    tl = build_timeline(events, now_ms=T0 + 4000)
    (inv,) = tl.rows
    assert (inv.type, inv.status, inv.input) == ("ChainedInvoke", "FAILED", '{"a": 1}')
    assert [(s.start_ms, s.end_ms) for s in tl.invocations] == [(T0, T0 + 3000)]


def test_placement_is_in_percent_with_a_visible_minimum_width() -> None:
    events = [ev("ExecutionStarted", 0, "exec"), ev("StepStarted", 5, "a"),
              ev("StepSucceeded", 5, "a"), ev("ExecutionSucceeded", 10, "exec")]
    tl = build_timeline(events, now_ms=T0)
    assert tl.place(tl.rows[0].spans[0]) == (50.0, MIN_WIDTH)
    assert tl.offset(T0 + 2500) == 2.5


def test_hostile_histories_parent_cycles_and_deep_nesting_are_shown_not_lost() -> None:
    cycle = [ev("StepStarted", 0, "a", parent="b"), ev("StepStarted", 0, "b", parent="a"),
             ev("StepStarted", 0, "c", parent="c")]
    assert sorted(r.id for r in build_timeline(cycle, T0).rows) == ["a", "b", "c"]
    deep = [ev("ContextStarted", 0, f"c{i}", parent=f"c{i - 1}" if i else None)
            for i in range(5000)]
    rows = build_timeline(deep, T0).rows
    assert len(rows) == 5000 and rows[-1].depth == 4999


def test_timestamps_are_datetimes_or_epoch_ms() -> None:
    moment = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert to_ms(moment) == int(moment.timestamp() * 1000)
    assert to_ms(T0) == T0 and to_ms(None) is None
    assert build_timeline([], now_ms=T0).rows == ()
