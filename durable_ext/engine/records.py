"""What the engine hands out and takes in: invocation inputs, checkpoint results, new executions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from durable_ext.backends.store import (
    CommitBatch,
    DueEntry,
    ExecutionHeader,
    ExecutionStatus,
    HistoryEvent,
    OperationRecord,
)
from durable_ext.engine.history import payload_block, plain_event
from durable_ext.engine.outbox import EventStamp, outbox_entry
from durable_ext.engine.state import DueKey, DueKind, EngineState

__all__ = ["CheckpointResult", "InvocationInput", "creation_batch"]


@dataclass(frozen=True, slots=True)
class InvocationInput:
    """What an invocation receives (the Lambda invocation envelope, epoch-ms ops)."""

    arn: str
    function_name: str
    invocation_id: str
    request_id: str
    token: str
    operations: list[dict[str, Any]]
    next_marker: str
    updated_ids: list[str]
    trace_header: str | None = None
    """The invocation's ``_X_AMZN_TRACE_ID`` (see :mod:`durable_ext.engine.trace`)."""

    def to_event(self) -> dict[str, Any]:
        """``DurableExecutionInvocationInput.to_json_dict`` shape."""
        return {
            "DurableExecutionArn": self.arn,
            "CheckpointToken": self.token,
            "InitialExecutionState": {
                "Operations": self.operations,
                "NextMarker": self.next_marker,
            },
            "UpdatedOperationIds": self.updated_ids,
        }


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """A checkpoint response: the new token (None at the end) and the delta."""

    token: str | None
    operations: list[dict[str, Any]]
    next_marker: str | None = None


def creation_batch(
    arn: str,
    execution_id: str,
    function_name: str,
    name: str,
    input_payload: str,
    state: EngineState,
    now: int,
    stamp: EventStamp | None = None,
) -> CommitBatch:
    """Build the batch that creates an execution.

    It is RUNNING, with its EXECUTION operation, its ``ExecutionStarted`` event, an
    invocation due now and the execution deadline (and, with ``stamp``, its first
    status-change event in the outbox).
    """
    if stamp is not None:
        state = state.evolve(emitted=1)
    header = ExecutionHeader(
        arn=arn,
        execution_id=execution_id,
        function_name=function_name,
        name=name,
        status=ExecutionStatus.RUNNING,
        start_ms=now,
        revision=1,
        input_payload=input_payload,
        op_count=1,
        event_count=1,
        state=state.to_dict(),
    )
    exec_op = {
        "Id": execution_id,
        "Type": "EXECUTION",
        "Status": "STARTED",
        "Name": name,
        "StartTimestamp": now,
        "ExecutionDetails": {"InputPayload": input_payload},
    }
    started = {"Input": payload_block(input_payload), "ExecutionTimeout": state.timeout}
    due = [
        DueEntry(arn=arn, key=DueKey.INVOKE, kind=DueKind.INVOKE, due_ms=now),
        DueEntry(arn=arn, key=DueKey.TIMEOUT, kind=DueKind.EXECUTION_TIMEOUT,
                 due_ms=now + state.timeout * 1000),
    ]
    if stamp is not None:
        due.append(outbox_entry(header, None, 1, now, stamp))
    return CommitBatch(
        header=header,
        expected_revision=0,
        operations=[OperationRecord(op_id=execution_id, index=0, touched=0, data=exec_op)],
        events=[
            HistoryEvent(
                event_id=1,
                data=plain_event("ExecutionStarted", now, started, Id=execution_id, Name=name),
            )
        ],
        due_set=due,
    )
