"""Every status transition of the service: per operation type, and of the execution.

Operation rules: one function per operation type applies a validated ``OperationUpdate``
(wire dict) to a :class:`~durable_ext.engine.mutation.Mutation`: the resulting operation
record (status, details, attempt arithmetic, timestamps; Name/ParentId/SubType merged),
its history events and its due entries. Completions from outside (callbacks, chained
invokes, timers) and the execution's own transitions (an invocation's outcome, closing,
timing out) are here too, so the engine only sequences them into commits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from durable_ext.backends.store import DueEntry, ExecutionStatus
from durable_ext.engine.history import op_event, payload_block, plain_event
from durable_ext.engine.mutation import Mutation
from durable_ext.engine.state import DueKey, DueKind, PendingClose
from durable_ext.engine.validation import CHAINED_INVOKE_INPUT_LIMIT
from durable_ext.errors import NotFoundError

__all__ = [
    "TERMINAL_OP",
    "ChainedTarget",
    "apply_update",
    "close_execution",
    "complete_callback",
    "complete_chained",
    "end_invocation",
    "fire_due_wakes",
    "fire_timer",
    "mark_changed",
    "set_status",
    "target_name",
]

TERMINAL_OP = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "STOPPED"})
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_MAX_INVALID_PENDING = 3


class ChainedTarget(NamedTuple):
    """Where a chained invoke goes: the registered function and the child it will start."""

    function: str | None
    kind: str | None  # "durable", "plain", or None when the function is unknown
    child_id: str
    child_name: str
    child_arn: str


def apply_update(
    tx: Mutation, u: Mapping[str, Any], start_chained: Callable[[str], ChainedTarget]
) -> None:
    """Apply one validated update to ``tx`` with the service's status rules and events."""
    now = tx.now_ms
    op_id = u["Id"]
    kind, action = u["Type"], u["Action"]
    if kind == "EXECUTION":
        status = "SUCCEEDED" if action == "SUCCEED" else "FAILED"
        tx.evolve(closing=PendingClose(status, u.get("Payload"), u.get("Error")))
        return
    old = tx.get(op_id) or {}
    data: dict[str, Any] = {k: v for k, v in old.items()}
    data["Id"] = op_id
    data["Type"] = kind
    for key in ("ParentId", "Name", "SubType"):
        if u.get(key) is not None:
            data[key] = u[key]
    data.setdefault("StartTimestamp", now)
    if kind == "CHAINED_INVOKE":
        function = str(u["ChainedInvokeOptions"]["FunctionName"])
        _apply_chained_invoke(tx, u, data, start_chained(function), now)
        return
    _APPLIERS[kind](tx, u, data, action, now)


def set_status(data: dict[str, Any], status: str, now: int) -> None:
    """Set the status; terminal statuses get an EndTimestamp, others lose it."""
    data["Status"] = status
    if status in TERMINAL_OP:
        data.setdefault("EndTimestamp", now)
    else:
        data.pop("EndTimestamp", None)


