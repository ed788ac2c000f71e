"""The replayer: run a recorded execution against today's handler code, write nothing.

:func:`replay` hands the handler the recorded operations as one invocation would get
them and lets the SDK replay them. Every operation the handler reaches is checked
against the recording by the SDK's own identity rule (id, type, subtype, name,
parent); the replay stops, without running anything, where the recording ends (a new
operation, or a step the recording has not finished). The report names the first
operation that differs and the user's line that reached it.

Nothing goes back to where the execution lives: the replay's service client answers
the SDK from memory, and bodies of steps are never run.

Example::

    from durable_ext.testing import replay
    from orders import handler

    replay("exported.json", handler)              # raises ReplayDivergenceError on drift
    result = replay(run, handler, check=False)    # a ReplayResult to inspect
    print(result.report())

"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python.exceptions import (
    NonDeterministicExecutionError,
    SuspendExecution,
)
from aws_durable_execution_sdk_python.execution import (
    DurableExecutionInvocationInputWithClient,
    InitialExecutionState,
)
from aws_durable_execution_sdk_python.identifier import OperationIdentifier, OperationIdNamespace
from aws_durable_execution_sdk_python.lambda_service import (
    CheckpointOutput,
    CheckpointUpdatedExecutionState,
    Operation,
    OperationType,
    OperationUpdate,
    StateOutput,
)

from durable_ext.errors import ConfigError, ReplayDivergenceError
from durable_ext.runtime.client import sdk_operation
from durable_ext.runtime.invoker import LambdaContextStub, fast_sdk_stop
from durable_ext.testing import _seams
from durable_ext.testing._source import Location, user_location
from durable_ext.testing.recording import Recording

__all__ = [
    "BatchReport",
    "Divergence",
    "Identity",
    "ReplayResult",
    "load_recording",
    "replay",
    "replay_many",
]

_STEP_BODY_TYPES = frozenset({OperationType.STEP})
_ACTION_STATUS = {"START": "STARTED", "SUCCEED": "SUCCEEDED", "FAIL": "FAILED",
                  "RETRY": "PENDING", "CANCEL": "CANCELLED"}
_RUNTIME_FAILURES = ("Runtime.", "Sandbox.")


# ---------------------------------------------------------------- what a report says


@dataclass(frozen=True, slots=True)
class Identity:
    """An operation's identity, as the SDK compares it on replay."""

    id: str
    type: str
    name: str | None
    sub_type: str | None
    parent_id: str | None

    def __str__(self) -> str:
        kind = self.type.replace("_", " ").title().replace(" ", "")
        sub = f" ({self.sub_type})" if self.sub_type and self.sub_type != kind else ""
        return f"{kind}{sub} {self.name!r}" if self.name else f"{kind}{sub} (unnamed)"

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-able fields."""
        return {"Id": self.id, "Type": self.type, "Name": self.name,
                "SubType": self.sub_type, "ParentId": self.parent_id}

    @classmethod
    def of_record(cls, op: Mapping[str, Any]) -> Identity:
        """Identity of a recorded operation (wire shape)."""
        return cls(str(op["Id"]), str(op["Type"]), op.get("Name"), op.get("SubType"),
                   op.get("ParentId"))

    @classmethod
    def of_identifier(cls, ident: OperationIdentifier) -> Identity:
        """Identity of the operation the handler reaches now."""
        return cls(ident.operation_id, ident.operation_type.value, ident.name or None,
                   ident.sub_type, ident.parent_id or None)

    @classmethod
    def of_update(cls, u: OperationUpdate) -> Identity:
        """Identity of a START the handler is about to checkpoint."""
        return cls(u.operation_id, u.operation_type.value, u.name or None, u.sub_type,
                   u.parent_id or None)


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where today's handler leaves the recorded path.

    Attributes:
        kind: ``mismatch`` (another operation where the recording has one), ``extra``
            (an operation the recorded execution never ran), ``missing`` (a recorded
            operation the handler no longer reaches) or ``outcome`` (it ends otherwise).
        operation_id: The operation's id.
        message: One line saying what differs and where.
        recorded: The recorded operation, when there is one.
        current: The operation the handler reaches now, when there is one.
        location: The handler's line that reached it.
        path: Where the operation sits (``execution > Context 'x' > #2``).

    """

    kind: str
    operation_id: str
    message: str
    recorded: Identity | None = None
    current: Identity | None = None
    location: Location | None = None
    path: str = ""

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-able fields."""
        return {
            "Kind": self.kind, "OperationId": self.operation_id, "Message": self.message,
            "Path": self.path,
            "Recorded": self.recorded.to_dict() if self.recorded else None,
            "Current": self.current.to_dict() if self.current else None,
            "Location": self.location.to_dict() if self.location else None,
        }


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What replaying one recorded execution found.

    Attributes:
        arn: The recorded execution.
        recorded_status: Its status when recorded.
        status: How the replay's invocation ended (``SUCCEEDED``, ``FAILED``,
            ``PENDING``), or ``ERROR`` when the replay itself could not run.
        divergences: What differs, the first first; empty when the handler replays clean.
        stopped_at: Where the replay reached the end of the recording.
        notes: Differences that do not break a replay (a new result value...).
        error: Why the replay could not run, for status ``ERROR``.
        operations: How many recorded operations the handler reached.

    """

    arn: str
    recorded_status: str
    status: str
    divergences: tuple[Divergence, ...] = ()
    stopped_at: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None
    operations: int = 0

    @property
    def ok(self) -> bool:
        """Whether the handler replays the recording clean."""
        return not self.divergences and self.error is None

    @property
    def divergence(self) -> Divergence | None:
        """The first divergence, if any."""
        return self.divergences[0] if self.divergences else None

    def report(self) -> str:
        """Return a human-readable report."""
        head = f"replay of {self.arn} (recorded {self.recorded_status}): "
        if self.error is not None:
            lines = [head + f"could not replay: {self.error}"]
        elif self.divergences:
            lines = [head + f"DIVERGES ({len(self.divergences)})"]
            for d in self.divergences:
                lines.append(f"  - {d.message}")
                if d.location is not None:
                    lines.append(f"      at {d.location}")
        else:
            lines = [head + f"clean, {self.operations} recorded operations replayed, "
                     f"invocation {self.status}"]
        lines += [f"  stopped: {s}" for s in self.stopped_at]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def raise_for_divergence(self) -> ReplayResult:
        """Raise :class:`~durable_ext.errors.ReplayDivergenceError` unless clean."""
        if not self.ok:
            raise ReplayDivergenceError(self.report(), result=self)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-able fields."""
        return {
            "DurableExecutionArn": self.arn, "RecordedStatus": self.recorded_status,
            "Status": self.status, "Ok": self.ok, "Operations": self.operations,
            "Divergences": [d.to_dict() for d in self.divergences],
            "StoppedAt": list(self.stopped_at), "Notes": list(self.notes), "Error": self.error,
        }


# ---------------------------------------------------------------- positions and paths


class _Positions:
    """Operation id -> its number in its context, found with the SDK's own id rule."""

    def __init__(self, ops: Mapping[str, Mapping[str, Any]]) -> None:
        self._ops = ops
        self._counts: dict[str | None, int] = {}
        for op in ops.values():
            if op["Type"] != "EXECUTION":
                parent = op.get("ParentId")
                self._counts[parent] = self._counts.get(parent, 0) + 1
        self._tables: dict[str | None, dict[str, int]] = {}

    def number(self, op_id: str, parent: str | None) -> int | None:
        table = self._tables.get(parent)
        if table is None:
            space = OperationIdNamespace(prefix=parent)
            limit = self._counts.get(parent, 0) + 64
            # map and parallel branches count from 0, other operations from 1
            table = {space.create_id_for_step(n): n for n in range(0, limit + 1)}
            self._tables[parent] = table
        return table.get(op_id)

    def path(self, ident: Identity) -> str:
        """Return where ``ident`` sits: ``execution > Context 'x' #2 > #3``."""
        parts: list[str] = []
        number = self.number(ident.id, ident.parent_id)
        parts.append(f"#{number}" if number is not None else f"id {ident.id[:12]}")
        parent = ident.parent_id
        for _ in range(64):
            if not parent:
                break
            op = self._ops.get(parent)
            if op is None:
                parts.append(f"id {parent[:12]}")
                break
            pid = Identity.of_record(op)
            n = self.number(pid.id, pid.parent_id)
            parts.append(f"{pid} #{n}" if n is not None else str(pid))
            parent = pid.parent_id
        return " > ".join(["execution", *reversed(parts)])


