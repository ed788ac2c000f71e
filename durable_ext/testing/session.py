"""How the pytest plugin runs a handler: step mocks, always-replay, and what it found.

:func:`wrap_handler` gives the runtime a handler that runs the real one with a
:class:`TestSession` watching it through the replayer's seams:

* **step mocks**: a step whose name has a mock runs the mock instead of its body;
* **always-replay**: each invocation is cut after every operation (the next one's START
  suspends it) and the handler runs again from the top, within the same invocation,
  on the operations checkpointed so far, so every operation is replayed as many times
  as it has successors, and a replay that takes another path fails on the first run;
* **culprits**: with always-replay, reads of the clock, randomness, uuids and the
  environment from the handler's code outside steps are recorded with their line;
* every operation's serdes is noted, so a test can decode results as the handler does.

Mismatches the SDK finds (``NonDeterministicExecutionError``) are recorded with the
user's line whether or not always-replay is on.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from aws_durable_execution_sdk_python.exceptions import (
    NonDeterministicExecutionError,
    SuspendExecution,
)
from aws_durable_execution_sdk_python.execution import (
    DurableExecutionInvocationInputWithClient,
    InitialExecutionState,
)
from aws_durable_execution_sdk_python.identifier import OperationIdentifier
from aws_durable_execution_sdk_python.lambda_service import (
    CheckpointOutput,
    Operation,
    OperationType,
    OperationUpdate,
    StateOutput,
)

from durable_ext.errors import ReplayDivergenceError
from durable_ext.testing import _seams
from durable_ext.testing._source import Location, user_location
from durable_ext.testing.culprits import Culprit, CulpritWatch, stepping

__all__ = ["Finding", "TestSession", "wrap_handler"]

# Operations that are work of their own; contexts only hold them.
_LEAVES = frozenset({OperationType.STEP, OperationType.WAIT, OperationType.CALLBACK,
                     OperationType.CHAINED_INVOKE})
_MAX_RUNS = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """Something a test run found: a replay mismatch or a culprit, with its line."""

    kind: str  # "mismatch" or "culprit"
    message: str
    location: Location | None = None

    def __str__(self) -> str:
        return f"{self.message}\n      at {self.location}" if self.location else self.message


class TestSession:
    """The plugin's watch over one handler: mocks, always-replay, findings, serdes seen."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, always_replay: bool = False,
                 mocks: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.always_replay = always_replay
        self.mocks: Mapping[str, Callable[..., Any]] = mocks if mocks is not None else {}
        self.watch = CulpritWatch() if always_replay else None
        self.findings: list[Finding] = []
        self.runs = 0
        self.serdes: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._leaves = 0
        self._forced = False

    # seams ------------------------------------------------------------------
    def on_validate(self, identifier: OperationIdentifier, checkpoint: Operation,
                    error: NonDeterministicExecutionError | None) -> None:
        """Record the SDK's mismatch with the user's line."""
        if error is None:
            return
        with self._lock:
            self.findings.append(Finding(
                "mismatch",
                f"replay diverges at operation {identifier.operation_id[:12]}: recorded "
                f"{checkpoint.operation_type.value} {checkpoint.name!r}, the handler now runs "
                f"{identifier.operation_type.value} {identifier.name!r} ({error})",
                user_location()))

    def before_checkpoint(self, update: OperationUpdate | None) -> None:
        """With always-replay, suspend at the second new operation of a run."""
        if not self.always_replay or update is None or update.action.value != "START" \
                or update.operation_type not in _LEAVES:
            return
        with self._lock:
            self._leaves += 1
            if self._leaves == 1:
                return
            self._forced = True
        raise SuspendExecution("always-replay: suspended after an operation")

    def user_function(self, function: Callable[..., Any],
                      identifier: OperationIdentifier) -> Callable[..., Any]:
        """Note the operation's serdes; run a step's mock (or body) unwatched."""
        self._note_serdes(identifier, _caller_frame())
        if identifier.operation_type is not OperationType.STEP:
            return function
        mock = self.mocks.get(identifier.name or "")
        body = mock if mock is not None else function

        @functools.wraps(function)
        def step_body(*args: Any, **kwargs: Any) -> Any:
            with stepping():
                return body(*args, **kwargs)

        return step_body

    def _note_serdes(self, identifier: OperationIdentifier, frame: FrameType | None) -> None:
        # The SDK's executor about to run the function holds the operation's config.
        executor = _executor_of(identifier, frame)
        serdes = getattr(getattr(executor, "config", None), "serdes", None)
        arn = getattr(getattr(executor, "state", None), "durable_execution_arn", None)
        if serdes is not None and arn:
            self.serdes[(str(arn), identifier.operation_id)] = serdes

    # runs --------------------------------------------------------------------
    def _begin(self) -> None:
        with self._lock:
            self._leaves = 0
            self._forced = False
            self.runs += 1

    @property
    def culprits(self) -> list[Culprit]:
        """Reads of the outside world found outside steps."""
        return self.watch.culprits if self.watch is not None else []

    def problems(self) -> list[str]:
        """Every finding, as text: mismatches first, then culprits."""
        out = [str(f) for f in self.findings]
        out += [str(c) for c in self.culprits]
        return out

    def check(self) -> None:
        """Raise :class:`~durable_ext.errors.ReplayDivergenceError` if anything was found."""
        problems = self.problems()
        if problems:
            mode = "always-replay" if self.always_replay else "replay"
            raise ReplayDivergenceError(
                f"the handler is not replay-safe ({mode}, {self.runs} runs):\n"
                + "\n".join(f"  - {p}" for p in problems))