def _apply_step(
    tx: Mutation, u: Mapping[str, Any], data: dict[str, Any], action: str, now: int
) -> None:
    sd = dict(data.get("StepDetails") or {})
    attempt = int(sd.get("Attempt", 0) or 0)
    if action == "START":
        sd["Attempt"] = attempt
        sd.pop("Error", None)
        if u.get("Payload") is not None:
            sd["Result"] = u["Payload"]
        data["StepDetails"] = sd
        set_status(data, "STARTED", now)
        tx.put(data)
        tx.event(op_event("StepStarted", data, now))
        return
    attempt += 1
    sd["Attempt"] = attempt
    sd.pop("NextAttemptTimestamp", None)
    retry: dict[str, Any] = {"CurrentAttempt": attempt}
    if action == "RETRY":
        delay = int((u.get("StepOptions") or {}).get("NextAttemptDelaySeconds", 0) or 0)
        sd["NextAttemptTimestamp"] = now + delay * 1000
        sd["Result"] = u.get("Payload")
        sd["Error"] = u.get("Error")
        sd = {k: v for k, v in sd.items() if v is not None}
        data["StepDetails"] = sd
        set_status(data, "PENDING", now)
        tx.put(data)
        tx.set_due(DueKey.wake(data["Id"]), DueKind.WAKE, now + delay * 1000, op=data["Id"])
        retry["NextAttemptDelaySeconds"] = delay
        if u.get("Error") is not None:
            details = {"Error": payload_block(u["Error"]), "RetryDetails": retry}
            tx.event(op_event("StepFailed", data, now, details))
        else:
            details = {"Result": payload_block(u.get("Payload")), "RetryDetails": retry}
            tx.event(op_event("StepSucceeded", data, now, details))
        return
    if action == "SUCCEED":
        sd["Result"] = u.get("Payload")
        sd.pop("Error", None)
        sd = {k: v for k, v in sd.items() if v is not None}
        data["StepDetails"] = sd
        set_status(data, "SUCCEEDED", now)
        tx.put(data)
        details = {"Result": payload_block(u.get("Payload")), "RetryDetails": retry}
        tx.event(op_event("StepSucceeded", data, now, details))
    else:
        sd["Error"] = u.get("Error") or {}
        data["StepDetails"] = sd
        set_status(data, "FAILED", now)
        tx.put(data)
        details = {"Error": payload_block(sd["Error"]), "RetryDetails": retry}
        tx.event(op_event("StepFailed", data, now, details))
    tx.clear_due(DueKey.wake(data["Id"]))


def _apply_context(
    tx: Mutation, u: Mapping[str, Any], data: dict[str, Any], action: str, now: int
) -> None:
    if action == "START":
        data["ContextDetails"] = {}
        set_status(data, "STARTED", now)
        tx.put(data)
        tx.event(op_event("ContextStarted", data, now))
    elif action == "SUCCEED":
        replay = bool((u.get("ContextOptions") or {}).get("ReplayChildren", False))
        cd: dict[str, Any] = {"ReplayChildren": replay}
        if u.get("Payload") is not None:
            cd["Result"] = u["Payload"]
        data["ContextDetails"] = cd
        set_status(data, "SUCCEEDED", now)
        tx.put(data)
        tx.event(
            op_event("ContextSucceeded", data, now, {"Result": payload_block(u.get("Payload"))})
        )
    else:
        err = u.get("Error") or {}
        data["ContextDetails"] = {"Error": err}
        set_status(data, "FAILED", now)
        tx.put(data)
        tx.event(op_event("ContextFailed", data, now, {"Error": payload_block(err)}))


def _apply_wait(
    tx: Mutation, u: Mapping[str, Any], data: dict[str, Any], action: str, now: int
) -> None:
    key = DueKey.wake(data["Id"])
    if action == "START":
        secs = int((u.get("WaitOptions") or {}).get("WaitSeconds", 0) or 0)
        end = now + secs * 1000
        data["WaitDetails"] = {"ScheduledEndTimestamp": end}
        data["_wait"] = secs
        set_status(data, "STARTED", now)
        tx.put(data)
        tx.set_due(key, DueKind.WAKE, end, op=data["Id"])
        tx.event(
            op_event("WaitStarted", data, now, {"Duration": secs, "ScheduledEndTimestamp": end})
        )
        return
    if not u.get("WaitOptions"):
        data.pop("WaitDetails", None)
    set_status(data, "CANCELLED", now)
    tx.put(data)
    tx.clear_due(key)
    details: dict[str, Any] = {}
    if u.get("Error") is not None:
        details["Error"] = payload_block(u["Error"])
    tx.event(op_event("WaitCancelled", data, now, details))


