"""Recordings from history, the replay's refusals, the seams and the culprit watch (no I/O)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.identifier import OperationIdentifier, OperationIdNamespace
from aws_durable_execution_sdk_python.state import ExecutionState

from durable_ext.errors import ConfigError
from durable_ext.testing import Recording, _seams, replay
from durable_ext.testing.culprits import CulpritWatch, stepping
from durable_ext.testing.recording import operations_from_history

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST/durable-execution/n/exec-1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(kind: str, op_id: str | None = None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"EventType": kind, "EventTimestamp": T0}
    if op_id is not None:
        event["Id"] = op_id
    event.update(fields)
    return event


def started(payload: str = "{}") -> dict[str, Any]:
    return ev("ExecutionStarted", "exec-1",
              ExecutionStartedDetails={"Input": {"Payload": payload, "Truncated": False}})


def test_a_step_waiting_to_retry_is_pending_with_its_next_attempt() -> None:
    ops = operations_from_history([
        started(),
        ev("StepStarted", "s1", Name="charge", SubType="Step"),
        ev("StepFailed", "s1", Name="charge", SubType="Step", StepFailedDetails={
            "Error": {"Payload": {"ErrorType": "E", "ErrorMessage": "m"}, "Truncated": False},
            "RetryDetails": {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 30}}),
    ])
    step = ops[1]
    assert step["Status"] == "PENDING"
    assert step["StepDetails"]["Attempt"] == 1
    assert step["StepDetails"]["NextAttemptTimestamp"] == int(T0.timestamp() * 1000) + 30_000
    assert step["StepDetails"]["Error"]["ErrorMessage"] == "m"


def test_contexts_replaying_their_children_are_told_from_their_payloads() -> None:
    summary = json.dumps({"type": "MapResult", "totalCount": 2, "completionReason":
                          "ALL_COMPLETED", "startedIndexes": [], "status": "SUCCEEDED"})
    ops = operations_from_history([
        started(),
        ev("ContextStarted", "c1", SubType="RunInChildContext"),
        ev("ContextSucceeded", "c1", SubType="RunInChildContext",
           ContextSucceededDetails={"Result": {"Payload": "", "Truncated": False}}),
        ev("ContextStarted", "c2", SubType="Map"),
        ev("ContextSucceeded", "c2", SubType="Map",
           ContextSucceededDetails={"Result": {"Payload": summary, "Truncated": False}}),
        ev("ContextStarted", "c3", SubType="RunInChildContext"),
        ev("ContextSucceeded", "c3", SubType="RunInChildContext",
           ContextSucceededDetails={"Result": {"Payload": '"small"', "Truncated": False}}),
    ])
    flags = {op["Id"]: op["ContextDetails"].get("ReplayChildren") for op in ops[1:]}
    assert flags == {"c1": True, "c2": True, "c3": False}
    told = operations_from_history(
        [started(), ev("ContextStarted", "c3"), ev("ContextSucceeded", "c3",
         ContextSucceededDetails={"Result": {"Payload": '"x"', "Truncated": False}})],
        replay_children=frozenset({"c3"}))
    assert told[1]["ContextDetails"]["ReplayChildren"] is True


def test_children_of_completed_contexts_are_hidden_like_the_service_does() -> None:
    rec = Recording.from_events([
        started(),
        ev("ContextStarted", "c1", Name="child"),
        ev("StepStarted", "s1", ParentId="c1"),
        ev("StepSucceeded", "s1", ParentId="c1", StepSucceededDetails={
            "Result": {"Payload": "1", "Truncated": False}}),
        ev("ContextSucceeded", "c1", ContextSucceededDetails={
            "Result": {"Payload": "1", "Truncated": False}}),
    ], description={"DurableExecutionArn": ARN, "Status": "RUNNING"})
    assert [op["Id"] for op in rec.operations] == ["exec-1", "c1", "s1"]
    assert [op["Id"] for op in rec.visible_operations()] == ["exec-1", "c1"]


def test_truncated_payloads_and_bad_files_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"truncated .* IncludeExecutionData=true"):
        Recording.from_events([ev("ExecutionStarted", "exec-1", ExecutionStartedDetails={
            "Input": {"Truncated": True}})])
    with pytest.raises(ConfigError, match="no ExecutionStarted event"):
        Recording.from_events([ev("StepStarted", "s1")])
    with pytest.raises(ConfigError, match="event #1 is not an event object"):
        Recording.from_events(["nope"])  # type: ignore[list-item]
    bad = tmp_path / "bad.json"
    for text, words in (("{", "history file .*bad.json"),
                        ('{"Events": 3}', "Events list"),
                        ('{"Format": "other", "Events": []}', "format 'other'"),
                        ('{"Events": [], "ReplayChildren": "c1"}', "ReplayChildren"),
                        ("[" * 100_000 + "]" * 100_000, "nested too deeply")):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=words):
            Recording.load(bad)
    with pytest.raises(ConfigError, match="No such file"):
        Recording.load(tmp_path / "missing.json")


def test_an_export_loads_back_to_the_same_operations(tmp_path: Path) -> None:
    rec = Recording.from_events([
        started('{"n": 1}'),
        ev("WaitStarted", "w1", WaitStartedDetails={"Duration": 5,
                                                   "ScheduledEndTimestamp": T0}),
    ], description={"DurableExecutionArn": ARN, "Status": "RUNNING",
                    "DurableExecutionName": "n"}, replay_children=frozenset())
    rec.dump(tmp_path / "h.json")
    back = Recording.load(tmp_path / "h.json")
    assert back.operations == rec.operations
    assert (back.arn, back.status, back.name, back.input_payload) == (
        ARN, "RUNNING", "n", '{"n": 1}')
    assert back.replay_children == frozenset()


RAN: list[str] = []


@durable_execution
def one_step(event: Any, ctx: Any) -> Any:
    def body(_: Any) -> str:
        RAN.append("body")
        return "done"

    return ctx.step(body, name="work")


def test_a_step_the_recording_has_not_finished_is_not_run() -> None:
    RAN.clear()
    first = OperationIdNamespace().create_id_for_step(1)  # the SDK's id of operation #1
    events = [started(), ev("StepStarted", first, Name="work", SubType="Step")]
    result = replay(events, one_step, check=False)
    assert RAN == []
    assert result.ok and result.status == "PENDING", result.report()
    assert "Step 'work' is unfinished in the recording" in result.stopped_at[0]


def test_only_decorated_handlers_are_replayed() -> None:
    with pytest.raises(ConfigError, match="not a @durable_execution handler"):
        replay([started()], lambda event, ctx: None)
    with pytest.raises(ConfigError, match="cannot replay int"):
        replay(7, one_step)
    with pytest.raises(ConfigError, match="is an execution ARN: pass plane="):
        replay(ARN, one_step)


def test_seams_install_once_and_keep_the_sdk_methods() -> None:
    _seams.install()
    first = (OperationIdentifier.validate_checkpoint, ExecutionState.create_checkpoint,
             ExecutionState.wrap_user_function)
    _seams.install()
    again = (OperationIdentifier.validate_checkpoint, ExecutionState.create_checkpoint,
             ExecutionState.wrap_user_function)
    assert first == again
    assert all(getattr(m, "__durable_ext_seam__", False) for m in again)
    assert all(m.__wrapped__.__module__.startswith("aws_durable_execution_sdk_python")
               for m in again)  # type: ignore[attr-defined]


def test_culprits_count_only_the_users_own_reads_outside_steps() -> None:
    watch = CulpritWatch()
    log = logging.getLogger("test-culprits")

    def handler_code() -> None:
        log.warning("logging stamps its records with the time")  # not the user's read
        with stepping():
            random.random()                                         # inside a step: fine
        time.time()                                                 # the culprit

    with watch.watching():
        t = threading.Thread(target=handler_code)
        t.start()
        t.join()
    found = [(c.what, c.location.function) for c in watch.culprits]
    assert found == [("time.time()", "handler_code")]


@durable_execution
def nested_v1(event: Any, ctx: Any) -> Any:
    def child(c: Any) -> Any:
        c.step(lambda _: 2, name="inner")
        return c.step(lambda _: 3, name="inner2")

    ctx.run_in_child_context(child, name="kid")
    ctx.map([1, 2], lambda c, x, i, xs: c.step(lambda _: x, name=f"m{i}"), name="fan")
    return 1


@durable_execution
def nested_v2(event: Any, ctx: Any) -> Any:
    def child(c: Any) -> Any:
        c.step(lambda _: 2, name="inner")
        return c.step(lambda _: 3, name="inner2")

    ctx.run_in_child_context(child, name="kid")
    ctx.map([1, 2], lambda c, x, i, xs: c.step(lambda _: x, name=f"item{i}"), name="fan")
    return 1


def test_a_divergence_inside_a_map_names_its_path_and_line() -> None:
    from durable_ext.runtime import Runtime, VirtualClock

    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("nested", nested_v1)
        arn = rt.start("nested", {})
        rt.run_until_idle()
        recorded = Recording.from_execution(rt, arn)
    # as if recorded while the map ran: its children are what the next invocation sees
    events = [e for e in recorded.events
              if e["EventType"] not in ("ExecutionSucceeded",)
              and not (e["EventType"] == "ContextSucceeded"
                       and e.get("SubType") in ("Map", "MapIteration"))]
    running = Recording.from_events(events, description={"DurableExecutionArn": arn,
                                                         "Status": "RUNNING"})
    assert replay(running, nested_v1).ok
    result = replay(running, nested_v2, check=False)
    d = result.divergence
    assert d is not None and d.kind == "mismatch", result.report()
    assert d.path == (
        "execution > Context (Map) 'fan' #2 > Context (MapIteration) 'map-item-0' #0 > #1")
    assert d.recorded is not None and d.recorded.name == "m0"
    assert d.current is not None and d.current.name == "item0"
    assert d.location is not None and d.location.function == "<lambda>"
    assert 'name=f"item{i}"' in d.location.code
    assert Path(d.location.file).name == "test_replay_recording.py"


SUBMITTED: list[str] = []


@durable_execution
def approval_flow(event: Any, ctx: Any) -> Any:
    def submit(callback_id: str, _ctx: Any) -> None:
        SUBMITTED.append(callback_id)  # tells the outside world: a side effect

    return ctx.wait_for_callback(submit, name="approval")


def test_an_unrecorded_submitter_never_runs() -> None:
    """Recorded between the callback's START and the submitter's: replay must stop there."""
    SUBMITTED.clear()
    ctx_id = OperationIdNamespace().create_id_for_step(1)
    cb_id = OperationIdNamespace(prefix=ctx_id).create_id_for_step(1)
    events = [
        started(),
        ev("ContextStarted", ctx_id, Name="approval", SubType="WaitForCallback"),
        ev("CallbackStarted", cb_id, Name="approval create callback id", SubType="Callback",
           ParentId=ctx_id, CallbackStartedDetails={"CallbackId": "cb-1"}),
    ]
    result = replay(events, approval_flow, check=False)
    assert SUBMITTED == []
    assert result.ok and result.status == "PENDING", result.report()
    assert "Step 'approval submitter' is beyond the recording" in result.stopped_at[0]
    assert "test_replay_recording.py" in result.stopped_at[0]  # the wait_for_callback line