# ---------------------------------------------------------------- the session


@dataclass
class _Stop:
    current: Identity
    location: Location | None
    reason: str  # "new" (an operation the recording lacks) or "body" (an unfinished step)


class _ReplaySession:
    """Watches one replay: which recorded operations are reached, where it stops."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.visible = recording.operation_index(visible=True)
        self.everything = recording.operation_index()
        self._positions: _Positions | None = None
        self.visited: set[str] = set()
        self.mismatch: tuple[Identity, Identity, Location | None, str] | None = None
        self.stops: list[_Stop] = []
        self._lock = threading.Lock()

    @property
    def positions(self) -> _Positions:
        # only reports need them: built on first use
        if self._positions is None:
            self._positions = _Positions(self.everything)
        return self._positions

    # seams ------------------------------------------------------------------
    def on_validate(self, identifier: OperationIdentifier, checkpoint: Operation,
                    error: NonDeterministicExecutionError | None) -> None:
        if error is None:
            self.visited.add(identifier.operation_id)  # a set add is atomic
            return
        with self._lock:
            self.visited.add(identifier.operation_id)
            if error is not None and self.mismatch is None:
                recorded = self.visible.get(identifier.operation_id) or self.everything.get(
                    identifier.operation_id)
                rec_id = Identity.of_record(recorded) if recorded else Identity(
                    checkpoint.operation_id, checkpoint.operation_type.value,
                    checkpoint.name, checkpoint.sub_type, checkpoint.parent_id)
                self.mismatch = (rec_id, Identity.of_identifier(identifier), user_location(),
                                 str(error))

    def before_checkpoint(self, update: OperationUpdate | None) -> None:
        if update is None or update.action.value != "START":
            return
        if update.operation_id in self.visible:
            return
        with self._lock:
            self.stops.append(_Stop(Identity.of_update(update), user_location(), "new"))
        raise SuspendExecution("replay: the recording ends before this operation")

    def user_function(self, function: Callable[..., Any],
                      identifier: OperationIdentifier) -> Callable[..., Any]:
        if identifier.operation_type not in _STEP_BODY_TYPES:
            return function  # a child context's body: orchestration, replayed as is
        session = self

        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            # A step the recording has not finished would run its body now: stop first.
            with session._lock:
                session.stops.append(
                    _Stop(Identity.of_identifier(identifier), user_location(), "body"))
            raise SuspendExecution("replay: the recording has not finished this step")

        return refuse

    # analysis ----------------------------------------------------------------
    def _context_closed(self, parent: str | None) -> tuple[bool, str]:
        if not parent:
            rec = self.recording
            error_type = str((rec.error or {}).get("ErrorType") or "")
            closed = rec.status == "SUCCEEDED" or (
                rec.status == "FAILED" and not error_type.startswith(_RUNTIME_FAILURES))
            return closed, f"the recorded execution ended {rec.status}"
        op = self.everything.get(parent)
        if op is None:
            return False, ""
        status = str(op.get("Status"))
        closed = status in ("SUCCEEDED", "FAILED")
        return closed, f"its context {Identity.of_record(op)} ended {status} in the recording"

    def analyse(self, status: str, output: Mapping[str, Any]) -> ReplayResult:
        rec = self.recording
        divergences: list[Divergence] = []
        stopped: list[str] = []
        notes: list[str] = []
        if self.mismatch is not None:
            recorded, current, location, text = self.mismatch
            divergences.append(self._mismatch(recorded, current, location, text))
        elif status == "FAILED" and _is_nondeterminism(output):
            msg = str((output.get("Error") or {}).get("ErrorMessage"))
            divergences.append(Divergence("mismatch", "", f"the SDK refused the replay: {msg}"))
        for stop in self.stops:
            path = self.positions.path(stop.current)
            if stop.reason == "body":
                stopped.append(f"{path}: {stop.current} is unfinished in the recording"
                               + (f" ({stop.location})" if stop.location else ""))
                continue
            closed, why = self._context_closed(stop.current.parent_id)
            if closed:
                divergences.append(Divergence(
                    "extra", stop.current.id,
                    f"{path}: the handler now starts {stop.current}, which the recorded "
                    f"execution never ran ({why})",
                    current=stop.current, location=stop.location, path=path))
            else:
                stopped.append(f"{path}: {stop.current} is beyond the recording"
                               + (f" ({stop.location})" if stop.location else ""))
        if not divergences:
            # a failure the recording never had explains the operations it then misses
            divergences += self._outcome(status, output, notes)
        if not divergences and (status in ("SUCCEEDED", "FAILED") or not self.stops):
            divergences += self._missing(status)
        return ReplayResult(
            arn=rec.arn, recorded_status=rec.status, status=status,
            divergences=tuple(divergences), stopped_at=tuple(stopped), notes=tuple(notes),
            operations=len(self.visited),
        )

    def _mismatch(self, recorded: Identity, current: Identity, location: Location | None,
                  text: str) -> Divergence:
        what = [f for f, a, b in (
            ("type", recorded.type, current.type),
            ("subtype", recorded.sub_type, current.sub_type),
            ("name", recorded.name, current.name),
            ("parent", recorded.parent_id, current.parent_id)) if (a or None) != (b or None)]
        path = self.positions.path(recorded)
        return Divergence(
            "mismatch", recorded.id,
            f"{path}: recorded {recorded}, the handler now runs {current} "
            f"({', '.join(what) or text} differs)",
            recorded=recorded, current=current, location=location, path=path)

    def _missing(self, status: str) -> list[Divergence]:
        out: list[Divergence] = []
        for op_id, op in self.visible.items():
            if op["Type"] == "EXECUTION" or op_id in self.visited:
                continue
            ident = Identity.of_record(op)
            path = self.positions.path(ident)
            how = "ended " + status if status != "PENDING" else "suspended"
            out.append(Divergence(
                "missing", op_id,
                f"{path}: the recording has {ident} ({op['Status']}) but the handler no "
                f"longer reaches it (the replay {how} first)",
                recorded=ident, path=path))
            break  # the first is the one to fix; the rest follow from it
        return out

    def _outcome(self, status: str, output: Mapping[str, Any],
                 notes: list[str]) -> list[Divergence]:
        rec = self.recording
        err = output.get("Error") or {}
        failure = f"{err.get('ErrorType')}: {err.get('ErrorMessage')}"
        if rec.status == "SUCCEEDED" and status == "FAILED":
            return [Divergence(
                "outcome", "",
                f"the recorded execution SUCCEEDED; replayed, the handler fails: {failure}")]
        if rec.status == "RUNNING" and status == "FAILED":
            # it went on past this point when recorded: the new code would fail it now
            return [Divergence(
                "outcome", "",
                f"the recorded execution is running; replayed, the handler fails it: "
                f"{failure}")]
        if rec.status == "SUCCEEDED" and status == "SUCCEEDED":
            now = output.get("Result")
            if now not in (None, "") and _json_differs(rec.result, now):
                notes.append(f"the result differs: recorded {_short(rec.result)}, "
                             f"replayed {_short(now)}")
        elif rec.status == "FAILED" and status == "SUCCEEDED":
            notes.append("the recorded execution FAILED; replayed, the handler succeeds")
        return []


def _is_nondeterminism(output: Mapping[str, Any]) -> bool:
    return "NonDeterministicExecutionError" in str((output.get("Error") or {}).get("ErrorType"))


def _json_differs(a: Any, b: Any) -> bool:
    try:
        return bool(json.loads(a) != json.loads(b))
    except (TypeError, ValueError):
        return bool(a != b)


def _short(text: Any, limit: int = 80) -> str:
    s = repr(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


# ---------------------------------------------------------------- the client


class _ReplayClient:
    """The SDK's ``DurableServiceClient`` for a replay: answers from memory, sends nothing."""

    def __init__(self, session: Any, wire: Iterable[Mapping[str, Any]],
                 operations: Sequence[Operation]) -> None:
        self.replay_session = session
        self._tokens = itertools.count(1)
        # read-only: an update copies the one operation it changes
        self._wire: dict[str, Mapping[str, Any]] = {str(op["Id"]): op for op in wire}
        self._keys: list[int] = []
        self._held: list[Operation] = list(operations)
        self._keys += _seams.register_operations(session, operations)

    def checkpoint(self, durable_execution_arn: str, checkpoint_token: str,
                   updates: list[OperationUpdate], client_token: str | None) -> CheckpointOutput:
        """Apply the updates to the in-memory copy; return the changed operations."""
        changed = [self._apply(u) for u in updates]
        fresh = [op for op in changed if op is not None]
        self._held += fresh
        self._keys += _seams.register_operations(self.replay_session, fresh)
        return CheckpointOutput(
            checkpoint_token=f"replay-{next(self._tokens)}",
            new_execution_state=CheckpointUpdatedExecutionState(operations=fresh,
                                                                next_marker=None),
        )

    def get_execution_state(self, durable_execution_arn: str, checkpoint_token: str,
                            next_marker: str, max_items: int = 1000) -> StateOutput:
        """Every operation is in the first page: nothing more to read."""
        return StateOutput(operations=[], next_marker=None)

    def _apply(self, u: OperationUpdate) -> Operation | None:
        if u.operation_type is OperationType.EXECUTION:
            return None
        wire = u.to_dict()
        data = dict(self._wire.get(u.operation_id) or {})
        data.update({k: wire[k] for k in ("Id", "Type", "ParentId", "Name", "SubType")
                     if k in wire})
        data["Status"] = _ACTION_STATUS.get(str(wire.get("Action")), "STARTED")
        if u.operation_type is OperationType.CONTEXT and wire.get("Payload") is not None:
            data["ContextDetails"] = {"Result": wire["Payload"]}
        data.setdefault("StartTimestamp", 0)
        self._wire[u.operation_id] = data
        return sdk_operation(data)

    def release(self) -> None:
        _seams.unregister_operations(self._keys)
        self._keys.clear()
        self._held.clear()