def _apply_callback(
    tx: Mutation, u: Mapping[str, Any], data: dict[str, Any], action: str, now: int
) -> None:
    opts = u.get("CallbackOptions") or {}
    timeout = int(opts.get("TimeoutSeconds", 0) or 0)
    heartbeat = int(opts.get("HeartbeatTimeoutSeconds", 0) or 0)
    cb_id = tx.ids.callback_id(tx.arn, data["Id"])
    data["CallbackDetails"] = {"CallbackId": cb_id}
    data["_cb"] = {"t": timeout, "hb": heartbeat}
    set_status(data, "STARTED", now)
    tx.put(data)
    tx.open_op(data["Id"])
    if timeout > 0:
        tx.set_due(
            DueKey.callback_timeout(data["Id"]),
            DueKind.CALLBACK_TIMEOUT,
            now + timeout * 1000,
            op=data["Id"],
        )
    if heartbeat > 0:
        tx.set_due(
            DueKey.callback_heartbeat(data["Id"]),
            DueKind.CALLBACK_HEARTBEAT,
            now + heartbeat * 1000,
            op=data["Id"],
        )
    details: dict[str, Any] = {"CallbackId": cb_id}
    if timeout > 0:
        details["Timeout"] = timeout
    if heartbeat > 0:
        details["HeartbeatTimeout"] = heartbeat
    tx.event(op_event("CallbackStarted", data, now, details))


def _apply_chained_invoke(
    tx: Mutation, u: Mapping[str, Any], data: dict[str, Any], resolved: ChainedTarget, now: int
) -> None:
    opts = u["ChainedInvokeOptions"]
    fn_name = str(opts["FunctionName"])
    tenant = opts.get("TenantId")
    payload = u.get("Payload")
    target, kind, child_id, child_name, child_arn = resolved
    started: dict[str, Any] = {
        "FunctionName": fn_name,
        "Input": payload_block(payload),
        "ExecutedVersion": "$LATEST",
        "DurableExecutionArn": child_arn,
    }
    if tenant is not None:
        started["TenantId"] = tenant
    data["ChainedInvokeDetails"] = {}
    data["_inv"] = {"fn": fn_name, "child": child_arn}
    if kind is None:
        err = {
            "ErrorType": "ResourceNotFoundException",
            "ErrorMessage": f"Function not found: {fn_name}",
        }
        data["ChainedInvokeDetails"] = {"Error": err}
        set_status(data, "FAILED", now)
        tx.put(data)
        tx.event(op_event("ChainedInvokeStarted", data, now, started))
        tx.event(op_event("ChainedInvokeFailed", data, now, {"Error": payload_block(err)}))
        return
    set_status(data, "STARTED", now)
    tx.put(data)
    tx.open_op(data["Id"])
    tx.set_due(
        DueKey.dispatch(data["Id"]),
        DueKind.DISPATCH,
        now,
        op=data["Id"],
        function=target,
        target_kind=kind,
        payload=payload,
        tenant=tenant,
        child_id=child_id,
        child_name=child_name,
        child_arn=child_arn,
    )
    tx.event(op_event("ChainedInvokeStarted", data, now, started))


def target_name(function_name: str) -> str | None:
    """``fn``, ``fn:qualifier`` or a function ARN -> the registered name."""
    name = function_name
    if name.startswith("arn:"):
        parts = name.split(":")
        name = parts[6] if len(parts) > 6 else ""
    else:
        name = name.split(":", 1)[0]
    return name if _NAME.fullmatch(name or "") else None


_APPLIERS: dict[str, Callable[[Mutation, Mapping[str, Any], dict[str, Any], str, int], None]] = {
    "STEP": _apply_step,
    "CONTEXT": _apply_context,
    "WAIT": _apply_wait,
    "CALLBACK": _apply_callback,
}


# -- completions from outside --------------------------------------------------------------


def mark_changed(tx: Mutation, op_id: str, *, external: bool = True) -> None:
    """Record an asynchronous completion for the handler, now or at its next invocation.

    ``external=False`` is a completion applied inside the handler's own checkpoint: the
    response delivers it. An external one (callback, timer, chained invoke) during an
    invocation re-invokes when that invocation suspends, even if a later checkpoint
    showed it: the handler may have decided to suspend before it saw the change.
    """
    if op_id not in tx.state.updated:
        tx.evolve(updated=(*tx.state.updated, op_id))
    if not tx.state.invoking:
        tx.set_due(DueKey.INVOKE, DueKind.INVOKE, tx.now_ms)
    elif external:
        tx.evolve(reinvoke=True)


