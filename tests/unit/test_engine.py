"""Engine semantics: validation table, tokens, transitions, deltas, history, control plane."""

from __future__ import annotations

from typing import Any

import pytest

from durable_ext.backends.memory import MemoryStore
from durable_ext.engine import Engine, InvocationInput, ParentLink, normalize_input
from durable_ext.errors import (
    ExecutionAlreadyStartedError,
    InvalidCheckpointTokenError,
    InvalidParameterValueError,
    NotFoundError,
)


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> Engine:
    known = {"echo": "durable", "plain": "plain"}
    return Engine(MemoryStore(), now_ms=clock, resolve_function=known.get)


def begin(
    engine: Engine, name: str | None = None, payload: str = "{}"
) -> tuple[str, InvocationInput]:
    arn, _ = engine.start("fn", payload, name=name)
    inv = engine.begin_invocation(arn)
    assert inv is not None
    return arn, inv


def step(op: str, action: str, **kw: Any) -> dict[str, Any]:
    return {"Id": op, "Type": "STEP", "Action": action, "SubType": "Step", **kw}


def events(engine: Engine, arn: str) -> list[str]:
    return [e["EventType"] for e in engine.history(arn)["Events"]]


# ---------------------------------------------------------------- validation table

CASES: list[tuple[list[dict[str, Any]], list[dict[str, Any]], str]] = [
    (
        [],
        [
            {"Id": "e1", "Type": "EXECUTION", "Action": "SUCCEED"},
            {"Id": "e2", "Type": "EXECUTION", "Action": "SUCCEED"},
        ],
        "Cannot checkpoint multiple EXECUTION updates.",
    ),
    (
        [],
        [{"Id": "e1", "Type": "EXECUTION", "Action": "SUCCEED"}, step("s", "START")],
        "EXECUTION checkpoint must be the last update.",
    ),
    (
        [],
        [
            {"Id": "w", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 1}},
            {"Id": "w", "Type": "WAIT", "Action": "CANCEL"},
        ],
        "Cannot checkpoint multiple operations with the same ID.",
    ),
    (
        [],
        [step("s", "SUCCEED", Payload="1"), step("s", "SUCCEED", Payload="1")],
        "Cannot checkpoint multiple operations with the same ID.",
    ),
    ([], [step("s", "START", ParentId="nope")], "Invalid parent operation id."),
    ([step("p", "START")], [step("s", "START", ParentId="p")], "Invalid parent operation id."),
    (
        [step("s", "START")],
        [{"Id": "s", "Type": "WAIT", "Action": "START"}],
        "Inconsistent operation type.",
    ),
    (
        [step("s", "START")],
        [step("s", "SUCCEED", SubType="Other")],
        "Inconsistent operation subtype.",
    ),
    (
        [step("s", "START", Name="a")],
        [step("s", "SUCCEED", Name="b")],
        "Inconsistent operation name.",
    ),
    (
        [
            {"Id": "c", "Type": "CONTEXT", "Action": "START"},
            {"Id": "c2", "Type": "CONTEXT", "Action": "START"},
            step("s", "START", ParentId="c"),
        ],
        [step("s", "SUCCEED", ParentId="c2")],
        "Inconsistent parent operation id.",
    ),
    ([], [step("s", "CANCEL")], "Invalid action for the given operation type."),
    ([], [{"Id": "e", "Type": "EXECUTION", "Action": "START"}], "Invalid EXECUTION action."),
    ([step("s", "START")], [step("s", "START")], "Invalid current STEP state to start."),
    (
        [step("s", "SUCCEED", Payload="1")],
        [step("s", "SUCCEED", Payload="1")],
        "Invalid current STEP state to close.",
    ),
    ([], [step("s", "FAIL", Payload="x")], "Cannot provide a Payload for FAIL action."),
    (
        [],
        [step("s", "SUCCEED", Error={"ErrorMessage": "x"})],
        "Cannot provide an Error for SUCCEED action.",
    ),
    (
        [],
        [step("s", "RETRY", Error={"ErrorMessage": "x"})],
        "Invalid StepOptions for the given action.",
    ),
    (
        [],
        [step("s", "RETRY", StepOptions={}, Error={"ErrorMessage": "x"})],
        "Invalid StepOptions for the given action.",
    ),
    (
        [],
        [
            step(
                "s",
                "RETRY",
                StepOptions={"NextAttemptDelaySeconds": 1},
                Error={"ErrorMessage": "x"},
                Payload="1",
            )
        ],
        "Cannot provide both error and payload to RETRY a STEP.",
    ),
    (
        [{"Id": "c", "Type": "CONTEXT", "Action": "START"}],
        [{"Id": "c", "Type": "CONTEXT", "Action": "START"}],
        "Cannot start a CONTEXT that already exist.",
    ),
    (
        [
            {"Id": "c", "Type": "CONTEXT", "Action": "START"},
            {"Id": "c", "Type": "CONTEXT", "Action": "SUCCEED"},
        ],
        [{"Id": "c", "Type": "CONTEXT", "Action": "FAIL"}],
        "Invalid current CONTEXT state to close.",
    ),
    (
        [{"Id": "w", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 9}}],
        [{"Id": "w", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 9}}],
        "Cannot start a WAIT that already exist.",
    ),
    (
        [],
        [{"Id": "w", "Type": "WAIT", "Action": "CANCEL"}],
        "Cannot cancel a WAIT that does not exist or has already completed.",
    ),
    (
        [{"Id": "cb", "Type": "CALLBACK", "Action": "START"}],
        [{"Id": "cb", "Type": "CALLBACK", "Action": "START"}],
        "Cannot start a CALLBACK that already exist.",
    ),
    (
        [],
        [{"Id": "cb", "Type": "CALLBACK", "Action": "SUCCEED"}],
        "Invalid action for the given operation type.",
    ),
    (
        [],
        [{"Id": "i", "Type": "CHAINED_INVOKE", "Action": "START"}],
        "ChainedInvokeOptions are required to start a CHAINED_INVOKE.",
    ),
    (
        [],
        [
            {
                "Id": "i",
                "Type": "CHAINED_INVOKE",
                "Action": "START",
                "ChainedInvokeOptions": {"FunctionName": "echo", "TenantId": "bad\u0000"},
            }
        ],
        "Invalid TenantId",
    ),
    (
        [],
        [step("s", "START", Error={"ErrorMessage": "x" * (1024 * 1024 + 1)})],
        "Error object size must be less than 1048576 bytes.",
    ),
]


