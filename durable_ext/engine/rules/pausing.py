"""Pause and resume: PAUSING, PAUSED, and invocations owed while paused.

The service's rules (botocore's Lambda model, PauseDurableExecution and
ResumeDurableExecution):

* a pause of an execution with an invocation in flight makes it PAUSING; the
  invocation's next checkpoint is applied but answered without a token (the SDK then
  ends the invocation with PENDING) and the execution becomes PAUSED. Without an
  invocation in flight it becomes PAUSED at once. An invocation that ends before
  checkpointing again also leaves it PAUSED (unless it ended the execution);
* while paused no invocation starts, but waits, retry delays, callbacks and chained
  invokes still complete: what would have invoked is remembered (``deferred``);
* a resume of a PAUSING execution cancels the pause (the invocation goes on); of a
  PAUSED one it records ``ExecutionResumed`` and invokes when the pause interrupted an
  invocation or something completed meanwhile;
* with ``ExecutionTimeoutPaused`` (the default) the execution deadline moves to 366 days
  after the start while paused and, at resume, to the old deadline plus the time spent
  paused (never past those 366 days).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from durable_ext.backends.store import ExecutionStatus
from durable_ext.engine.history import payload_block, plain_event
from durable_ext.engine.mutation import Mutation
from durable_ext.engine.state import DueKey, DueKind, PauseState

__all__ = [
    "PAUSED_LIFETIME_MS",
    "deadline_of",
    "enter_paused",
    "request_pause",
    "resume",
    "schedule_invocation",
]

PAUSED_LIFETIME_MS = 366 * 24 * 3600 * 1000
"""An execution with its timeout paused still times out this long after it started."""


def deadline_of(tx: Mutation) -> int:
    """Return the execution deadline in force (epoch ms)."""
    if tx.state.deadline is not None:
        return tx.state.deadline
    return tx.header.start_ms + tx.state.timeout * 1000


def schedule_invocation(tx: Mutation, due_ms: int) -> None:
    """Ask for an invocation at ``due_ms``; while paused, owe it to the resume instead."""
    pause = tx.state.pause
    if pause is not None:
        tx.evolve(pause=replace(pause, deferred=True))
        tx.clear_due(DueKey.INVOKE)
        return
    tx.set_due(DueKey.INVOKE, DueKind.INVOKE, due_ms)


def _invoke_pending(tx: Mutation) -> bool:
    if DueKey.INVOKE in tx.due_set:
        return True
    if DueKey.INVOKE in tx.due_clear:
        return False
    return any(d.key == DueKey.INVOKE for d in tx.store.due(arn=tx.arn, kinds=[DueKind.INVOKE]))


def request_pause(tx: Mutation, reason: str | None, timeout_paused: bool) -> None:
    """Pause a RUNNING execution: PAUSING with an invocation in flight, else PAUSED."""
    tx.evolve(pause=PauseState(tx.now_ms, reason, timeout_paused))
    if tx.state.invoking:
        tx.header_changes["status"] = ExecutionStatus.PAUSING
    else:
        enter_paused(tx, interrupted=False)


def enter_paused(tx: Mutation, *, interrupted: bool) -> None:
    """Make a PAUSING (or just paused) execution PAUSED and record ``ExecutionPaused``.

    ``interrupted``: the pause cut an invocation short, so one is owed at resume.
    """
    pause = tx.state.pause
    assert pause is not None, "enter_paused without a pause"
    deferred = pause.deferred or interrupted or _invoke_pending(tx)
    tx.clear_due(DueKey.INVOKE)
    held: int | None = None
    if pause.timeout_paused:
        held = deadline_of(tx)
        cap = max(held, tx.header.start_ms + PAUSED_LIFETIME_MS)
        tx.set_due(DueKey.TIMEOUT, DueKind.EXECUTION_TIMEOUT, cap)
    tx.evolve(pause=replace(pause, paused_ms=tx.now_ms, deferred=deferred, deadline_ms=held))
    tx.header_changes["status"] = ExecutionStatus.PAUSED
    details: dict[str, Any] = {
        "PauseRequestTimestamp": pause.requested_ms,
        "ExecutionTimeoutPaused": pause.timeout_paused,
    }
    if pause.reason is not None:
        details["Reason"] = payload_block(pause.reason)
    h = tx.header
    tx.event(plain_event("ExecutionPaused", tx.now_ms, details, Id=h.execution_id, Name=h.name))


def resume(tx: Mutation, reason: str | None) -> None:
    """Resume a PAUSING or PAUSED execution (see the module docstring)."""
    pause = tx.state.pause
    assert pause is not None, "resume without a pause"
    was_paused = tx.header_changes.get("status", tx.header.status) == ExecutionStatus.PAUSED
    tx.evolve(pause=None)
    tx.header_changes["status"] = ExecutionStatus.RUNNING
    if not was_paused:
        return  # PAUSING: the pause is called off, the invocation goes on
    if pause.deadline_ms is not None and pause.paused_ms is not None:
        moved = pause.deadline_ms + max(0, tx.now_ms - pause.paused_ms)
        deadline = min(moved, max(pause.deadline_ms, tx.header.start_ms + PAUSED_LIFETIME_MS))
        tx.evolve(deadline=deadline)
        tx.set_due(DueKey.TIMEOUT, DueKind.EXECUTION_TIMEOUT, deadline)
    details: dict[str, Any] = {"ResumeRequestTimestamp": tx.now_ms}
    if reason is not None:
        details["Reason"] = payload_block(reason)
    h = tx.header
    tx.event(plain_event("ExecutionResumed", tx.now_ms, details, Id=h.execution_id, Name=h.name))
    if pause.deferred or tx.state.updated:
        if tx.state.invoking:
            # the interrupted invocation has not ended yet: invoke again once it does
            tx.evolve(reinvoke=True)
        else:
            schedule_invocation(tx, tx.now_ms)