def complete_callback(
    tx: Mutation, op_id: str, status: str, result: str | None, error: Mapping[str, Any] | None
) -> None:
    """Complete a callback: it succeeded, failed or timed out."""
    data = tx.get(op_id)
    if data is None or data.get("Type") != "CALLBACK" or data.get("Status") != "STARTED":
        raise NotFoundError(f"callback {op_id!r} of {tx.arn} is not waiting for a result")
    data = dict(data)
    cd = dict(data.get("CallbackDetails") or {})
    if result is not None:
        cd["Result"] = result
    if error is not None:
        cd["Error"] = dict(error)
    data["CallbackDetails"] = cd
    set_status(data, status, tx.now_ms)
    tx.put(data)
    tx.clear_due(DueKey.callback_timeout(op_id))
    tx.clear_due(DueKey.callback_heartbeat(op_id))
    tx.close_op(op_id)
    etype = {
        "SUCCEEDED": "CallbackSucceeded",
        "FAILED": "CallbackFailed",
        "TIMED_OUT": "CallbackTimedOut",
    }[status]
    details = (
        {"Result": payload_block(result)}
        if status == "SUCCEEDED"
        else {"Error": payload_block(dict(error or {}))}
    )
    tx.event(op_event(etype, data, tx.now_ms, details))
    mark_changed(tx, op_id)


def complete_chained(
    tx: Mutation, op_id: str, status: str, result: str | None, error: Mapping[str, Any] | None
) -> bool:
    """Complete a chained invoke whose target ended; False if nothing waits for it."""
    data = tx.get(op_id)
    if (
        tx.header.terminal
        or data is None
        or data.get("Type") != "CHAINED_INVOKE"
        or data.get("Status") != "STARTED"
    ):
        return False
    data = dict(data)
    cid: dict[str, Any] = {}
    if status == "SUCCEEDED":
        if result is not None:
            cid["Result"] = result
    else:
        cid["Error"] = dict(error or {"ErrorMessage": "Chained invoke failed."})
    data["ChainedInvokeDetails"] = cid
    set_status(data, status, tx.now_ms)
    tx.put(data)
    tx.clear_due(DueKey.dispatch(op_id))
    tx.close_op(op_id)
    etype = {
        "SUCCEEDED": "ChainedInvokeSucceeded",
        "FAILED": "ChainedInvokeFailed",
        "TIMED_OUT": "ChainedInvokeTimedOut",
        "STOPPED": "ChainedInvokeStopped",
    }[status]
    details = (
        {"Result": payload_block(result)}
        if status == "SUCCEEDED"
        else {"Error": payload_block(cid["Error"])}
    )
    tx.event(op_event(etype, data, tx.now_ms, details))
    mark_changed(tx, op_id)
    return True


def _fire_wake(tx: Mutation, entry: DueEntry, *, external: bool = True) -> bool:
    tx.clear_due(entry.key)
    data = tx.get(entry.data.get("op", ""))
    if data is None:
        return False
    data = dict(data)
    now = tx.now_ms
    if data.get("Type") == "WAIT" and data.get("Status") == "STARTED":
        set_status(data, "SUCCEEDED", now)
        tx.put(data)
        tx.event(op_event("WaitSucceeded", data, now, {"Duration": data.get("_wait", 0)}))
    elif data.get("Type") == "STEP" and data.get("Status") == "PENDING":
        sd = dict(data.get("StepDetails") or {})
        sd.pop("NextAttemptTimestamp", None)
        data["StepDetails"] = sd
        set_status(data, "READY", now)
        tx.put(data)
    else:
        return False
    mark_changed(tx, data["Id"], external=external)
    return True


