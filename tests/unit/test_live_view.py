"""The live view's state: timers, retries, callbacks, map progress and what is left out."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy
from aws_durable_execution_sdk_python.serdes import SerDesContext
from rich.console import Console

import durable_ext
from durable_ext.engine.history import op_event, payload_block, plain_event
from durable_ext.engine.views import render_event
from durable_ext.live_view import (
    SHORT_VALUE,
    CallbackView,
    HistoryFold,
    HistoryFollower,
    callback_command,
    countdown,
    duration,
    live_state,
    render_live,
    summary_lines,
)
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.readable import Decoder

T0 = 1_700_000_000_000  # epoch ms the executions below start at
ARN = "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST/durable-execution/o-1/e"


class History:
    """Events as GetDurableExecutionHistory renders them, built by the engine's builders."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def op(self, event_type: str, op_id: str, at: int, details: dict[str, Any] | None = None,
           *, name: str | None = None, sub: str | None = None,
           parent: str | None = None) -> History:
        op = {"Id": op_id, "Name": name, "SubType": sub, "ParentId": parent}
        self._add(op_event(event_type, op, T0 + at, details))
        return self

    def invocation(self, at: int) -> History:
        self._add(plain_event("InvocationCompleted", T0 + at, {}))
        return self

    def _add(self, stored: dict[str, Any]) -> None:
        self.events.append(render_event(len(self.events) + 1, stored, include_data=True))


def running(**more: Any) -> dict[str, Any]:
    return {"DurableExecutionArn": ARN, "DurableExecutionName": "o-1", "Status": "RUNNING",
            "StartTimestamp": dt.datetime.fromtimestamp(T0 / 1000, tz=dt.UTC), **more}


def error(kind: str, message: str) -> dict[str, Any]:
    return payload_block({"ErrorType": kind, "ErrorMessage": message})


def test_a_wait_is_the_next_timer_counting_down_until_it_fires() -> None:
    h = History().op("WaitStarted", "w", 0, {"Duration": 5, "ScheduledEndTimestamp": T0 + 5000},
                     name="nap", sub="Wait")
    early = live_state(running(), h.events, now_ms=T0 + 1500)
    later = live_state(running(), h.events, now_ms=T0 + 3500)
    [timer] = early.timers
    assert (timer.operation, timer.kind, timer.seconds_left) == ("nap", "wait", 3.5)
    assert later.timers[0].seconds_left == 1.5
    assert countdown(timer.seconds_left) == "in 4 s" and countdown(1.5) == "in 2 s"
    assert early.elapsed_seconds == 1.5 and later.elapsed_seconds == 3.5
    [op] = early.operations
    assert (op.name, op.kind, op.status, op.detail) == ("nap", "Wait", "WAITING", "5 s")
    # past due but not fired yet, it says so rather than counting below zero
    assert live_state(running(), h.events, now_ms=T0 + 9000).timers[0].seconds_left == 0
    h.op("WaitSucceeded", "w", 5000, {"Duration": 5}, name="nap", sub="Wait")
    done = live_state(running(), h.events, now_ms=T0 + 5100)
    assert done.timers == () and done.operations[0].status == "SUCCEEDED"


def test_a_failed_attempt_shows_its_retry_timer_error_and_attempts() -> None:
    h = History().op("StepStarted", "s", 0, name="pay", sub="Step")
    h.op("StepFailed", "s", 1000, {"Error": error("RuntimeError", "card declined"),
                                   "RetryDetails": {"CurrentAttempt": 1,
                                                    "NextAttemptDelaySeconds": 4}},
         name="pay", sub="Step").invocation(1100)
    state = live_state(running(), h.events, now_ms=T0 + 2000)
    [timer] = state.timers
    assert (timer.kind, timer.due_ms, timer.seconds_left) == ("retry", T0 + 5000, 3.0)
    [op] = state.operations
    assert (op.status, op.attempts, op.detail) == ("RETRYING", 1, "RuntimeError: card declined")
    h.op("StepStarted", "s", 5000, name="pay", sub="Step")
    h.op("StepSucceeded", "s", 5100, {"Result": payload_block('"paid"'),
                                      "RetryDetails": {"CurrentAttempt": 2}},
         name="pay", sub="Step").invocation(5200)
    state = live_state(running(), h.events, now_ms=T0 + 6000, decoder=Decoder())
    assert state.timers == ()
    [op] = state.operations
    assert (op.status, op.attempts, op.detail) == ("SUCCEEDED", 2, '"paid"')
    assert (state.retries, state.invocations, state.counts) == (1, 2, (("Step", 1),))