# ---------------------------------------------------------------- entry points


def load_recording(source: Any, plane: Any = None) -> Recording:
    """Turn what :func:`replay` accepts into a :class:`Recording`.

    ``source`` is a :class:`Recording`; a path to a history file; a history answer or
    its ``Events`` list; the pytest plugin's ``ExecutionRun`` (or any object with
    ``recording()``, or ``arn``, ``history()`` and ``describe()``); or an ARN or
    execution name read from ``plane``.

    Raises:
        ConfigError: ``source`` is none of these, or names nothing.

    """
    if isinstance(source, Recording):
        return source
    if isinstance(source, str) and plane is None and source.startswith("arn:"):
        raise ConfigError(f"{source} is an execution ARN: pass plane= (a control plane, "
                          "open_control_plane(url)) to read it from")
    if isinstance(source, Path) or (isinstance(source, str) and plane is None):
        return Recording.load(source)
    if isinstance(source, Mapping) and "Events" in source:
        return Recording.from_events(source["Events"], description=source.get("Execution"))
    if isinstance(source, list | tuple):
        return Recording.from_events(list(source))
    if callable(getattr(source, "recording", None)):
        recorded = source.recording()  # the plugin's ExecutionRun: read from its store
        if isinstance(recorded, Recording):
            return recorded
    if hasattr(source, "arn") and callable(getattr(source, "history", None)) \
            and callable(getattr(source, "describe", None)):
        return Recording.from_events(source.history(), description=source.describe())
    if isinstance(source, str):
        return Recording.from_execution(plane, _find_arn(plane, source))
    raise ConfigError(
        f"cannot replay {type(source).__name__}: give a Recording, a history file, history "
        "events, an ExecutionRun, or an ARN or name with plane="
    )