def _caller_frame() -> FrameType | None:
    # 0: here, 1: user_function, 2: the seam; the SDK's code is further out
    try:
        return sys._getframe(3)
    except ValueError:
        return None


def _executor_of(identifier: OperationIdentifier, frame: FrameType | None) -> Any:
    """Return the SDK object running ``identifier`` (its ``operation_identifier``), if near."""
    f = frame
    for _ in range(4):
        if f is None:
            return None
        candidate = f.f_locals.get("self")
        if getattr(candidate, "operation_identifier", None) is identifier:
            return candidate
        f = f.f_back
    return None


class _SessionClient:
    """The service client a watched run uses: the runtime's, noting state for reruns."""

    def __init__(self, inner: Any, session: TestSession,
                 event: DurableExecutionInvocationInputWithClient) -> None:
        self.replay_session = session
        self._inner = inner
        self.token: str | None = event.checkpoint_token
        self.operations: dict[str, Operation] = {}
        self._keys: list[int] = []
        # every registered operation stays alive until released: its id is its key
        self._held: list[Operation] = []
        self._note(event.initial_execution_state.operations)

    def _note(self, ops: list[Operation]) -> None:
        for op in ops:
            self.operations[op.operation_id] = op
        self._held += ops
        self._keys += _seams.register_operations(self.replay_session, ops)

    def checkpoint(self, durable_execution_arn: str, checkpoint_token: str,
                   updates: list[OperationUpdate], client_token: str | None) -> CheckpointOutput:
        """CheckpointDurableExecution through the runtime's client."""
        out: CheckpointOutput = self._inner.checkpoint(
            durable_execution_arn=durable_execution_arn, checkpoint_token=checkpoint_token,
            updates=updates, client_token=client_token)
        self.token = out.checkpoint_token
        self._note(list(out.new_execution_state.operations))
        return out

    def get_execution_state(self, durable_execution_arn: str, checkpoint_token: str,
                            next_marker: str, max_items: int = 1000) -> StateOutput:
        """GetDurableExecutionState through the runtime's client."""
        out: StateOutput = self._inner.get_execution_state(
            durable_execution_arn=durable_execution_arn, checkpoint_token=checkpoint_token,
            next_marker=next_marker, max_items=max_items)
        self._note(list(out.operations))
        return out

    def release(self) -> None:
        _seams.unregister_operations(self._keys)
        self._keys.clear()
        self._held.clear()


def wrap_handler(handler: Callable[..., Any], session: TestSession) -> Callable[..., Any]:
    """Return ``handler`` run under ``session`` (what the test runtime registers)."""
    _seams.install()

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        if not isinstance(event, DurableExecutionInvocationInputWithClient):
            return handler(event, context)  # not an invocation of ours: run as is
        client = _SessionClient(event.service_client, session, event)
        current = dataclasses.replace(event, service_client=client)
        try:
            for _ in range(_MAX_RUNS):
                session._begin()
                if session.watch is not None:
                    with session.watch.watching():
                        output = handler(current, context)
                else:
                    output = handler(current, context)
                if not session._forced or client.token is None:
                    return output
                # replay from the top on everything checkpointed so far
                current = DurableExecutionInvocationInputWithClient(
                    durable_execution_arn=event.durable_execution_arn,
                    checkpoint_token=client.token,
                    initial_execution_state=InitialExecutionState(
                        operations=list(client.operations.values()), next_marker=""),
                    updated_operation_ids=[],
                    service_client=client,
                )
            raise RuntimeError(f"always-replay: no progress after {_MAX_RUNS} runs")
        finally:
            client.release()

    return run