def test_a_condition_check_that_goes_on_is_a_next_check_timer() -> None:
    h = History().op("StepStarted", "c", 0, name="ready?", sub="WaitForCondition")
    h.op("StepSucceeded", "c", 100, {"Result": payload_block("1"),
                                     "RetryDetails": {"CurrentAttempt": 1,
                                                      "NextAttemptDelaySeconds": 10}},
         name="ready?", sub="WaitForCondition")
    [timer] = live_state(running(), h.events, now_ms=T0 + 100).timers
    assert (timer.kind, timer.seconds_left) == ("next check", 10.0)


def test_waiting_callbacks_are_addressed_by_name_when_it_finds_them_alone() -> None:
    h = History()
    for op_id, name, timeout in (("c1", "manager", None), ("c2", "manager", None),
                                 ("c3", "finance ok", 60)):
        details: dict[str, Any] = {"CallbackId": f"id-of-{op_id}" * 10}
        if timeout:
            details["Timeout"] = timeout
        h.op("CallbackStarted", op_id, 0, details, name=name, sub="Callback")
    state = live_state(running(), h.events, now_ms=T0 + 20_000)
    assert [(c.name, c.by_name) for c in state.callbacks] == [
        ("manager", False), ("manager", False), ("finance ok", True)]
    assert callback_command("o-1", state.callbacks[2], "file:///tmp/a b") == (
        "durable-ext callback succeed o-1 'finance ok' '<json>' --backend 'file:///tmp/a b'")
    assert callback_command("o-1", state.callbacks[0]) == (
        f"durable-ext callback succeed {'id-of-c1' * 10} '<json>'")
    [timer] = state.timers  # only the one with a timeout has a timer
    assert (timer.operation, timer.kind, timer.seconds_left) == ("finance ok",
                                                                 "callback timeout", 40.0)
    h.op("CallbackSucceeded", "c3", 21_000, {"Result": payload_block("yes")},
         name="finance ok", sub="Callback")
    after = live_state(running(), h.events, now_ms=T0 + 22_000)
    assert [c.name for c in after.callbacks] == ["manager", "manager"] and after.timers == ()
    # an ended execution waits for nothing, whatever its history left open
    stopped = live_state(running(Status="STOPPED"), h.events, now_ms=T0 + 22_000)
    assert stopped.callbacks == () and stopped.timers == () and stopped.ended


def test_map_progress_counts_its_own_children_done_and_failed() -> None:
    m = "map-1"
    h = History().op("ContextStarted", m, 0, name="lines", sub="Map")
    for i in range(3):
        h.op("ContextStarted", f"i{i}", 10, name=f"map-item-{i}", sub="MapIteration", parent=m)
    # a step inside an item is the item's child, not the map's
    h.op("StepStarted", "inner", 20, name="price", sub="Step", parent="i0")
    h.op("ContextSucceeded", "i0", 30, {"Result": payload_block("2")},
         name="map-item-0", sub="MapIteration", parent=m)
    h.op("ContextFailed", "i1", 40, {"Error": error("ValueError", "no stock")},
         name="map-item-1", sub="MapIteration", parent=m)
    state = live_state(running(), h.events, now_ms=T0 + 50)
    [p] = state.progress
    assert (p.name, p.kind, p.done, p.failed, p.started, p.finished) == (
        "lines", "Map", 2, 1, 3, False)
    rows = {op.name: op for op in state.operations}
    assert rows["lines"].detail == "2/3 done, 1 failed"
    assert rows["map-item-1"].detail == "ValueError: no stock"
    h.op("ContextSucceeded", "i2", 60, {"Result": payload_block("6")},
         name="map-item-2", sub="MapIteration", parent=m)
    h.op("ContextSucceeded", m, 70, {"Result": payload_block('{"t":"br"}')},
         name="lines", sub="Map")
    [p] = live_state(running(), h.events, now_ms=T0 + 80).progress
    assert (p.done, p.started, p.finished) == (3, 3, True)
    state = live_state(running(), h.events, now_ms=T0 + 80)
    assert {op.name: op.detail for op in state.operations}["lines"] == "3/3 done, 1 failed"
    assert dict(state.counts) == {"Map": 1, "MapIteration": 3, "Step": 1}