@pytest.mark.parametrize(("setup", "batch", "message"), CASES)
def test_validation_table(
    engine: Engine, setup: list[dict[str, Any]], batch: list[dict[str, Any]], message: str
) -> None:
    arn, inv = begin(engine)
    token = engine.checkpoint(arn, inv.token, setup).token if setup else inv.token
    assert token is not None
    before = engine.store.header(arn)
    with pytest.raises(InvalidParameterValueError) as err:
        engine.checkpoint(arn, token, batch)
    assert str(err.value).startswith(message)
    assert not isinstance(err.value, InvalidCheckpointTokenError)
    # Nothing was applied and the token still works.
    assert engine.store.header(arn) == before
    assert engine.checkpoint(arn, token, []).token is not None


def test_start_then_succeed_in_one_batch_is_allowed(engine: Engine) -> None:
    arn, inv = begin(engine)
    res = engine.checkpoint(arn, inv.token, [step("s", "START"), step("s", "SUCCEED", Payload="7")])
    [op] = res.operations
    assert op["Status"] == "SUCCEEDED"
    assert op["StepDetails"] == {"Attempt": 1, "Result": "7"}


# ---------------------------------------------------------------- tokens


def test_every_checkpoint_bumps_the_token_and_stale_ones_fail(engine: Engine) -> None:
    arn, inv = begin(engine)
    t1 = engine.checkpoint(arn, inv.token, []).token
    assert t1 and t1 != inv.token
    with pytest.raises(InvalidCheckpointTokenError, match="Invalid checkpoint token"):
        engine.checkpoint(arn, inv.token, [])
    t2 = engine.checkpoint(arn, t1, [step("s", "START")]).token
    assert t2 and t2 != t1


def test_new_invocation_fences_the_old_one(engine: Engine) -> None:
    arn, inv = begin(engine)
    engine.abandon_invocation(arn, inv.invocation_id, "lost")
    inv2 = engine.begin_invocation(arn)
    assert inv2 is not None
    with pytest.raises(InvalidCheckpointTokenError):
        engine.checkpoint(arn, inv.token, [])
    assert engine.checkpoint(arn, inv2.token, []).token


def test_garbage_token_and_unknown_arn(engine: Engine) -> None:
    arn, _ = begin(engine)
    with pytest.raises(InvalidCheckpointTokenError):
        engine.checkpoint(arn, "not-a-token!", [])
    with pytest.raises(NotFoundError):
        engine.checkpoint(arn.replace("fn:", "other:"), "x", [])


def test_terminal_execution_checkpoint_has_no_token(engine: Engine) -> None:
    arn, inv = begin(engine)
    res = engine.checkpoint(
        arn,
        inv.token,
        [
            {
                "Id": "execution-result-1",
                "Type": "EXECUTION",
                "Action": "SUCCEED",
                "Payload": '"big"',
            }
        ],
    )
    assert res.token is None
    engine.finish_invocation(arn, inv.invocation_id, {"Status": "SUCCEEDED", "Result": ""})
    d = engine.describe(arn)
    assert d["Status"] == "SUCCEEDED"
    assert d["Result"] == '"big"'
    assert events(engine, arn)[-2:] == ["InvocationCompleted", "ExecutionSucceeded"]


