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

from durable_ext.engine import Engine
from durable_ext.engine.timestamps import convert_timestamps
from durable_ext.errors import DurableExtError, service_code
from durable_ext.observe import OBSERVERS, observed

__all__ = ["EngineClient", "ServiceClient", "sdk_operation"]


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def sdk_operation(data: Mapping[str, Any]) -> Operation:
    """Convert an engine operation (epoch-ms wire dict) to the SDK's ``Operation``."""
    return Operation.from_dict(convert_timestamps(data, _dt))


@contextmanager
def _translated(kind: type[CheckpointError] | type[GetExecutionStateError]) -> Iterator[None]:
    """Turn engine errors into the SDK's error classes, classified as the service does."""
    try:
        yield
    except DurableExtError as exc:
        known = service_code(exc)
        # Retryable codes end the invocation (the runtime re-invokes with a fresh token);
        # the others fail the execution, as the service's answers do.
        category = (
            DurableApiErrorCategory.INVOCATION if known.retryable
            else DurableApiErrorCategory.EXECUTION
        )
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        metadata: AwsErrorMetadata = {
            "RequestId": None,
            "HostId": None,
            "HTTPStatusCode": known.status,
            "HTTPHeaders": None,
            "RetryAttempts": None,
        }
        raise kind(
            message, category, {"Code": known.code, "Message": message}, metadata
        ) from exc


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
            obs = observed(durable_execution_arn) if OBSERVERS else None
            if obs is None:
                token, ops, marker = self._checkpoint(
                    durable_execution_arn, checkpoint_token, updates, client_token
                )
            else:
                token, ops, marker = obs.commit(
                    "checkpoint", durable_execution_arn, len(updates),
                    lambda: self._checkpoint(durable_execution_arn, checkpoint_token,
                                             updates, client_token))
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