def test_only_the_most_recent_operations_are_listed_and_the_rest_counted() -> None:
    h = History()
    for i in range(30):
        h.op("StepStarted", f"s{i}", i, name=f"step-{i}", sub="Step")
    h.op("StepSucceeded", "s3", 100, {"Result": payload_block("3")}, name="step-3", sub="Step")
    state = live_state(running(), h.events, now_ms=T0 + 200, shown=5)
    assert state.hidden == 25
    # the latest activity decides: an old operation that moved is among the recent
    assert [op.name for op in state.operations] == [
        "step-26", "step-27", "step-28", "step-29", "step-3"]
    shown = _text(render_live(state))
    assert "… 25 earlier operations not shown" in shown and "step-25" not in shown
    everything = live_state(running(), h.events, now_ms=T0 + 200, shown=100)
    assert everything.hidden == 0 and len(everything.operations) == 30


def test_folding_in_pages_with_repeats_is_folding_all_at_once() -> None:
    h = History().op("StepStarted", "s", 0, name="a", sub="Step")
    h.op("StepFailed", "s", 10, {"Error": error("E", "x"), "RetryDetails": {
        "CurrentAttempt": 1, "NextAttemptDelaySeconds": 2}}, name="a", sub="Step")
    h.op("WaitStarted", "w", 20, {"Duration": 9, "ScheduledEndTimestamp": T0 + 9020},
         name="nap", sub="Wait").invocation(30)
    h.op("CallbackStarted", "c", 40, {"CallbackId": "cb"}, name="ok", sub="Callback")
    fold = HistoryFold()
    for start in range(0, len(h.events), 2):
        fold.add(h.events[max(0, start - 1): start + 2])  # each page repeats one event
    assert fold.last_event_id == len(h.events)
    assert fold.state(running(), now_ms=T0 + 50) == live_state(running(), h.events,
                                                               now_ms=T0 + 50)


def test_timestamps_as_iso_text_or_epoch_ms_read_the_same() -> None:
    h = History().op("WaitStarted", "w", 0, {"Duration": 5, "ScheduledEndTimestamp": T0 + 5000},
                     name="nap", sub="Wait")
    as_text = json.loads(json.dumps(h.events, default=lambda d: d.isoformat()))
    desc = running(StartTimestamp=T0)
    assert live_state(desc, as_text, now_ms=T0 + 1000).timers[0].seconds_left == 4.0
    ended = running(Status="SUCCEEDED", EndTimestamp=dt.datetime.fromtimestamp(
        (T0 + 7250) / 1000, tz=dt.UTC))
    state = live_state(ended, h.events, now_ms=T0 + 60_000)
    assert state.elapsed_seconds == 7.25 and state.timers == ()


def test_payloads_are_decoded_with_the_handlers_serdes_and_cut_short() -> None:
    ctx = SerDesContext("s", ARN)
    big = durable_ext.serdes("msgpack+zstd").serialize({"lines": ["x" * 20] * 20}, ctx)
    key = {"localkey": {"key": b"k" * 32}}
    # encryption binds a payload to its operation and execution
    secret = durable_ext.serdes("msgpack+localkey", options=key).serialize(
        [1, 2], SerDesContext("k", ARN))
    h = History()
    for op_id, payload in (("s", big), ("k", secret)):
        h.op("StepSucceeded", op_id, 0, {"Result": payload_block(payload)}, name=op_id,
             sub="Step")
    plain = {op.name: op.detail for op in
             live_state(running(), h.events, now_ms=T0, decoder=Decoder()).operations}
    assert plain["s"].startswith('{"lines": ["xxxxxxxxxxxxxxxxxxxx", ')
    assert len(plain["s"]) == SHORT_VALUE and plain["s"].endswith("…")
    assert re.fullmatch(r"\(…\+localkey, \d+ chars, not decoded\)", plain["k"])
    keyed = live_state(running(), h.events, now_ms=T0,
                       decoder=Decoder("msgpack+localkey", options=key))
    assert {op.name: op.detail for op in keyed.operations}["k"] == "[1, 2]"
    raw = live_state(running(), h.events, now_ms=T0)  # no decoder: as stored, cut
    assert {op.name: op.detail for op in raw.operations}["k"] == secret[:SHORT_VALUE - 1] + "…"