def test_get_state_needs_the_current_token_and_pages(engine: Engine) -> None:
    arn, inv = begin(engine)
    t = engine.checkpoint(
        arn, inv.token, [step(f"s{i}", "SUCCEED", Payload="1") for i in range(5)]
    ).token
    assert t
    ops, marker = engine.get_state(arn, t, "", max_items=2)
    ids = [o["Id"] for o in ops]
    while marker:
        more, marker = engine.get_state(arn, t, marker, max_items=2)
        ids += [o["Id"] for o in more]
    assert ids[1:] == [f"s{i}" for i in range(5)]
    _, marker = engine.get_state(arn, t, "", max_items=2)
    t2 = engine.checkpoint(arn, t, []).token
    assert t2
    with pytest.raises(InvalidParameterValueError, match="Invalid marker"):
        engine.get_state(arn, t2, marker or "")
    with pytest.raises(InvalidCheckpointTokenError):
        engine.get_state(arn, t, "")


# ---------------------------------------------------------------- transitions and attempts


def test_retry_attempt_arithmetic_and_lazy_ready(engine: Engine, clock: Clock) -> None:
    arn, inv = begin(engine)
    t = engine.checkpoint(arn, inv.token, [step("s", "START")]).token
    res = engine.checkpoint(
        arn,
        t,
        [
            step(
                "s",
                "RETRY",
                Error={"ErrorMessage": "x"},
                StepOptions={"NextAttemptDelaySeconds": 3},
            )
        ],
    )
    [op] = res.operations
    assert op["Status"] == "PENDING"
    assert op["StepDetails"]["Attempt"] == 1
    assert op["StepDetails"]["NextAttemptTimestamp"] == clock.ms + 3000
    clock.ms += 3000
    res2 = engine.checkpoint(arn, res.token or "", [])  # due retries become READY lazily
    [ready] = res2.operations
    assert ready["Status"] == "READY"
    assert "NextAttemptTimestamp" not in ready["StepDetails"]
    t3 = engine.checkpoint(arn, res2.token or "", [step("s", "START")]).token
    res4 = engine.checkpoint(arn, t3 or "", [step("s", "SUCCEED", Payload="1")])
    assert res4.operations[-1]["StepDetails"]["Attempt"] == 2
    hist = engine.history(arn)["Events"]
    failed = next(e for e in hist if e["EventType"] == "StepFailed")
    assert failed["StepFailedDetails"]["RetryDetails"] == {
        "CurrentAttempt": 1,
        "NextAttemptDelaySeconds": 3,
    }
    ok = next(e for e in hist if e["EventType"] == "StepSucceeded")
    assert ok["StepSucceededDetails"]["RetryDetails"] == {"CurrentAttempt": 2}
    assert ok["StepSucceededDetails"]["Result"] == {"Payload": "1", "Truncated": False}


def test_wait_start_complete_and_history(engine: Engine, clock: Clock) -> None:
    arn, inv = begin(engine)
    res = engine.checkpoint(
        arn,
        inv.token,
        [
            {
                "Id": "w",
                "Type": "WAIT",
                "Action": "START",
                "SubType": "Wait",
                "Name": "nap",
                "WaitOptions": {"WaitSeconds": 10},
            }
        ],
    )
    assert res.operations[0]["WaitDetails"]["ScheduledEndTimestamp"] == clock.ms + 10_000
    engine.finish_invocation(arn, inv.invocation_id, {"Status": "PENDING"})
    [due] = engine.store.due(None, arn=arn, kinds=["wake"])
    assert due.due_ms == clock.ms + 10_000
    clock.ms += 10_000
    engine.fire(due)
    inv2 = engine.begin_invocation(arn)
    assert inv2 is not None and inv2.updated_ids == ["w"]
    assert [o["Status"] for o in inv2.operations if o["Id"] == "w"] == ["SUCCEEDED"]
    hist = engine.history(arn)["Events"]
    started = next(e for e in hist if e["EventType"] == "WaitStarted")
    assert started["WaitStartedDetails"]["Duration"] == 10
    assert started["Name"] == "nap" and started["SubType"] == "Wait"
    assert next(e for e in hist if e["EventType"] == "WaitSucceeded")["WaitSucceededDetails"] == {
        "Duration": 10
    }


def test_identity_fields_are_merged_not_overwritten(engine: Engine) -> None:
    arn, inv = begin(engine)
    t = engine.checkpoint(
        arn,
        inv.token,
        [
            {"Id": "c", "Type": "CONTEXT", "Action": "START"},
            step("s", "START", Name="n", ParentId="c"),
        ],
    ).token
    res = engine.checkpoint(
        arn, t or "", [{"Id": "s", "Type": "STEP", "Action": "SUCCEED", "Payload": "1"}]
    )
    op = res.operations[-1]
    assert (op["Name"], op["ParentId"], op["SubType"]) == ("n", "c", "Step")


