"""The three places the replayer watches the SDK from, for the executions it runs.

A replay must see every operation the handler reaches, before anything of it runs:

* ``OperationIdentifier.validate_checkpoint``: the SDK compares each operation's
  identity with its checkpoint here; the replayer records which recorded operations
  were reached and, on a mismatch, the user's line that made it;
* ``ExecutionState.create_checkpoint``: every new operation starts here, on its own
  thread, before its body runs (an at-least-once step's START is asynchronous, so the
  service client sees it too late);
* ``ExecutionState.wrap_user_function``: every step body, ``wait_for_condition`` check
  and child-context body runs through it.

Each wrapper asks the execution's service client (``replay_session`` attribute) or the
checkpoint's registered session whether one of our sessions runs that execution; every
other execution goes straight to the SDK's own method. The wrappers are installed on
first use and kept: installing twice is a no-op.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aws_durable_execution_sdk_python.exceptions import NonDeterministicExecutionError
from aws_durable_execution_sdk_python.identifier import OperationIdentifier
from aws_durable_execution_sdk_python.lambda_service import Operation, OperationUpdate
from aws_durable_execution_sdk_python.state import ExecutionState

from durable_ext.errors import ConfigError

__all__ = ["Session", "install", "register_operations", "session_of", "unregister_operations"]

_MARK = "__durable_ext_seam__"
_install_lock = threading.Lock()
_by_operation: dict[int, Session] = {}
_registry_lock = threading.Lock()


class Session(Protocol):
    """What a replay or test session decides at each seam."""

    def on_validate(
        self, identifier: OperationIdentifier, checkpoint: Operation,
        error: NonDeterministicExecutionError | None,
    ) -> None:
        """Note that an operation met its checkpoint (``error``: the SDK found a mismatch)."""
        ...

    def before_checkpoint(self, update: OperationUpdate | None) -> None:
        """Decide on an update about to be queued; raise ``SuspendExecution`` to stop there."""
        ...

    def user_function(
        self, function: Callable[..., Any], identifier: OperationIdentifier
    ) -> Callable[..., Any]:
        """Return what runs in place of a step body, check or child body."""
        ...


def session_of(state: Any) -> Session | None:
    """Return the session running the execution of ``state`` (an ``ExecutionState``)."""
    client = getattr(state, "_service_client", None)
    return getattr(client, "replay_session", None)


def register_operations(session: Session, operations: Iterable[Operation]) -> list[int]:
    """Route the checks of these operations' checkpoints to ``session``; returns their keys.

    The caller keeps the operations alive while they are registered (their ids are the
    keys) and unregisters them when its invocation ends.
    """
    keys = [id(op) for op in operations]
    with _registry_lock:
        for key in keys:
            _by_operation[key] = session
    return keys


def unregister_operations(keys: Iterable[int]) -> None:
    """Forget operations registered by :func:`register_operations`."""
    with _registry_lock:
        for key in keys:
            _by_operation.pop(key, None)


def _validate(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def validate_checkpoint(self: OperationIdentifier, checkpoint: Operation | None) -> None:
        session = _by_operation.get(id(checkpoint)) if checkpoint is not None else None
        if session is None:
            original(self, checkpoint)
            return
        try:
            original(self, checkpoint)
        except NonDeterministicExecutionError as exc:
            session.on_validate(self, checkpoint, exc)  # type: ignore[arg-type]
            raise
        session.on_validate(self, checkpoint, None)  # type: ignore[arg-type]

    return validate_checkpoint


def _create_checkpoint(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def create_checkpoint(
        self: ExecutionState, operation_update: OperationUpdate | None = None,
        is_sync: bool = True,
    ) -> None:
        session = session_of(self)
        if session is not None:
            session.before_checkpoint(operation_update)
        original(self, operation_update, is_sync)

    return create_checkpoint


def _wrap_user_function(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrap_user_function(
        self: ExecutionState, user_function: Callable[..., Any],
        operation_identifier: OperationIdentifier, *args: Any, **kwargs: Any,
    ) -> Any:
        session = session_of(self)
        if session is not None:
            user_function = session.user_function(user_function, operation_identifier)
        return original(self, user_function, operation_identifier, *args, **kwargs)

    return wrap_user_function


_SEAMS: tuple[tuple[type, str, Callable[[Any], Any]], ...] = (
    (OperationIdentifier, "validate_checkpoint", _validate),
    (ExecutionState, "create_checkpoint", _create_checkpoint),
    (ExecutionState, "wrap_user_function", _wrap_user_function),
)


def install() -> None:
    """Install the seams (once per process).

    Raises:
        ConfigError: This SDK lacks one of the methods the replayer watches.

    """
    with _install_lock:
        for owner, name, make in _SEAMS:
            current = owner.__dict__.get(name)
            if current is None:
                raise ConfigError(
                    f"replay needs {owner.__module__}.{owner.__qualname__}.{name}, which this "
                    "aws-durable-execution-sdk-python does not have; install a 3.x release"
                )
            if getattr(current, _MARK, False):
                continue
            wrapper = make(current)
            setattr(wrapper, _MARK, True)
            setattr(owner, name, wrapper)