def fire_due_wakes(tx: Mutation) -> None:
    """Lazy completion inside a checkpoint: due waits succeed, due retries get READY."""
    due = [
        d
        for d in tx.store.due(tx.now_ms, arn=tx.arn, kinds=[DueKind.WAKE])
        if d.key not in tx.due_clear and d.key not in tx.due_set
    ]
    due += [d for d in tx.due_set.values() if d.kind == DueKind.WAKE and d.due_ms <= tx.now_ms]
    for d in sorted(due, key=lambda d: (d.due_ms, d.key)):
        _fire_wake(tx, d, external=False)


def fire_timer(tx: Mutation, entry: DueEntry) -> bool:
    """Fire a due WAKE, CALLBACK_* or EXECUTION_TIMEOUT entry; False for other kinds."""
    if entry.kind == DueKind.WAKE:
        _fire_wake(tx, entry)
    elif entry.kind in (DueKind.CALLBACK_TIMEOUT, DueKind.CALLBACK_HEARTBEAT):
        heartbeat = entry.kind == DueKind.CALLBACK_HEARTBEAT
        err = {
            "ErrorType": "Callback.Heartbeat" if heartbeat else "Callback.Timeout",
            "ErrorMessage": "Callback timed out on heartbeat"
            if heartbeat
            else "Callback timed out",
        }
        op = tx.get(str(entry.data.get("op")))
        if op is None or op.get("Status") != "STARTED":
            tx.clear_due(entry.key)  # completed meanwhile; nothing to time out
        else:
            complete_callback(tx, op["Id"], "TIMED_OUT", None, err)
    elif entry.kind == DueKind.EXECUTION_TIMEOUT:
        secs = tx.state.timeout
        close_execution(
            tx,
            ExecutionStatus.TIMED_OUT,
            None,
            {
                "ErrorType": "Execution.Timeout",
                "ErrorMessage": f"Execution timed out after {secs} seconds.",
            },
        )
    else:
        return False
    return True


# -- the execution ----------------------------------------------------------------------

_TERMINAL_EVENT = {
    ExecutionStatus.SUCCEEDED: "ExecutionSucceeded",
    ExecutionStatus.FAILED: "ExecutionFailed",
    ExecutionStatus.TIMED_OUT: "ExecutionTimedOut",
    ExecutionStatus.STOPPED: "ExecutionStopped",
}


def close_execution(
    tx: Mutation, status: str, result: str | None, error: Mapping[str, Any] | None
) -> None:
    """Make the execution terminal: its operation, its event, its timers, its caller."""
    h = tx.header
    exec_op = tx.get(h.execution_id)
    if exec_op is not None:
        tx.put({**exec_op, "Status": status, "EndTimestamp": tx.now_ms})
    if status == ExecutionStatus.SUCCEEDED:
        details = {"Result": payload_block(result)}
    else:
        details = {"Error": payload_block(dict(error or {}))}
    tx.event(
        plain_event(_TERMINAL_EVENT[ExecutionStatus(status)], tx.now_ms, details,
                    Id=h.execution_id, Name=h.name)
    )
    for d in tx.store.due(arn=tx.arn):
        if d.kind != DueKind.NOTIFY:
            tx.clear_due(d.key)
    for key in list(tx.due_set):
        if tx.due_set[key].kind != DueKind.NOTIFY:
            tx.clear_due(key)
    parent = tx.state.parent
    if parent is not None:
        tx.set_due(DueKey.NOTIFY, DueKind.NOTIFY, tx.now_ms, arn=parent.arn, op=parent.op)
    succeeded = status == ExecutionStatus.SUCCEEDED
    tx.header_changes.update(
        status=status,
        end_ms=tx.now_ms,
        result=result if succeeded else None,
        error=None if succeeded else dict(error or {}),
    )