def test_children_of_completed_context_are_hidden_unless_replay_children(engine: Engine) -> None:
    arn, inv = begin(engine)
    batch = [
        {"Id": "c1", "Type": "CONTEXT", "Action": "START"},
        step("a", "SUCCEED", ParentId="c1", Payload="1"),
        {"Id": "c1", "Type": "CONTEXT", "Action": "SUCCEED", "Payload": "1"},
        {"Id": "c2", "Type": "CONTEXT", "Action": "START"},
        {"Id": "c3", "Type": "CONTEXT", "Action": "START", "ParentId": "c2"},
        step("b", "SUCCEED", ParentId="c3", Payload="2"),
        {
            "Id": "c2",
            "Type": "CONTEXT",
            "Action": "SUCCEED",
            "Payload": "2",
            "ContextOptions": {"ReplayChildren": True},
        },
        {"Id": "c4", "Type": "CONTEXT", "Action": "START"},
        {"Id": "c5", "Type": "CONTEXT", "Action": "START", "ParentId": "c4"},
        step("c", "SUCCEED", ParentId="c5", Payload="3"),
        {"Id": "c4", "Type": "CONTEXT", "Action": "FAIL", "Error": {"ErrorMessage": "x"}},
    ]
    res = engine.checkpoint(arn, inv.token, batch)
    assert [o["Id"] for o in res.operations] == ["c1", "c2", "c3", "b", "c4"]
    engine.finish_invocation(arn, inv.invocation_id, {"Status": "PENDING"})


def test_callback_success_failure_heartbeat_and_timeouts(engine: Engine, clock: Clock) -> None:
    arn, inv = begin(engine)
    res = engine.checkpoint(
        arn,
        inv.token,
        [
            {
                "Id": "k1",
                "Type": "CALLBACK",
                "Action": "START",
                "Name": "a",
                "CallbackOptions": {"TimeoutSeconds": 100, "HeartbeatTimeoutSeconds": 10},
            },
            {"Id": "k2", "Type": "CALLBACK", "Action": "START", "CallbackOptions": {}},
            {
                "Id": "k3",
                "Type": "CALLBACK",
                "Action": "START",
                "CallbackOptions": {"TimeoutSeconds": 5},
            },
        ],
    )
    ids = {o["Id"]: o["CallbackDetails"]["CallbackId"] for o in res.operations}
    engine.finish_invocation(arn, inv.invocation_id, {"Status": "PENDING"})
    clock.ms += 8000
    engine.callback_heartbeat(ids["k1"])
    engine.callback_success(ids["k2"], b'"yes"')
    with pytest.raises(NotFoundError):
        engine.callback_success(ids["k2"], b'"again"')
    with pytest.raises(NotFoundError):
        engine.callback_success("garbage", None)
    for d in engine.store.due(clock.ms, arn=arn):
        if d.kind.startswith("callback"):
            engine.fire(d)
    clock.ms += 9000  # heartbeat was pushed to +18 s, so it is not due yet at +17 s
    for d in engine.store.due(clock.ms, arn=arn):
        if d.kind.startswith("callback"):
            engine.fire(d)
    hist = engine.history(arn)["Events"]
    started = [e for e in hist if e["EventType"] == "CallbackStarted"]
    assert started[0]["CallbackStartedDetails"]["Timeout"] == 100
    assert started[0]["CallbackStartedDetails"]["HeartbeatTimeout"] == 10
    assert "Timeout" not in started[1]["CallbackStartedDetails"]
    timed = [e for e in hist if e["EventType"] == "CallbackTimedOut"]
    assert [e["Id"] for e in timed] == ["k3"]
    assert (
        timed[0]["CallbackTimedOutDetails"]["Error"]["Payload"]["ErrorType"] == "Callback.Timeout"
    )
    ok = next(e for e in hist if e["EventType"] == "CallbackSucceeded")
    assert ok["CallbackSucceededDetails"]["Result"]["Payload"] == '"yes"'
    clock.ms += 2000
    [hb] = [d for d in engine.store.due(clock.ms, arn=arn) if d.kind == "callback-heartbeat"]
    engine.fire(hb)
    last = engine.history(arn)["Events"][-1]
    assert last["CallbackTimedOutDetails"]["Error"]["Payload"]["ErrorType"] == "Callback.Heartbeat"