def test_the_summary_says_how_it_ended_and_how_to_go_on() -> None:
    h = History().op("StepStarted", "s", 0, name="a", sub="Step")
    h.op("StepFailed", "s", 10, {"Error": error("E", "x"), "RetryDetails": {
        "CurrentAttempt": 1, "NextAttemptDelaySeconds": 1}}, name="a", sub="Step")
    h.op("StepStarted", "s", 1010, name="a", sub="Step")
    h.op("StepSucceeded", "s", 1020, {"Result": payload_block("1")}, name="a", sub="Step")
    h.op("WaitStarted", "w", 1030, {"Duration": 600, "ScheduledEndTimestamp": T0 + 601_030},
         name="nap", sub="Wait").invocation(1040)
    state = live_state(running(), h.events, now_ms=T0 + 31_030)
    lines = summary_lines(state, resume="durable-ext run app:main --name o-1", timeout=30)
    assert lines[0] == ("execution o-1: RUNNING after 31.0 s, "
                        "still running when --timeout 30 s ran out")
    assert lines[1] == f"arn: {ARN}"
    assert lines[2] == "operations: 1 Step, 1 Wait · 1 retry, 1 invocation"
    assert "next timer: nap (wait) in 9 m 30 s" in lines
    assert lines[-1] == "run it on: durable-ext run app:main --name o-1"
    stopped = summary_lines(state, resume="durable-ext run app:main --name o-1",
                            interrupted=True)
    assert stopped[0].endswith(", still running when the command was interrupted")
    assert stopped[-1] == lines[-1]
    # not stopped early: it waits for outside input, and the same run would wait again
    assert not any("run it on" in x for x in summary_lines(state, resume="x"))
    done = live_state(running(Status="SUCCEEDED", Result='{"ok": true}',
                             EndTimestamp=T0 + 2000), h.events, now_ms=T0 + 9000,
                      decoder=Decoder())
    lines = summary_lines(done, resume="durable-ext run app:main --name o-1", timeout=30)
    assert lines[0] == "execution o-1: SUCCEEDED after 2.0 s"
    assert 'result: {"ok": true}' in lines and not any("run it on" in x for x in lines)
    failed = live_state(running(Status="FAILED", Error={"ErrorType": "ValueError",
                                                        "ErrorMessage": "bad\x1b[2Jinput"}),
                        h.events, now_ms=T0 + 9000)
    assert "error: ValueError: bad\\x1b[2Jinput" in summary_lines(failed)
    paused = live_state(running(Status="PAUSED"), h.events, now_ms=T0 + 9000)
    assert summary_lines(paused, backend="memory://")[-1] == (
        "resume: durable-ext resume o-1 --backend memory://")


def test_the_frame_shows_the_countdown_callbacks_and_progress_within_its_lines() -> None:
    h = History().op("WaitStarted", "w", 0, {"Duration": 8, "ScheduledEndTimestamp": T0 + 8000},
                     name="cool-down", sub="Wait")
    h.op("ContextStarted", "m", 0, name="lines", sub="Map")
    h.op("ContextStarted", "i0", 0, name="map-item-0", sub="MapIteration", parent="m")
    h.op("CallbackStarted", "c", 0, {"CallbackId": "x" * 300}, name="approval", sub="Callback")
    h.op("StepStarted", "odd", 0, name="tab\tand [bold]markup[/bold]", sub="Step")
    state = live_state(running(), h.events, now_ms=T0 + 2500)
    text = _text(render_live(state, backend="memory://"))
    assert "o-1  RUNNING  elapsed 2.5 s" in text
    assert "next timer  cool-down (wait)  in 6 s" in text
    assert "durable-ext callback succeed o-1 approval '<json>' --backend memory://" in text
    assert "map  lines  0/1 done" in text
    assert "tab\\tand [bold]markup[/bold]" in text  # shown, not obeyed
    assert "x" * 300 not in text  # the long callback id is not needed by name