def _find_arn(plane: Any, ref: str) -> str:
    if ref.startswith("arn:"):
        return ref
    marker = None
    for _ in range(10_000):
        page = plane.list_executions(max_items=1000, marker=marker)
        for item in page.get("DurableExecutions", []):
            if item.get("DurableExecutionName") == ref:
                return str(item["DurableExecutionArn"])
        marker = page.get("NextMarker")
        if not marker:
            break
    raise ConfigError(f"no execution named {ref!r} in {plane}")


def _resolve_handler(handler: Any) -> Any:
    if isinstance(handler, str):
        from durable_ext.runtime.handlers import load_handler

        handler = load_handler(handler)[1]
    if not callable(handler) or getattr(handler, "__wrapped__", None) is None:
        raise ConfigError(
            f"{handler!r} is not a @durable_execution handler: replay calls the handler as "
            "Lambda would, so pass the decorated function"
        )
    return handler


def replay(history_or_execution: Any, handler: Any, *, plane: Any = None,
           check: bool = True) -> ReplayResult:
    """Replay a recorded execution against ``handler``; never writes to the recording.

    Args:
        history_or_execution: What to replay (see :func:`load_recording`).
        handler: The ``@durable_execution`` handler, or ``"module:attr"``.
        plane: The control plane an ARN or name is read from.
        check: Raise :class:`~durable_ext.errors.ReplayDivergenceError` when the handler
            diverges (default); with False, return the result either way.

    Returns:
        The :class:`ReplayResult`.

    """
    recording = load_recording(history_or_execution, plane)
    result = _replay(recording, _resolve_handler(handler))
    return result.raise_for_divergence() if check else result