def test_chained_invoke_unknown_target_fails_at_checkpoint(engine: Engine) -> None:
    arn, inv = begin(engine)
    res = engine.checkpoint(
        arn,
        inv.token,
        [
            {
                "Id": "i",
                "Type": "CHAINED_INVOKE",
                "Action": "START",
                "Payload": "{}",
                "ChainedInvokeOptions": {"FunctionName": "ghost"},
            }
        ],
    )
    assert res.operations[0]["Status"] == "FAILED"
    assert events(engine, arn)[-2:] == ["ChainedInvokeStarted", "ChainedInvokeFailed"]


def test_chained_invoke_dispatch_and_completion(engine: Engine) -> None:
    arn, inv = begin(engine)
    engine.checkpoint(
        arn,
        inv.token,
        [
            {
                "Id": "i",
                "Type": "CHAINED_INVOKE",
                "Action": "START",
                "Payload": '{"x":1}',
                "ChainedInvokeOptions": {"FunctionName": "echo", "TenantId": "t-1"},
            }
        ],
    )
    engine.finish_invocation(arn, inv.invocation_id, {"Status": "PENDING"})
    [dispatch] = engine.store.due(None, arn=arn, kinds=["dispatch"])
    assert dispatch.data["function"] == "echo"
    started = engine.history(arn)["Events"][-2]
    details = started["ChainedInvokeStartedDetails"]
    assert details["TenantId"] == "t-1" and details["ExecutedVersion"] == "$LATEST"
    assert details["DurableExecutionArn"] == dispatch.data["child_arn"]
    engine.complete_chained(arn, "i", "SUCCEEDED", '{"x":1}', None)
    assert engine.store.due(None, arn=arn, kinds=["dispatch"]) == []
    assert events(engine, arn)[-1] == "ChainedInvokeSucceeded"
    assert [d.kind for d in engine.store.due(None, arn=arn)] == ["invoke", "execution-timeout"]


# ---------------------------------------------------------------- invocations and control plane


def test_invocation_completed_for_every_invocation_including_crashes(engine: Engine) -> None:
    arn, inv = begin(engine)
    engine.checkpoint(arn, inv.token, [step("s", "START")])
    engine.abandon_invocation(arn, inv.invocation_id, "killed")
    hist = engine.history(arn)["Events"]
    crash = hist[-1]
    assert crash["EventType"] == "InvocationCompleted"
    err = crash["InvocationCompletedDetails"]["Error"]["Payload"]
    assert err["ErrorType"] == "Runtime.ExitError"
    assert set(crash["InvocationCompletedDetails"]) >= {
        "StartTimestamp",
        "EndTimestamp",
        "RequestId",
    }
    inv2 = engine.begin_invocation(arn)
    assert inv2 is not None
    engine.finish_invocation(
        arn, inv2.invocation_id, {"Status": "FAILED", "Error": {"ErrorType": "E"}}
    )
    assert events(engine, arn)[-2:] == ["InvocationCompleted", "ExecutionFailed"]
    assert engine.describe(arn)["Error"] == {"ErrorType": "E"}


def test_repeated_crashes_fail_the_execution(clock: Clock) -> None:
    eng = Engine(MemoryStore(), now_ms=clock, max_invocation_failures=3)
    arn, _ = eng.start("fn", "{}")
    for _ in range(3):
        inv = eng.begin_invocation(arn)
        assert inv is not None
        eng.abandon_invocation(arn, inv.invocation_id, "boom")
    assert eng.describe(arn)["Status"] == "FAILED"
    assert eng.begin_invocation(arn) is None


def test_pending_without_anything_pending_is_invalid(engine: Engine) -> None:
    arn, _ = engine.start("fn", "{}")
    for _ in range(4):
        inv = engine.begin_invocation(arn)
        assert inv is not None
        engine.finish_invocation(arn, inv.invocation_id, {"Status": "PENDING"})
    d = engine.describe(arn)
    assert d["Status"] == "FAILED"
    assert d["Error"]["ErrorType"] == "InvalidParameterValueException"


def test_succeeded_with_error_is_invalid(engine: Engine) -> None:
    arn, inv = begin(engine)
    engine.finish_invocation(
        arn, inv.invocation_id, {"Status": "SUCCEEDED", "Error": {"ErrorMessage": "x"}}
    )
    assert engine.describe(arn)["Status"] == "FAILED"


def test_name_idempotency(engine: Engine) -> None:
    a, created = engine.start("fn", '{"a": 1}', name="order-1")
    b, again = engine.start("fn", '{"a": 1}', name="order-1")
    assert created and not again and a == b
    with pytest.raises(ExecutionAlreadyStartedError):
        engine.start("fn", '{"a": 2}', name="order-1")
    with pytest.raises(InvalidParameterValueError):
        engine.start("fn", "{}", name="bad name")


