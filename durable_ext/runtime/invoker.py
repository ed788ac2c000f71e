"""Running one invocation of a handler: in this process, or in a fresh child process."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aws_durable_execution_sdk_python.execution import (
    DurableExecutionInvocationInputWithClient,
    InitialExecutionState,
)
from aws_durable_execution_sdk_python.lambda_service import OperationUpdate

from durable_ext.engine import Engine, InvocationInput
from durable_ext.errors import (
    DurableExtError,
    InvalidCheckpointTokenError,
    error_for_code,
    service_code,
)
from durable_ext.runtime.client import EngineClient, ServiceClient, sdk_operation
from durable_ext.runtime.handlers import HandlerRef
from durable_ext.runtime.trace_env import set_process_trace, trace_scope

__all__ = [
    "FencedEngine",
    "LambdaContextStub",
    "Running",
    "error_of",
    "invoke_in_process",
    "invoke_in_subprocess",
]

Outcome = tuple[dict[str, Any] | None, dict[str, Any] | None]
"""``(output, error)``: the handler's output, or the error of a failed invocation."""


@dataclass
class LambdaContextStub:
    """The parts of the Lambda context object handlers and the SDK read."""

    aws_request_id: str
    function_name: str = ""
    invoked_function_arn: str = ""
    function_version: str = "$LATEST"
    memory_limit_in_mb: str = "1024"
    log_group_name: str | None = None
    log_stream_name: str | None = None
    tenant_id: str | None = None
    client_context: dict[str, Any] | None = None
    identity: dict[str, Any] | None = None
    deadline_ms: int = field(default_factory=lambda: int(time.time() * 1000) + 900_000)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out."""
        return max(0, self.deadline_ms - int(time.time() * 1000))

    def log(self, msg: str) -> None:
        """Write to stdout like the Lambda runtime."""
        print(msg)


def error_of(exc: BaseException) -> dict[str, Any]:
    """Describe ``exc`` as an ErrorObject (wire keys)."""
    return {
        "ErrorType": type(exc).__name__,
        "ErrorMessage": str(exc),
        "StackTrace": traceback.format_exception(exc)[-8:],
    }


def _event(inv_event: Mapping[str, Any], client: Any) -> DurableExecutionInvocationInputWithClient:
    # sdk_operation converts without the deep copy of Operation.from_json_dict: replaying
    # an execution of N operations costs N conversions per invocation.
    state = inv_event.get("InitialExecutionState") or {}
    return DurableExecutionInvocationInputWithClient(
        durable_execution_arn=inv_event["DurableExecutionArn"],
        checkpoint_token=inv_event["CheckpointToken"],
        initial_execution_state=InitialExecutionState(
            operations=[sdk_operation(op) for op in state.get("Operations") or []],
            next_marker=state.get("NextMarker", ""),
        ),
        updated_operation_ids=list(inv_event.get("UpdatedOperationIds") or []),
        service_client=client,
    )


# The SDK's checkpoint thread polls for its stop signal every 100 ms (a private constant),
# and that poll is what ending an invocation costs: 100 ms per invocation, the largest
# part of a replay-heavy execution. While the runtime runs an invocation it polls every
# 2 ms instead; the SDK reads the constant on each wait, so the change is immediate and is
# undone when the last invocation of this process ends.
_FAST_STOP_POLL_SECONDS = 0.002
_SDK_STOP_POLL = "_STOP_SIGNAL_POLL_SECONDS"
_poll_lock = threading.Lock()
_poll_users = 0
_poll_saved: Any = None


def _sdk_state_module() -> Any:
    module = sys.modules.get("aws_durable_execution_sdk_python.state")
    return module if module is not None and hasattr(module, _SDK_STOP_POLL) else None


@contextmanager
def fast_sdk_stop() -> Iterator[None]:
    """Shorten the SDK's stop poll while at least one invocation runs in this process."""
    global _poll_users, _poll_saved
    module = _sdk_state_module()
    if module is None:
        yield
        return
    with _poll_lock:
        if _poll_users == 0:
            _poll_saved = getattr(module, _SDK_STOP_POLL)
            setattr(module, _SDK_STOP_POLL, _FAST_STOP_POLL_SECONDS)
        _poll_users += 1
    try:
        yield
    finally:
        with _poll_lock:
            _poll_users -= 1
            if _poll_users == 0:
                setattr(module, _SDK_STOP_POLL, _poll_saved)


def _tune_sdk_for_one_invocation() -> None:
    # A worker process lives for one invocation: no need to restore anything.
    module = _sdk_state_module()
    if module is not None:
        setattr(module, _SDK_STOP_POLL, _FAST_STOP_POLL_SECONDS)


def invoke_in_process(
    handler: Callable[..., Any], inv: InvocationInput, engine: Engine, context: LambdaContextStub
) -> Outcome:
    """Run ``handler`` on this thread with an :class:`EngineClient`."""
    try:
        with fast_sdk_stop(), trace_scope(inv.trace_header):
            out = handler(_event(inv.to_event(), EngineClient(engine)), context)
    except Exception as exc:
        return None, error_of(exc)
    return dict(out), None


@dataclass
class Running:
    """One invocation this runtime runs; ``lost`` is set once its lease is gone."""

    arn: str
    invocation_id: str
    lost: threading.Event = field(default_factory=threading.Event)



