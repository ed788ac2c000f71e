"""Pieces shared by the conformance handlers: serdes, retry presets, crash and marker helpers."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from aws_durable_execution_sdk_python.config import Duration, JitterStrategy
from aws_durable_execution_sdk_python.context import DurableContext
from aws_durable_execution_sdk_python.lambda_service import OperationStatus
from aws_durable_execution_sdk_python.retries import (
    RetryStrategyConfig,
    create_retry_strategy,
)
from aws_durable_execution_sdk_python.serdes import SerDes, SerDesContext
from aws_durable_execution_sdk_python.types import StepContext

from conformance import logsink


def fixed_retry(max_attempts: int, delay: int = 1) -> Any:
    """Retry strategy with a constant delay and no jitter, so RetryDetails are exact."""
    return create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=max_attempts,
            initial_delay=Duration.from_seconds(delay),
            backoff_rate=1,
            jitter_strategy=JitterStrategy.NONE,
        )
    )


NO_RETRY = fixed_retry(1)


def greet(name: Any) -> str:
    """The greeting most step cases return."""
    return f"Hello, {name}!"


def constant(value: Any) -> Any:
    """A step body returning ``value`` (a named function, so histories carry a Name)."""

    def body(_: StepContext) -> Any:
        return value

    return body


def fail(message: str = "step failed") -> Any:
    """A step body that always raises."""

    def body(_: StepContext) -> Any:
        raise RuntimeError(message)

    return body


class UpperSerDes(SerDes[Any]):
    """Serializes to JSON and upper-cases the text, so the stored payload shows it ran."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return json.dumps(value).upper()

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        return json.loads(data)


class RawUpperSerDes(SerDes[Any]):
    """Stores a string upper-cased and unquoted; reads the raw text back as a string."""

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        return str(value).upper()

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        return data


def arn_of(ctx: DurableContext) -> str:
    """The execution ARN, which tags every log record of the execution."""
    return ctx.execution_context.durable_execution_arn


def crash() -> None:
    """End the process at once, as ``process.exit`` does in the suite's Node handlers."""
    os._exit(1)


def first_time(ctx: DurableContext, key: str) -> bool:
    """True exactly once per execution and key, across processes (a marker file)."""
    marker = logsink.execution_dir(arn_of(ctx)) / f"marker-{key}"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def wait_until_started(ctx: DurableContext, name: str, timeout: float = 10.0) -> None:
    """Block until the service has acknowledged the START of the operation ``name``.

    The suite's Node handler crashes after its START checkpoints reached the service.  An
    AT_LEAST_ONCE step's START is sent in the background, so the step body waits until the
    checkpoint response has put the operation, STARTED, into the SDK's local state.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for op in list(ctx.state.operations.values()):
            if op.name == name and op.status is OperationStatus.STARTED:
                return
        time.sleep(0.005)
    msg = f"START of {name!r} was not acknowledged within {timeout} s"
    raise RuntimeError(msg)