def test_execution_started_carries_the_timeout(engine: Engine) -> None:
    arn, _ = engine.start("fn", "{}")
    started = engine.history(arn)["Events"][0]
    assert started["ExecutionStartedDetails"]["ExecutionTimeout"] == 31_622_400
    arn2, _ = engine.start("fn", "{}", execution_timeout=90)
    assert engine.history(arn2)["Events"][0]["ExecutionStartedDetails"]["ExecutionTimeout"] == 90
    with pytest.raises(InvalidParameterValueError, match="ExecutionTimeout"):
        engine.start("fn", "{}", execution_timeout=31_622_401)


def test_arn_last_segment_is_execution_op_id(engine: Engine) -> None:
    arn, inv = begin(engine, name="n1")
    [exec_op] = inv.operations
    assert exec_op["Type"] == "EXECUTION"
    assert arn.rsplit("/", 1)[-1] == exec_op["Id"]
    assert exec_op["ExecutionDetails"]["InputPayload"] == "{}"
    assert "/durable-execution/n1/" in arn


def test_stop_is_idempotent_and_records_the_error(engine: Engine) -> None:
    arn, inv = begin(engine)
    out = engine.stop(arn, {"ErrorType": "Manual", "ErrorMessage": "halt"})
    again = engine.stop(arn)
    assert out["StopTimestamp"] == again["StopTimestamp"]
    d = engine.describe(arn)
    assert d["Status"] == "STOPPED" and d["Error"] == {
        "ErrorType": "Manual",
        "ErrorMessage": "halt",
    }
    with pytest.raises(InvalidCheckpointTokenError):
        engine.checkpoint(arn, inv.token, [])
    engine.finish_invocation(arn, inv.invocation_id, {"Status": "SUCCEEDED", "Result": "1"})
    assert engine.describe(arn)["Status"] == "STOPPED"
    assert events(engine, arn)[-2:] == ["ExecutionStopped", "InvocationCompleted"]


def test_execution_timeout(clock: Clock) -> None:
    eng = Engine(MemoryStore(), now_ms=clock)
    arn, _ = eng.start("fn", "{}", execution_timeout=30)
    [due] = eng.store.due(None, arn=arn, kinds=["execution-timeout"])
    clock.ms = due.due_ms
    eng.fire(due)
    d = eng.describe(arn)
    assert d["Status"] == "TIMED_OUT"
    assert d["Error"]["ErrorMessage"] == "Execution timed out after 30 seconds."
    assert eng.store.due(None, arn=arn) == []


def test_history_paging_and_execution_data(engine: Engine) -> None:
    arn, inv = begin(engine)
    engine.checkpoint(arn, inv.token, [step(f"s{i}", "SUCCEED", Payload="1") for i in range(6)])
    page1 = engine.history(arn, max_items=4)
    assert [e["EventId"] for e in page1["Events"]] == [1, 2, 3, 4]
    page2 = engine.history(arn, max_items=4, marker=page1["NextMarker"])
    assert [e["EventId"] for e in page2["Events"]] == [5, 6, 7]
    assert "NextMarker" not in page2
    rev = engine.history(arn, max_items=3, reverse_order=True)
    assert [e["EventId"] for e in rev["Events"]] == [7, 6, 5]
    rev2 = engine.history(arn, max_items=3, reverse_order=True, marker=rev["NextMarker"])
    assert [e["EventId"] for e in rev2["Events"]] == [4, 3, 2]
    slim = engine.history(arn, include_execution_data=False)["Events"][1]
    assert slim["StepSucceededDetails"]["Result"] == {"Truncated": True}


def test_list_executions_shape(engine: Engine) -> None:
    a, _ = engine.start("fn", "{}", name="one")
    out = engine.list_executions(function_name="fn")
    [item] = out["DurableExecutions"]
    assert item["DurableExecutionArn"] == a and item["Status"] == "RUNNING"
    assert item["FunctionArn"].endswith(":function:fn")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        ({"a": 1}, '{"a": 1}'),
        ('{"a":1}', '{"a":1}'),
        ("hello", '"hello"'),
        (b"[1]", "[1]"),
    ],
)
def test_normalize_input(value: Any, expected: str) -> None:
    assert normalize_input(value) == expected


def test_callback_success_without_result_has_no_payload(engine: Engine) -> None:
    arn, inv = begin(engine)
    res = engine.checkpoint(arn, inv.token, [{"Id": "k", "Type": "CALLBACK", "Action": "START"}])
    engine.callback_success(res.operations[0]["CallbackDetails"]["CallbackId"], None)
    last = engine.history(arn)["Events"][-1]
    assert last["CallbackSucceededDetails"] == {"Result": {"Truncated": False}}


