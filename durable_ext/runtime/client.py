"""EngineClient: the SDK's ``DurableServiceClient`` on top of the engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from aws_durable_execution_sdk_python.exceptions import (
    AwsErrorMetadata,
    CheckpointError,
    DurableApiErrorCategory,
    GetExecutionStateError,
)
from aws_durable_execution_sdk_python.lambda_service import (
    CheckpointOutput,
    CheckpointUpdatedExecutionState,
    Operation,
    OperationUpdate,
    StateOutput,
)

from durable_ext.backends.engine import Engine, InvalidCheckpointTokenError
from durable_ext.backends.validation import InvalidParameterValueError
from durable_ext.errors import NotFoundError, StoreUnavailableError

__all__ = ["EngineClient", "sdk_operation"]

_TS = (("StepDetails", "NextAttemptTimestamp"), ("WaitDetails", "ScheduledEndTimestamp"))


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def sdk_operation(data: Mapping[str, Any]) -> Operation:
    """Convert an engine operation (epoch-ms wire dict) to the SDK's ``Operation``."""
    d = dict(data)
    for key in ("StartTimestamp", "EndTimestamp"):
        if d.get(key) is not None:
            d[key] = _dt(d[key])
    for block, key in _TS:
        inner = d.get(block)
        if inner and inner.get(key) is not None:
            inner = dict(inner)
            inner[key] = _dt(inner[key])
            d[block] = inner
    return Operation.from_dict(d)


def _metadata(status: int) -> AwsErrorMetadata:
    return {
        "RequestId": None,
        "HostId": None,
        "HTTPStatusCode": status,
        "HTTPHeaders": None,
        "RetryAttempts": None,
    }


@contextmanager
def _translated(kind: type[CheckpointError] | type[GetExecutionStateError]) -> Iterator[None]:
    """Turn engine errors into the SDK's error classes with the service's classification."""
    try:
        yield
    except InvalidCheckpointTokenError as exc:
        # Retryable: the invocation ends and the runtime re-invokes with a fresh token.
        raise kind(
            str(exc),
            DurableApiErrorCategory.INVOCATION,
            {"Code": "InvalidParameterValueException", "Message": str(exc)},
            _metadata(400),
        ) from exc
    except InvalidParameterValueError as exc:
        raise kind(
            str(exc),
            DurableApiErrorCategory.EXECUTION,
            {"Code": "InvalidParameterValueException", "Message": str(exc)},
            _metadata(400),
        ) from exc
    except NotFoundError as exc:
        raise kind(
            str(exc),
            DurableApiErrorCategory.EXECUTION,
            {"Code": "ResourceNotFoundException", "Message": str(exc)},
            _metadata(404),
        ) from exc
    except StoreUnavailableError as exc:
        raise kind(str(exc), DurableApiErrorCategory.INVOCATION) from exc


class EngineClient:
    """A ``DurableServiceClient`` (SDK protocol, exact keyword names) over an :class:`Engine`.

    Thread-safe: the engine serialises per execution.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def checkpoint(
        self,
        durable_execution_arn: str,
        checkpoint_token: str,
        updates: list[OperationUpdate],
        client_token: str | None,
    ) -> CheckpointOutput:
        """CheckpointDurableExecution."""
        wire = [u.to_dict() for u in updates]
        with _translated(CheckpointError):
            res = self.engine.checkpoint(
                durable_execution_arn, checkpoint_token, wire, client_token
            )
        return CheckpointOutput(
            checkpoint_token=res.token,
            new_execution_state=CheckpointUpdatedExecutionState(
                operations=[sdk_operation(o) for o in res.operations],
                next_marker=res.next_marker,
            ),
        )

    def get_execution_state(
        self,
        durable_execution_arn: str,
        checkpoint_token: str,
        next_marker: str,
        max_items: int = 1000,
    ) -> StateOutput:
        """GetDurableExecutionState."""
        with _translated(GetExecutionStateError):
            ops, marker = self.engine.get_state(
                durable_execution_arn, checkpoint_token, next_marker, max_items
            )
        return StateOutput(operations=[sdk_operation(o) for o in ops], next_marker=marker)