def test_durations_read_as_people_read_them() -> None:
    assert [countdown(s) for s in (0, 0.2, 59, 61, 3725)] == [
        "due", "in 1 s", "in 59 s", "in 1 m 01 s", "in 1 h 02 m"]
    assert [duration(s) for s in (0.04, 59.94, 187, 7260)] == [
        "0.0 s", "59.9 s", "3 m 07 s", "2 h 01 m"]


def _text(renderable: Any) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


# ---------------------------------------------------------------- a real history


def _flaky(counter: dict[str, int]) -> Any:
    def attempt(_: StepContext) -> int:
        counter["n"] += 1
        if counter["n"] < 3:
            raise RuntimeError("not yet")
        return 7
    return attempt


ATTEMPTS = {"n": 0}


@durable_execution
def workflow(event: Any, ctx: DurableContext) -> Any:
    retry = create_retry_strategy(RetryStrategyConfig(max_attempts=5,
                                                      initial_delay=Duration.from_seconds(1)))
    value = ctx.step(_flaky(ATTEMPTS), name="flaky", config=StepConfig(retry_strategy=retry))
    doubled = ctx.map([1, 2, 3], lambda c, x, i, items: x * 2, name="doubles")
    approval = ctx.wait_for_callback(lambda callback_id, c: None, name="approve")
    return {"value": value, "doubled": doubled.get_results(), "approval": approval}


@pytest.fixture
def runtime() -> Any:
    with Runtime(backend="memory://", clock=VirtualClock()) as rt:
        rt.register("wf", workflow)
        yield rt


def test_a_real_history_of_retries_a_map_and_a_callback(runtime: Runtime) -> None:
    ATTEMPTS["n"] = 0
    arn = runtime.start("wf", None, name="r-1")
    runtime.run_until_idle()
    state = live_state(runtime.describe(arn), runtime.history(arn)["Events"],
                       now_ms=runtime.clock.now_ms(), decoder=Decoder())
    rows = {op.name: op for op in state.operations}
    assert (rows["flaky"].status, rows["flaky"].attempts, rows["flaky"].detail) == (
        "SUCCEEDED", 3, "7")
    [p] = state.progress
    assert (p.name, p.done, p.started, p.finished) == ("doubles", 3, 3, True)
    [cb] = state.callbacks
    assert cb.by_name and cb.name is not None and cb.name.startswith("approve")
    assert state.retries == 2 and state.status == "RUNNING"
    # the command shown completes it
    runtime.send_callback_success(
        next(c.callback_id for c in state.callbacks if c.name == cb.name), '"yes"')
    runtime.run_until_idle()
    state = live_state(runtime.describe(arn), runtime.history(arn)["Events"],
                       now_ms=runtime.clock.now_ms(), decoder=Decoder())
    assert state.status == "SUCCEEDED" and state.callbacks == ()
    assert state.result is not None and json.loads(state.result)["doubled"] == [2, 4, 6]


def test_the_follower_reads_each_page_once_and_then_only_the_last(runtime: Runtime) -> None:
    ATTEMPTS["n"] = 0
    arn = runtime.start("wf", None, name="r-2")
    runtime.run_until_idle()
    total = len(runtime.history(arn)["Events"])
    follower = HistoryFollower(runtime, arn, page_size=4)
    first = follower.poll()
    assert [e["EventId"] for e in first] == list(range(1, total + 1))
    again = follower.poll()  # nothing new: the last page only
    assert 0 < len(again) <= 4 and again[-1]["EventId"] == total
    fold = HistoryFold().add(first).add(again)
    assert fold.last_event_id == total


def test_an_execution_not_yet_past_its_start_has_nothing_to_list() -> None:
    state = live_state(running(), [], now_ms=T0 + 100)
    assert (state.operations, state.hidden, state.timers, state.callbacks) == ((), 0, (), ())
    assert summary_lines(state)[2] == "operations: none · 0 invocations"
    view = CallbackView(name="approval", callback_id="abc", by_name=True)
    assert callback_command("o 1", view) == "durable-ext callback succeed 'o 1' approval '<json>'"