def _replay(recording: Recording, handler: Any) -> ReplayResult:
    _seams.install()
    session = _ReplaySession(recording)
    wire = recording.operation_index(visible=True).values()
    operations = [sdk_operation(op) for op in wire]
    client = _ReplayClient(session, wire, operations)
    event = DurableExecutionInvocationInputWithClient(
        durable_execution_arn=recording.arn,
        checkpoint_token="replay-0",
        initial_execution_state=InitialExecutionState(operations=operations, next_marker=""),
        updated_operation_ids=[],
        service_client=client,
    )
    context = LambdaContextStub(aws_request_id=str(uuid.uuid4()),
                                function_name=_function_of(recording.arn))
    try:
        with fast_sdk_stop():
            output = handler(event, context)
    except Exception as exc:
        return ReplayResult(
            arn=recording.arn, recorded_status=recording.status, status="ERROR",
            error=f"{type(exc).__name__}: {exc}", operations=len(session.visited))
    finally:
        client.release()
    out: Mapping[str, Any] = output if isinstance(output, Mapping) else {}
    return session.analyse(str(out.get("Status", "ERROR")), out)


def _function_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[6].split("/")[0] if len(parts) > 6 else ""


# ---------------------------------------------------------------- many executions


@dataclass(frozen=True, slots=True)
class BatchReport:
    """The replays of many executions."""

    results: tuple[ReplayResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Whether every execution replays clean."""
        return all(r.ok for r in self.results)

    @property
    def diverged(self) -> tuple[ReplayResult, ...]:
        """The executions that diverge."""
        return tuple(r for r in self.results if r.divergences)

    @property
    def errors(self) -> tuple[ReplayResult, ...]:
        """The executions that could not be replayed."""
        return tuple(r for r in self.results if r.error is not None)

    def summary(self) -> str:
        """One line per failing execution, then the counts."""
        lines = [r.report() for r in self.results if not r.ok]
        clean = len(self.results) - len(self.diverged) - len(self.errors)
        lines.append(f"{len(self.results)} executions replayed: {clean} clean, "
                     f"{len(self.diverged)} diverge, {len(self.errors)} could not replay")
        return "\n".join(lines)


def _listed(plane: Any, function_name: str | None, status: str | None,
            limit: int | None) -> Iterator[str]:
    marker = None
    seen = 0
    for _ in range(100_000):
        page = plane.list_executions(function_name=function_name, status=status,
                                     max_items=1000, marker=marker)
        for item in page.get("DurableExecutions", []):
            if limit is not None and seen >= limit:
                return
            seen += 1
            yield str(item["DurableExecutionArn"])
        marker = page.get("NextMarker")
        if not marker:
            return


def replay_many(plane: Any, handler: Any, *, function_name: str | None = None,
                status: str | None = "RUNNING", executions: Sequence[Any] = (),
                limit: int | None = None,
                on_result: Callable[[ReplayResult], None] | None = None) -> BatchReport:
    """Replay many executions against ``handler``: those listed, or all with ``status``.

    Args:
        plane: The control plane to read from (``open_control_plane(url)``).
        handler: The ``@durable_execution`` handler, or ``"module:attr"``.
        function_name: Only this function's executions (when none are given).
        status: Only executions with this status (None: all); default ``RUNNING``, the
            ones a deploy would break.
        executions: ARNs, names or history files to replay instead of a listing.
        limit: At most this many executions.
        on_result: Called with each result as it is made.

    """
    fn = _resolve_handler(handler)
    sources: Sequence[Any] | Iterator[str] = executions or _listed(
        plane, function_name, status, limit)
    results: list[ReplayResult] = []
    for source in sources:
        try:
            recording = load_recording(source, plane if not _is_file(source) else None)
        except ConfigError as exc:
            result = ReplayResult(arn=str(source), recorded_status="?", status="ERROR",
                                  error=str(exc))
        else:
            result = _replay(recording, fn)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return BatchReport(tuple(results))


def _is_file(source: Any) -> bool:
    return isinstance(source, Path) or (
        isinstance(source, str) and not source.startswith("arn:") and Path(source).is_file())