class FencedEngine:
    """The engine as one invocation sees it: refused once its lease is lost.

    The engine already refuses the tokens of a superseded invocation; this view refuses
    them without a round trip once the runtime knows, and counts every refusal.
    """

    def __init__(self, engine: Engine, running: Running, count: Callable[[str], None]) -> None:
        self._engine = engine
        self._running = running
        self._count = count

    def _guard(self, call: Callable[[], Any]) -> Any:
        if self._running.lost.is_set():
            self._count("fenced")
            raise InvalidCheckpointTokenError(
                "Invalid checkpoint token: the invocation's lease was lost"
            )
        try:
            return call()
        except InvalidCheckpointTokenError:
            self._count("fenced")
            raise

    def checkpoint(
        self, arn: str, token: str, updates: Sequence[Mapping[str, Any]],
        client_token: str | None = None,
    ) -> Any:
        """Engine.checkpoint, unless the lease is lost."""
        return self._guard(lambda: self._engine.checkpoint(arn, token, updates, client_token))

    def get_state(
        self, arn: str, token: str, marker: str | None, max_items: int | None = None
    ) -> Any:
        """Engine.get_state, unless the lease is lost."""
        return self._guard(lambda: self._engine.get_state(arn, token, marker, max_items))


# ---------------------------------------------------------------- process isolation



class _PipeClient(ServiceClient):
    """The child's ``DurableServiceClient``: every call is a request to the parent."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def _call(self, *msg: Any) -> Any:
        with self._lock:
            self._conn.send(msg)
            reply = self._conn.recv()
        if reply[0] == "ok":
            return reply[1]
        raise error_for_code(reply[1], reply[2])

    def _checkpoint(
        self, arn: str, token: str, updates: list[OperationUpdate], client_token: str | None
    ) -> tuple[str | None, Sequence[Mapping[str, Any]], str | None]:
        new_token, ops, marker = self._call(
            "checkpoint", arn, token, [u.to_dict() for u in updates], client_token
        )
        return new_token, ops, marker

    def _state(
        self, arn: str, token: str, marker: str, max_items: int
    ) -> tuple[Sequence[Mapping[str, Any]], str | None]:
        ops, next_marker = self._call("state", arn, token, marker, max_items)
        return ops, next_marker


def _child_main(
    conn: multiprocessing.connection.Connection,
    ref: HandlerRef,
    inv_event: dict[str, Any],
    context: LambdaContextStub,
    trace: str | None = None,
) -> None:
    _tune_sdk_for_one_invocation()
    set_process_trace(trace)  # this process runs this one invocation
    try:
        handler = ref.load()
        out = handler(_event(inv_event, _PipeClient(conn)), context)
        conn.send(("done", dict(out), None))
    except Exception as exc:
        conn.send(("done", None, error_of(exc)))
    conn.close()


def _serve(engine: Engine, msg: tuple[Any, ...]) -> tuple[Any, ...]:
    # Errors cross the pipe as the service's code and message, read back by the child.
    try:
        if msg[0] == "checkpoint":
            res = engine.checkpoint(msg[1], msg[2], msg[3], msg[4])
            return ("ok", (res.token, res.operations, res.next_marker))
        if msg[0] == "state":
            return ("ok", engine.get_state(msg[1], msg[2], msg[3], msg[4]))
        return ("err", "InvalidParameterValueException", f"unknown request {msg[0]!r}")
    except DurableExtError as exc:
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        return ("err", service_code(exc).code, message)
    except Exception as exc:
        return ("err", "ServiceException", f"{type(exc).__name__}: {exc}")


_CTX_LOCK = threading.Lock()
_CTX: Any = None


def _mp_context() -> Any:
    global _CTX
    with _CTX_LOCK:
        if _CTX is None:
            # fork: the child starts from the parent's already-imported SDK and handler
            # modules, so a process per invocation costs milliseconds and the main module
            # is not re-run. The runtime forks from its driving thread with no SDK threads
            # alive. Elsewhere, spawn.
            methods = multiprocessing.get_all_start_methods()
            _CTX = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        return _CTX


def invoke_in_subprocess(
    ref: HandlerRef, inv: InvocationInput, engine: Engine, context: LambdaContextStub,
    timeout: float,
) -> Outcome:
    """Run the handler ``ref`` names in a new process; a crash ends only this invocation."""
    ctx = _mp_context()
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child_main, daemon=True,
                       args=(child, ref, inv.to_event(), context, inv.trace_header))
    proc.start()
    child.close()
    deadline = time.monotonic() + timeout
    outcome: Outcome | None = None
    try:
        while outcome is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.join()
                return None, {
                    "ErrorType": "Sandbox.Timedout",
                    "ErrorMessage": f"Task timed out after {timeout:.2f} seconds",
                }
            if not parent.poll(0.05):
                if not proc.is_alive() and not parent.poll(0):
                    break
                continue
            try:
                msg = parent.recv()
            except (EOFError, OSError):
                break
            if msg[0] == "done":
                outcome = (msg[1], msg[2])
            else:
                reply = _serve(engine, msg)
                try:
                    parent.send(reply)
                except (BrokenPipeError, OSError):
                    break  # the worker died after asking; its invocation is over
    finally:
        parent.close()
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if outcome is not None:
        return outcome
    code = proc.exitcode
    how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
    return None, {
        "ErrorType": "Runtime.ExitError",
        "ErrorMessage": f"RequestId: {inv.request_id} Error: Runtime exited with {how}",
    }