def test_chained_child_result_over_1_mib_fails_the_child(engine: Engine) -> None:
    arn, _ = engine.start("echo", "{}", parent=ParentLink("arn:parent", "i"))
    inv = engine.begin_invocation(arn)
    assert inv is not None
    engine.finish_invocation(
        arn, inv.invocation_id, {"Status": "SUCCEEDED", "Result": '"' + "x" * (1 << 20) + '"'}
    )
    d = engine.describe(arn)
    assert d["Status"] == "FAILED"
    assert "Execution output payload size" in d["Error"]["ErrorMessage"]
    assert [e.kind for e in engine.store.due(None, arn=arn)] == ["notify"]


def test_chained_invoke_input_over_1_mib_is_refused(engine: Engine) -> None:
    arn, inv = begin(engine)
    big = '"' + "x" * (1 << 20) + '"'
    with pytest.raises(InvalidParameterValueError, match="CHAINED_INVOKE input payload size"):
        engine.checkpoint(
            arn,
            inv.token,
            [
                {
                    "Id": "i",
                    "Type": "CHAINED_INVOKE",
                    "Action": "START",
                    "Payload": big,
                    "ChainedInvokeOptions": {"FunctionName": "echo"},
                }
            ],
        )


def test_callback_completed_during_an_invocation_reinvokes(engine: Engine) -> None:
    arn, inv = begin(engine)
    res = engine.checkpoint(arn, inv.token, [{"Id": "k", "Type": "CALLBACK", "Action": "START"}])
    cb_id = res.operations[0]["CallbackDetails"]["CallbackId"]
    engine.callback_success(cb_id, b'"x"')  # arrives while the invocation runs
    seen = engine.checkpoint(arn, res.token or "", [])
    assert [o["Status"] for o in seen.operations] == ["SUCCEEDED"]
    # The handler had already decided to suspend: it must run again.
    engine.finish_invocation(arn, inv.invocation_id, {"Status": "PENDING"})
    assert [d.kind for d in engine.store.due(None, arn=arn, kinds=["invoke"])] == ["invoke"]


def test_lazy_completion_inside_a_checkpoint_needs_no_extra_invocation(
    engine: Engine, clock: Clock
) -> None:
    arn, inv = begin(engine)
    t = engine.checkpoint(
        arn,
        inv.token,
        [
            {"Id": "w", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 1}},
            {"Id": "w2", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 50}},
        ],
    ).token
    clock.ms += 1000
    res = engine.checkpoint(arn, t or "", [])  # delivers w SUCCEEDED
    assert [o["Id"] for o in res.operations] == ["w"]
    engine.finish_invocation(arn, inv.invocation_id, {"Status": "PENDING"})
    assert engine.store.due(None, arn=arn, kinds=["invoke"]) == []


def test_large_delta_is_paginated_with_the_new_token(clock: Clock) -> None:
    eng = Engine(MemoryStore(), now_ms=clock, page_bytes=300)
    arn, _ = eng.start("fn", "{}")
    inv = eng.begin_invocation(arn)
    assert inv is not None
    payload = '"' + "y" * 100 + '"'
    res = eng.checkpoint(
        arn, inv.token, [step(f"s{i}", "SUCCEED", Payload=payload) for i in range(7)]
    )
    assert res.token and res.next_marker
    ids = [o["Id"] for o in res.operations]
    marker: str | None = res.next_marker
    while marker:
        more, marker = eng.get_state(arn, res.token, marker)
        ids += [o["Id"] for o in more]
    assert ids == [f"s{i}" for i in range(7)]
    # The next invocation's input is paged the same way.
    eng.abandon_invocation(arn, inv.invocation_id, "crash")
    inv2 = eng.begin_invocation(arn)
    assert inv2 is not None and inv2.next_marker.startswith("s:")
    ids2 = [o["Id"] for o in inv2.operations]
    marker = inv2.next_marker
    while marker:
        more, marker = eng.get_state(arn, inv2.token, marker)
        ids2 += [o["Id"] for o in more]
    assert ids2[1:] == [f"s{i}" for i in range(7)]


# ---------------------------------------------------------------- leases


def lease_due(engine: Engine, arn: str) -> int:
    (lease,) = engine.store.due(None, arn=arn, kinds=["lease"])
    return lease.due_ms


