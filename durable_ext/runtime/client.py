"""EngineClient: the SDK's ``DurableServiceClient`` on top of the engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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

from durable_ext.backends._timestamps import convert_timestamps
from durable_ext.backends.engine import Engine, InvalidCheckpointTokenError
from durable_ext.backends.validation import InvalidParameterValueError
from durable_ext.errors import NotFoundError, StoreUnavailableError

__all__ = ["EngineClient", "ServiceClient", "sdk_operation"]


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def sdk_operation(data: Mapping[str, Any]) -> Operation:
    """Convert an engine operation (epoch-ms wire dict) to the SDK's ``Operation``."""
    return Operation.from_dict(convert_timestamps(data, _dt))


# How the service classifies an engine error: (error, category, code, HTTP status). The
# first match wins, so a subclass comes before its base.
_CLASSIFIED: tuple[tuple[type[Exception], DurableApiErrorCategory, str, int], ...] = (
    # Retryable: the invocation ends and the runtime re-invokes with a fresh token.
    (
        InvalidCheckpointTokenError,
        DurableApiErrorCategory.INVOCATION,
        "InvalidParameterValueException",
        400,
    ),
    (
        InvalidParameterValueError,
        DurableApiErrorCategory.EXECUTION,
        "InvalidParameterValueException",
        400,
    ),
    (NotFoundError, DurableApiErrorCategory.EXECUTION, "ResourceNotFoundException", 404),
)


@contextmanager
def _translated(kind: type[CheckpointError] | type[GetExecutionStateError]) -> Iterator[None]:
    """Turn engine errors into the SDK's error classes with the service's classification."""
    try:
        yield
    except (InvalidParameterValueError, NotFoundError) as exc:
        for error, category, code, status in _CLASSIFIED:
            if isinstance(exc, error):
                metadata: AwsErrorMetadata = {
                    "RequestId": None,
                    "HostId": None,
                    "HTTPStatusCode": status,
                    "HTTPHeaders": None,
                    "RetryAttempts": None,
                }
                raise kind(
                    str(exc), category, {"Code": code, "Message": str(exc)}, metadata
                ) from exc
        raise  # pragma: no cover - every caught class is in _CLASSIFIED
    except StoreUnavailableError as exc:
        raise kind(str(exc), DurableApiErrorCategory.INVOCATION) from exc


class ServiceClient:
    """The SDK's ``DurableServiceClient`` calls (exact keyword names) over two primitives.

    A subclass implements ``_checkpoint`` (returns the new token, the engine operations
    and the next marker) and ``_state`` (the engine operations and the next marker). Engine
    errors they raise reach the SDK as its own error classes, classified as the service
    does.
    """

    def checkpoint(
        self,
        durable_execution_arn: str,
        checkpoint_token: str,
        updates: list[OperationUpdate],
        client_token: str | None,
    ) -> CheckpointOutput:
        """CheckpointDurableExecution."""
        with _translated(CheckpointError):
            token, ops, marker = self._checkpoint(
                durable_execution_arn, checkpoint_token, updates, client_token
            )
        return CheckpointOutput(
            checkpoint_token=token,
            new_execution_state=CheckpointUpdatedExecutionState(
                operations=[sdk_operation(o) for o in ops], next_marker=marker
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
            ops, marker = self._state(
                durable_execution_arn, checkpoint_token, next_marker, max_items
            )
        return StateOutput(operations=[sdk_operation(o) for o in ops], next_marker=marker)

    def _checkpoint(
        self, arn: str, token: str, updates: list[OperationUpdate], client_token: str | None
    ) -> tuple[str | None, Sequence[Mapping[str, Any]], str | None]:
        raise NotImplementedError

    def _state(
        self, arn: str, token: str, marker: str, max_items: int
    ) -> tuple[Sequence[Mapping[str, Any]], str | None]:
        raise NotImplementedError


class EngineClient(ServiceClient):
    """A ``DurableServiceClient`` (SDK protocol, exact keyword names) over an :class:`Engine`.

    Thread-safe: the engine serialises per execution.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _checkpoint(
        self, arn: str, token: str, updates: list[OperationUpdate], client_token: str | None
    ) -> tuple[str | None, Sequence[Mapping[str, Any]], str | None]:
        res = self.engine.checkpoint(arn, token, [u.to_dict() for u in updates], client_token)
        return res.token, res.operations, res.next_marker

    def _state(
        self, arn: str, token: str, marker: str, max_items: int
    ) -> tuple[Sequence[Mapping[str, Any]], str | None]:
        return self.engine.get_state(arn, token, marker, max_items)
