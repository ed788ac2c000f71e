"""The execution's own transitions: an invocation's outcome, closing, timing out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from durable_ext.backends.store import ExecutionStatus
from durable_ext.engine.history import payload_block, plain_event
from durable_ext.engine.mutation import Mutation
from durable_ext.engine.rules.pausing import enter_paused, schedule_invocation
from durable_ext.engine.state import DueKey, DueKind
from durable_ext.engine.validation import CHAINED_INVOKE_INPUT_LIMIT

__all__ = ["close_execution", "end_invocation"]

_MAX_INVALID_PENDING = 3

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
    # what is still owed to others stays: the caller's notification, undelivered events
    kept = (DueKind.NOTIFY, DueKind.EMIT)
    for d in tx.store.due(arn=tx.arn):
        if d.kind not in kept:
            tx.clear_due(d.key)
    for key in list(tx.due_set):
        if tx.due_set[key].kind not in kept:
            tx.clear_due(key)
    parent = tx.state.parent
    if parent is not None:
        tx.set_due(DueKey.NOTIFY, DueKind.NOTIFY, tx.now_ms, arn=parent.arn, op=parent.op)
    succeeded = status == ExecutionStatus.SUCCEEDED
    tx.evolve(pause=None)
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
        schedule_invocation(tx, tx.now_ms)
    elif error is not None:
        fails = tx.state.fails + 1
        tx.evolve(fails=fails)
        if fails >= max_failures:
            close_execution(tx, ExecutionStatus.FAILED, None, error)
        else:
            schedule_invocation(tx, tx.now_ms + retry_ms)
    else:
        _apply_output(tx, output or {}, retry_ms)
    if tx.header_changes.get("status", tx.header.status) == ExecutionStatus.PAUSING:
        # ended before checkpointing again: nothing is in flight any more
        enter_paused(tx, interrupted=False)


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
        pause = tx.state.pause
        # a pause that withheld the token ends the invocation with PENDING: valid
        held = pause is not None and pause.deferred
        if _has_pending(tx) or tx.seq > input_seq or held or tx.state.reinvoke:
            external = tx.state.reinvoke
            tx.evolve(fails=0, invalid=0, reinvoke=False)
            seen = max(tx.state.input_seq or 0, tx.header.handler_seen_seq)
            if external or tx.seq > seen:
                # Something completed that this invocation may not have acted on.
                schedule_invocation(tx, tx.now_ms)
            return
        invalid = "Cannot return PENDING status with no pending operations."
    else:
        invalid = f"Invalid invocation status {status!r}."
    tx.evolve(invalid=tx.state.invalid + 1)
    err = {"ErrorType": "InvalidParameterValueException", "ErrorMessage": invalid}
    if status != "PENDING" or tx.state.invalid > _MAX_INVALID_PENDING:
        close_execution(tx, ExecutionStatus.FAILED, None, err)
    else:
        schedule_invocation(tx, tx.now_ms + retry_ms)


def _has_pending(tx: Mutation) -> bool:
    if tx.state.open:
        return True
    if any(d.kind == DueKind.WAKE for d in tx.due_set.values()):
        return True
    return any(
        d.key not in tx.due_clear
        for d in tx.store.due(arn=tx.arn, kinds=[DueKind.WAKE], limit=None)
    )