def test_renew_lease_moves_only_the_current_invocations_lease(clock: Clock) -> None:
    wall = Clock()
    eng = Engine(MemoryStore(), now_ms=clock, wall_ms=wall, lease_ms=1_000)
    arn, _ = eng.start("fn", "{}")
    inv = eng.begin_invocation(arn, owner="w1", pid=7, host="h")
    assert inv is not None
    first = lease_due(eng, arn)
    assert first == wall.ms + 1_000
    assert eng.renew_lease(arn, inv.invocation_id, first + 5_000)
    (lease,) = eng.store.due(None, arn=arn, kinds=["lease"])
    assert lease.due_ms == first + 5_000
    assert lease.data == {"invocation": inv.invocation_id, "owner": "w1", "pid": 7, "host": "h"}
    # never shortened
    assert eng.renew_lease(arn, inv.invocation_id, first)
    assert lease_due(eng, arn) == first + 5_000
    # a checkpoint still works with the same token after a renewal
    assert eng.checkpoint(arn, inv.token, [step("s", "START")]).token
    assert not eng.renew_lease(arn, "someone-else", first + 9_000)
    assert not eng.renew_lease(arn.replace("fn:", "other:"), inv.invocation_id, first + 9_000)
    eng.abandon_invocation(arn, inv.invocation_id, "taken over")
    assert not eng.renew_lease(arn, inv.invocation_id, first + 9_000)
    inv2 = eng.begin_invocation(arn)
    assert inv2 is not None
    assert not eng.renew_lease(arn, inv.invocation_id, first + 9_000)
    eng.stop(arn)
    assert not eng.renew_lease(arn, inv2.invocation_id, first + 9_000)


def test_conditional_takeover_leaves_a_renewed_lease_alone(clock: Clock) -> None:
    wall = Clock()
    eng = Engine(MemoryStore(), now_ms=clock, wall_ms=wall, lease_ms=1_000)
    arn, _ = eng.start("fn", "{}")
    inv = eng.begin_invocation(arn)
    assert inv is not None
    judged = lease_due(eng, arn)
    assert eng.renew_lease(arn, inv.invocation_id, judged + 2_000)
    before = events(eng, arn)
    # the lease judged expired was renewed since: nothing happens, the token stays valid
    assert not eng.abandon_invocation(arn, inv.invocation_id, "late", lease_due_ms=judged)
    assert events(eng, arn) == before
    assert eng.checkpoint(arn, inv.token, []).token
    # the current lease is taken over
    assert eng.abandon_invocation(arn, inv.invocation_id, "lost", lease_due_ms=judged + 2_000)
    assert events(eng, arn)[-1] == "InvocationCompleted"
    assert eng.store.due(None, arn=arn, kinds=["lease"]) == []
    assert not eng.abandon_invocation(arn, inv.invocation_id, "again")


def test_releases_in_a_row_neither_count_as_failures_nor_wait(clock: Clock) -> None:
    eng = Engine(MemoryStore(), now_ms=clock, max_invocation_failures=2, invocation_retry_ms=60_000)
    arn, _ = eng.start("fn", "{}")
    for _ in range(5):
        inv = eng.begin_invocation(arn)
        assert inv is not None
        eng.checkpoint(arn, inv.token, [])
        assert eng.release_invocation(arn, inv.invocation_id, "worker shut down")
        assert not eng.release_invocation(arn, inv.invocation_id, "twice")
        with pytest.raises(InvalidCheckpointTokenError):
            eng.checkpoint(arn, inv.token, [])
        assert eng.describe(arn)["Status"] == "RUNNING"
        # due at once, not after the retry delay
        assert [d.due_ms for d in eng.store.due(clock.ms, arn=arn, kinds=["invoke"])] == [clock.ms]
        clock.ms += 10
    crashes = [
        e["InvocationCompletedDetails"]["Error"]["Payload"]
        for e in eng.history(arn)["Events"]
        if e["EventType"] == "InvocationCompleted"
    ]
    assert crashes == [{"ErrorType": "Runtime.ExitError", "ErrorMessage": "worker shut down"}] * 5
    # a real crash still counts, and is retried after the delay
    inv = eng.begin_invocation(arn)
    assert inv is not None
    eng.abandon_invocation(arn, inv.invocation_id, "crash")
    assert eng.describe(arn)["Status"] == "RUNNING"
    assert eng.store.due(clock.ms, arn=arn, kinds=["invoke"]) == []
    clock.ms += 60_000
    inv = eng.begin_invocation(arn)
    assert inv is not None
    eng.abandon_invocation(arn, inv.invocation_id, "crash")
    assert eng.describe(arn)["Status"] == "FAILED"


@pytest.mark.parametrize(
    "updates",
    [
        [{"Id": ["x"], "Type": "STEP", "Action": "START"}],
        [{"Id": "a", "Type": "STEP", "Action": "START", "ParentId": {"p": 1}}],
        ["not an update"],
        [None],
        "START",
    ],
)
def test_malformed_updates_are_refused_as_bad_parameters(engine: Engine, updates: Any) -> None:
    arn, inv = begin(engine)
    with pytest.raises(InvalidParameterValueError):
        engine.checkpoint(arn, inv.token, updates)
    engine.checkpoint(arn, inv.token, [])  # the token is still valid


@pytest.mark.parametrize("marker", ["garbage", "1:", ":x", "x" * 5000])
def test_a_bad_listing_marker_is_a_bad_parameter(engine: Engine, marker: str) -> None:
    with pytest.raises(InvalidParameterValueError, match="invalid list marker"):
        engine.list_executions(marker=marker)
