"""Completions from outside an invocation: callbacks, chained-invoke outcomes, timers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable_ext.backends.store import DueEntry, ExecutionStatus
from durable_ext.engine.history import op_event, payload_block
from durable_ext.engine.mutation import Mutation
from durable_ext.engine.rules.execution import close_execution
from durable_ext.engine.rules.pausing import schedule_invocation
from durable_ext.engine.rules.updates import set_status
from durable_ext.engine.state import DueKey, DueKind
from durable_ext.errors import NotFoundError

__all__ = [
    "complete_callback",
    "complete_chained",
    "fire_due_wakes",
    "fire_timer",
    "heartbeat_callback",
    "mark_changed",
    "require_waiting_callback",
]


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
        schedule_invocation(tx, tx.now_ms)
    elif external:
        tx.evolve(reinvoke=True)


def require_waiting_callback(tx: Mutation, op_id: str) -> dict[str, Any]:
    """Return callback ``op_id``; ``NotFoundError`` when it does not wait for a result."""
    data = tx.get(op_id)
    if data is None or data.get("Type") != "CALLBACK" or data.get("Status") != "STARTED":
        raise NotFoundError(f"callback {op_id!r} of {tx.arn} is not waiting for a result")
    return data


def heartbeat_callback(tx: Mutation, op_id: str) -> bool:
    """Push a callback's heartbeat deadline out; False when it has no heartbeat timeout."""
    hb = int((require_waiting_callback(tx, op_id).get("_cb") or {}).get("hb", 0))
    if hb <= 0:
        return False
    tx.set_due(DueKey.callback_heartbeat(op_id), DueKind.CALLBACK_HEARTBEAT,
               tx.now_ms + hb * 1000, op=op_id)
    return True


def complete_callback(
    tx: Mutation, op_id: str, status: str, result: str | None, error: Mapping[str, Any] | None
) -> None:
    """Complete a callback: it succeeded, failed or timed out."""
    data = dict(require_waiting_callback(tx, op_id))
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
