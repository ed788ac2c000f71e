"""The control plane: what tools do to executions, wherever they live.

:class:`ControlPlane` is what the CLI, the pytest plugin and the HTTP API program
against: start, describe, history, list, stop, pause, resume, delete, callbacks, and
:meth:`~ControlPlane.settle`
(let an execution run on until it needs outside input). Two implementations:

* :class:`~durable_ext.runtime.Runtime` for executions in a checkpoint store
  (``memory://``, ``file://``, ``redis://``, ``dynamodb://``), which it also runs;
* :class:`~durable_ext.runtime.lambda_plane.LambdaControlPlane` for executions of a
  function deployed on AWS Lambda (``lambda://FUNCTION``), which Lambda runs.

:func:`open_control_plane` opens either from a URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from durable_ext.backends import DEFAULT_BACKEND
from durable_ext.backends.store import Store

__all__ = ["ControlPlane", "open_control_plane"]


@runtime_checkable
class ControlPlane(Protocol):
    """Start, inspect, complete and stop durable executions (the Lambda API's shapes)."""

    def register(self, function_name: str, handler: Any, *, durable: bool = True) -> None:
        """Serve ``handler`` as ``function_name`` (refused where functions are deployed)."""
        ...

    def start(
        self,
        function_name: str,
        input: Any = None,
        name: str | None = None,
        execution_timeout: int | None = None,
    ) -> str:
        """Start an execution (idempotent by ``name``); its ARN."""
        ...

    def settle(self, arn: str, timeout: float = 60) -> dict[str, Any]:
        """Let the execution run on until it ends or waits for outside input; describe it."""
        ...

    def execution_of_callback(self, callback_id: str) -> str | None:
        """Return the execution a callback id belongs to, when the id says."""
        ...

    def describe(self, arn: str) -> dict[str, Any]:
        """GetDurableExecution."""
        ...

    def history(
        self,
        arn: str,
        include_execution_data: bool = True,
        max_items: int | None = None,
        marker: str | None = None,
        reverse_order: bool = False,
    ) -> dict[str, Any]:
        """GetDurableExecutionHistory."""
        ...

    def list_executions(
        self,
        function_name: str | None = None,
        status: str | None = None,
        max_items: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """ListDurableExecutionsByFunction."""
        ...

    def send_callback_success(self, callback_id: str, result: bytes | str | None = None) -> None:
        """SendDurableExecutionCallbackSuccess (the result is sent verbatim)."""
        ...

    def send_callback_failure(
        self, callback_id: str, error: Mapping[str, Any] | None = None
    ) -> None:
        """SendDurableExecutionCallbackFailure."""
        ...

    def send_callback_heartbeat(self, callback_id: str) -> None:
        """SendDurableExecutionCallbackHeartbeat."""
        ...

    def stop(self, arn: str, error: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """StopDurableExecution."""
        ...

    def pause(
        self,
        arn: str,
        reason: str | None = None,
        client_token: str | None = None,
        execution_timeout_paused: bool = True,
    ) -> None:
        """PauseDurableExecution (accepted; the status changes as the service processes it)."""
        ...

    def resume(
        self, arn: str, reason: str | None = None, client_token: str | None = None
    ) -> None:
        """ResumeDurableExecution."""
        ...

    def delete(self, arn: str) -> dict[str, Any]:
        """DeleteDurableExecution: ``{"DeletionRequestTimestamp": datetime}``."""
        ...

    def close(self) -> None:
        """Release clients, stores and marks."""
        ...

    def __enter__(self) -> ControlPlane: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def open_control_plane(
    url: str | Store | None = None, *, client: Any = None, **runtime_options: Any
) -> ControlPlane:
    """Open the control plane of ``url``.

    ``lambda://FUNCTION[:QUALIFIER]?region=...`` opens executions in AWS Lambda
    (``client=`` injects a boto3 Lambda client); anything else (a store URL or a Store,
    default ``$DURABLE_EXT_BACKEND`` or ``file://.durable``) opens a
    :class:`~durable_ext.runtime.Runtime` with ``runtime_options``.

    Example:
        >>> with open_control_plane("memory://") as plane:
        ...     plane.list_executions()["DurableExecutions"]
        []

    """
    if url is None:
        url = os.environ.get("DURABLE_EXT_BACKEND") or DEFAULT_BACKEND
    if isinstance(url, str) and url.split("://", 1)[0].lower() == "lambda":
        from durable_ext.runtime.lambda_plane import LambdaControlPlane

        if runtime_options:
            raise TypeError(
                f"lambda:// takes only client=, got {sorted(runtime_options)}"
            )
        return LambdaControlPlane(url, client=client)
    from durable_ext.runtime.runtime import Runtime

    if client is not None:
        raise TypeError("client= is for lambda:// only")
    return Runtime(url, **runtime_options)