def end_invocation(
    tx: Mutation,
    output: Mapping[str, Any] | None,
    error: Mapping[str, Any] | None,
    *,
    released: bool,
    max_failures: int,
    retry_ms: int,
) -> None:
    """Close the open invocation and apply what it ended with.

    Records ``InvocationCompleted`` (with ``Error`` for a crash), then: the outcome the
    handler checkpointed; for a ``released`` invocation (handed back unfinished) a new
    invocation at once; for a crash a retry after ``retry_ms`` (``max_failures`` in a row
    fail the execution); else the handler's output.
    """
    details: dict[str, Any] = {
        "StartTimestamp": tx.state.invocation_start or tx.now_ms,
        "EndTimestamp": tx.now_ms,
        "RequestId": tx.state.request_id,
    }
    if error is not None:
        details["Error"] = payload_block(dict(error))
    tx.event(plain_event("InvocationCompleted", tx.now_ms, details))
    closing = tx.state.closing
    tx.evolve(gate="IDLE", closing=None)
    tx.clear_due(DueKey.LEASE)
    if tx.header.terminal:
        return
    if closing is not None:
        close_execution(tx, closing.status, closing.result, closing.error)
    elif released:
        # handed back unfinished: not a failure of the handler, run it again now
        tx.set_due(DueKey.INVOKE, DueKind.INVOKE, tx.now_ms)
    elif error is not None:
        fails = tx.state.fails + 1
        tx.evolve(fails=fails)
        if fails >= max_failures:
            close_execution(tx, ExecutionStatus.FAILED, None, error)
        else:
            tx.set_due(DueKey.INVOKE, DueKind.INVOKE, tx.now_ms + retry_ms)
    else:
        _apply_output(tx, output or {}, retry_ms)


def _apply_output(tx: Mutation, output: Mapping[str, Any], retry_ms: int) -> None:
    status = output.get("Status")
    invalid: str | None = None
    if status == "SUCCEEDED":
        if output.get("Error") is not None:
            invalid = "Cannot provide an Error for SUCCEEDED status."
        else:
            tx.evolve(fails=0)
            result = output.get("Result")
            if (
                tx.state.parent is not None
                and len((result or "").encode()) > CHAINED_INVOKE_INPUT_LIMIT
            ):
                # A chained child's result travels back into the caller's checkpoint.
                close_execution(tx, ExecutionStatus.FAILED, None, {
                    "ErrorType": "InvalidParameterValueException",
                    "ErrorMessage": "Execution output payload size must be less than or "
                    f"equal to {CHAINED_INVOKE_INPUT_LIMIT} bytes.",
                })
            else:
                close_execution(tx, ExecutionStatus.SUCCEEDED, result, None)
            return
    elif status == "FAILED":
        if output.get("Result") is not None:
            invalid = "Cannot provide a Result for FAILED status."
        else:
            tx.evolve(fails=0)
            close_execution(tx, ExecutionStatus.FAILED, None, dict(output.get("Error") or {}))
            return
    elif status == "PENDING":
        input_seq = tx.state.input_seq if tx.state.input_seq is not None else tx.seq
        if _has_pending(tx) or tx.seq > input_seq:
            external = tx.state.reinvoke
            tx.evolve(fails=0, invalid=0, reinvoke=False)
            seen = max(tx.state.input_seq or 0, tx.header.handler_seen_seq)
            if external or tx.seq > seen:
                # Something completed that this invocation may not have acted on.
                tx.set_due(DueKey.INVOKE, DueKind.INVOKE, tx.now_ms)
            return
        invalid = "Cannot return PENDING status with no pending operations."
    else:
        invalid = f"Invalid invocation status {status!r}."
    tx.evolve(invalid=tx.state.invalid + 1)
    err = {"ErrorType": "InvalidParameterValueException", "ErrorMessage": invalid}
    if status != "PENDING" or tx.state.invalid > _MAX_INVALID_PENDING:
        close_execution(tx, ExecutionStatus.FAILED, None, err)
    else:
        tx.set_due(DueKey.INVOKE, DueKind.INVOKE, tx.now_ms + retry_ms)


def _has_pending(tx: Mutation) -> bool:
    if tx.state.open:
        return True
    if any(d.kind == DueKind.WAKE for d in tx.due_set.values()):
        return True
    return any(
        d.key not in tx.due_clear
        for d in tx.store.due(arn=tx.arn, kinds=[DueKind.WAKE], limit=None)
    )
