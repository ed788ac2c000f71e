"""A recorded execution: its history, and the operations an invocation would see from it.

A :class:`Recording` comes from any control plane (a store, ``lambda://``), from a JSON
file written by ``durable-ext executions export`` (or saved from
``aws lambda get-durable-execution-history``), or from history events in memory. It
rebuilds every operation's last state from the events, in the service's shapes, and
hides the children of completed contexts as the service does.

Example:
    >>> rec = Recording.from_events([])
    Traceback (most recent call last):
    ...
    durable_ext.errors.ConfigError: history has no ExecutionStarted event: ...

"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from durable_ext.errors import ConfigError

__all__ = ["FORMAT", "Recording", "operations_from_history"]

FORMAT = "durable-ext-history"
_VERSION = 1
_MAX_FILE_BYTES = 512 * 1024 * 1024
_MAX_EVENTS = 1_000_000
_EVENT = re.compile(r"^(Execution|Step|Wait|Callback|ChainedInvoke|Context)([A-Z][A-Za-z]*)$")
_TYPES = {"Step": "STEP", "Wait": "WAIT", "Callback": "CALLBACK",
          "ChainedInvoke": "CHAINED_INVOKE", "Context": "CONTEXT"}
_OUTCOME = {"Succeeded": "SUCCEEDED", "Failed": "FAILED", "TimedOut": "TIMED_OUT",
            "Stopped": "STOPPED", "Cancelled": "CANCELLED"}
_DETAILS = {"STEP": "StepDetails", "WAIT": "WaitDetails", "CALLBACK": "CallbackDetails",
            "CHAINED_INVOKE": "ChainedInvokeDetails", "CONTEXT": "ContextDetails"}
_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED", "CANCELLED"})
_EXECUTION_END = {"ExecutionSucceeded": "SUCCEEDED", "ExecutionFailed": "FAILED",
                  "ExecutionTimedOut": "TIMED_OUT", "ExecutionStopped": "STOPPED"}


def _ms(value: Any, where: str) -> int:
    """Epoch milliseconds of a history timestamp (datetime, ISO text or a number)."""
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return _ms(datetime.fromisoformat(value.replace("Z", "+00:00")), where)
        except ValueError:
            pass
    raise ConfigError(f"history {where}: {value!r} is not a timestamp")


def _payload(block: Any, what: str) -> Any:
    """Return the payload of an EventResult/EventError/EventInput block (never truncated)."""
    if not isinstance(block, Mapping):
        return None
    if block.get("Truncated") and block.get("Payload") is None:
        raise ConfigError(
            f"history {what}: the payload is truncated (the history was read without its "
            "execution data); read it with IncludeExecutionData=true to replay it"
        )
    return block.get("Payload")


def _check_event(event: Any, index: int) -> Mapping[str, Any]:
    if not isinstance(event, Mapping) or not isinstance(event.get("EventType"), str):
        raise ConfigError(f"history event #{index + 1} is not an event object with EventType")
    return event


def operations_from_history(
    events: Sequence[Mapping[str, Any]], replay_children: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """Rebuild each operation's last state (wire shape, epoch-ms times) from history.

    Operations come in the order they started; the EXECUTION operation first.
    History does not say which succeeded contexts replay their children (results over
    the checkpoint limit): ``replay_children`` names them when the store told; without
    it, a context whose result is empty or a map/parallel summary is taken as one.
    """
    ops: dict[str, dict[str, Any]] = {}
    for index, raw in enumerate(events):
        event = _check_event(raw, index)
        m = _EVENT.match(event["EventType"])
        if m is None:
            continue  # InvocationCompleted and the like
        kind, what = m.groups()
        op_id = event.get("Id")
        if not isinstance(op_id, str) or not op_id:
            raise ConfigError(f"history event #{index + 1} ({event['EventType']}) has no Id")
        ts = _ms(event.get("EventTimestamp", 0), f"event #{index + 1} EventTimestamp")
        details: Mapping[str, Any] = event.get(f"{kind}{what}Details") or {}
        where = f"event #{index + 1} ({event['EventType']} of {op_id})"
        if kind == "Execution":
            if what == "Started":
                ops[op_id] = {
                    "Id": op_id, "Type": "EXECUTION", "Status": "STARTED",
                    "StartTimestamp": ts,
                    "ExecutionDetails": {"InputPayload": _payload(details.get("Input"), where)},
                }
                if event.get("Name"):
                    ops[op_id]["Name"] = event["Name"]
            elif op_id in ops and what in _OUTCOME:
                ops[op_id].update(Status=_OUTCOME[what], EndTimestamp=ts)
            continue
        op_type = _TYPES[kind]
        op = ops.get(op_id)
        if op is None:
            op = {"Id": op_id, "Type": op_type, "Status": "STARTED", "StartTimestamp": ts}
            for key in ("ParentId", "Name", "SubType"):
                if event.get(key) is not None:
                    op[key] = event[key]
            ops[op_id] = op
        _apply(op, what, details, ts, where)
    for op in ops.values():
        detail_key = _DETAILS.get(op["Type"])
        if detail_key:
            op.setdefault(detail_key, {})
        if op["Type"] == "CONTEXT" and op["Status"] == "SUCCEEDED":
            cd = op["ContextDetails"]
            cd["ReplayChildren"] = (op["Id"] in replay_children if replay_children is not None
                                    else _summarized(op))
    return list(ops.values())


def _summarized(op: Mapping[str, Any]) -> bool:
    """Whether a succeeded context's payload is the SDK's stand-in for a large result.

    The SDK checkpoints ``""`` (or a custom summary) for a child context, and a JSON
    completion record for a map or parallel; replaying the children rebuilds the value.
    """
    payload = op["ContextDetails"].get("Result")
    if not payload:
        return True
    if op.get("SubType") in ("Map", "Parallel"):
        from aws_durable_execution_sdk_python.concurrency.models import CompletionRecord

        return CompletionRecord.from_summary_payload(payload) is not None
    return False


def _apply(op: dict[str, Any], what: str, details: Mapping[str, Any], ts: int,
           where: str) -> None:
    op_type = op["Type"]
    d = dict(op.get(_DETAILS[op_type]) or {})
    retry: Mapping[str, Any] = details.get("RetryDetails") or {}
    if what == "Started":
        op["Status"] = "STARTED"
        op.pop("EndTimestamp", None)
        if op_type == "WAIT" and details.get("ScheduledEndTimestamp") is not None:
            d["ScheduledEndTimestamp"] = _ms(details["ScheduledEndTimestamp"], where)
        if op_type == "CALLBACK" and details.get("CallbackId"):
            d["CallbackId"] = details["CallbackId"]
        if op_type == "STEP":
            d.setdefault("Attempt", 0)
            d.pop("Error", None)
    elif what in _OUTCOME:
        status = _OUTCOME[what]
        if "Result" in details:
            d["Result"] = _payload(details["Result"], where)
            d.pop("Error", None)
        if "Error" in details:
            d["Error"] = _payload(details["Error"], where)
            d.pop("Result", None)
        if op_type == "STEP" and retry.get("CurrentAttempt") is not None:
            d["Attempt"] = int(retry["CurrentAttempt"])
        if op_type == "STEP" and retry.get("NextAttemptDelaySeconds") is not None:
            # a retry (or a wait_for_condition poll): waiting for its next attempt
            op["Status"] = "PENDING"
            d["NextAttemptTimestamp"] = ts + int(retry["NextAttemptDelaySeconds"]) * 1000
            op.pop("EndTimestamp", None)
        else:
            op["Status"] = status
            op["EndTimestamp"] = ts
            d.pop("NextAttemptTimestamp", None)
    op[_DETAILS[op_type]] = {k: v for k, v in d.items() if v is not None}


def _visible(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the children (at any depth) of completed contexts without ReplayChildren."""
    by_id = {op["Id"]: op for op in ops}
    hidden: dict[str, bool] = {}

    def is_hidden(op_id: str, depth: int = 0) -> bool:
        if op_id in hidden:
            return hidden[op_id]
        op = by_id.get(op_id)
        parent = by_id.get(op.get("ParentId") or "") if op else None
        result = False
        if parent is not None and depth < 256:
            closed = parent["Status"] in _TERMINAL and not (
                parent.get("ContextDetails") or {}).get("ReplayChildren")
            result = closed or is_hidden(parent["Id"], depth + 1)
        hidden[op_id] = result
        return result

    return [op for op in ops if not is_hidden(op["Id"])]


@dataclass(frozen=True, slots=True)
class Recording:
    """A recorded execution: what it was and every history event it has.

    Attributes:
        arn: The execution's ARN.
        status: Its status when recorded (``RUNNING``, ``SUCCEEDED``...).
        events: The history events, oldest first.
        name: The execution name.
        result: Its result (JSON text), when it succeeded.
        error: Its error, when it failed.

    """

    arn: str
    status: str
    events: tuple[Mapping[str, Any], ...]
    name: str | None = None
    result: str | None = None
    error: Mapping[str, Any] | None = None
    replay_children: frozenset[str] | None = None
    _operations: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)
    _visible: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_events(cls, events: Sequence[Mapping[str, Any]], *,
                    description: Mapping[str, Any] | None = None,
                    replay_children: frozenset[str] | None = None) -> Recording:
        """Build a recording from history events (and a GetDurableExecution answer).

        Without a description the status, result and error come from the events and
        the ARN is made from the execution's id.

        Raises:
            ConfigError: The events are not a history this can replay.

        """
        if len(events) > _MAX_EVENTS:
            raise ConfigError(f"history has {len(events)} events; at most {_MAX_EVENTS}")
        ops = operations_from_history(events, replay_children)
        execution = next((op for op in ops if op["Type"] == "EXECUTION"), None)
        if execution is None:
            raise ConfigError("history has no ExecutionStarted event: it is not the history "
                              "of a durable execution (or it is only a page of one)")
        status, result, error = "RUNNING", None, None
        for index, event in enumerate(events):
            end = _EXECUTION_END.get(str(event.get("EventType")))
            if end is None:
                continue
            details = event.get(f"{event['EventType']}Details") or {}
            where = f"event #{index + 1} ({event['EventType']})"
            status = end
            if end == "SUCCEEDED":
                result = _payload(details.get("Result"), where)
            else:
                error = _payload(details.get("Error"), where)
        desc = description or {}
        name = desc.get("DurableExecutionName") or execution.get("Name")
        arn = desc.get("DurableExecutionArn") or (
            f"arn:aws:lambda:us-east-1:123456789012:function:replay/durable-execution/"
            f"{name or 'execution'}/{execution['Id']}")
        if str(arn).rsplit("/", 1)[-1] != execution["Id"]:
            # the SDK finds its EXECUTION operation by the ARN's last segment
            execution = {**execution, "Id": str(arn).rsplit("/", 1)[-1]}
            ops = [execution if op["Type"] == "EXECUTION" else op for op in ops]
        return cls(
            arn=str(arn),
            status=str(desc.get("Status") or status),
            events=tuple(events),
            name=str(name) if name else None,
            result=desc.get("Result", result),
            error=desc.get("Error", error),
            replay_children=replay_children,
            _operations=ops,
            _visible=_visible(ops),
        )

    @classmethod
    def from_execution(cls, plane: Any, execution: str) -> Recording:
        """Read execution ``execution`` (an ARN) from a control plane, all pages.

        A local store also says which contexts replay their children (history does not).
        """
        description = plane.describe(execution)
        events: list[Mapping[str, Any]] = []
        marker = None
        for _ in range(100_000):  # bounded: one page a call
            page = plane.history(execution, include_execution_data=True, marker=marker)
            events.extend(page.get("Events", []))
            marker = page.get("NextMarker")
            if not marker:
                break
        return cls.from_events(events, description=description,
                               replay_children=_replay_children_in(plane, execution))

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        """Read a history file: an export of ours, or a GetDurableExecutionHistory answer.

        Raises:
            ConfigError: The file cannot be read or is not a history.

        """
        p = Path(path)
        try:
            size = p.stat().st_size
            if size > _MAX_FILE_BYTES:
                raise ConfigError(f"history file {p}: {size} bytes; at most {_MAX_FILE_BYTES}")
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            if isinstance(exc, ConfigError):
                raise
            what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise ConfigError(f"history file {p}: {what}") from None
        if not isinstance(data, Mapping) or not isinstance(data.get("Events"), list):
            raise ConfigError(f"history file {p}: expected a JSON object with an Events list "
                              f"(durable-ext executions export writes one)")
        if data.get("Format", FORMAT) != FORMAT or int(data.get("Version", _VERSION)) > _VERSION:
            raise ConfigError(f"history file {p}: format {data.get('Format')!r} version "
                              f"{data.get('Version')!r} is not one this version reads")
        description = data.get("Execution")
        if description is not None and not isinstance(description, Mapping):
            raise ConfigError(f"history file {p}: Execution is not an object")
        flagged = data.get("ReplayChildren")
        if flagged is not None and not (isinstance(flagged, list)
                                        and all(isinstance(i, str) for i in flagged)):
            raise ConfigError(f"history file {p}: ReplayChildren is not a list of ids")
        try:
            return cls.from_events(data["Events"], description=description,
                                   replay_children=None if flagged is None
                                   else frozenset(flagged))
        except ConfigError as exc:
            raise ConfigError(f"history file {p}: {exc}") from None

    # ------------------------------------------------------------------ reading

    @property
    def operations(self) -> list[dict[str, Any]]:
        """Every operation's last state (wire shape, epoch-ms), the EXECUTION one first."""
        return [dict(op) for op in self._operations]

    def visible_operations(self) -> list[dict[str, Any]]:
        """Return what an invocation receives: no children of completed contexts."""
        return [dict(op) for op in self._visible]

    def operation_index(self, *, visible: bool = False) -> dict[str, Mapping[str, Any]]:
        """Return ``id -> operation`` (read-only views: do not change them)."""
        return {op["Id"]: op for op in (self._visible if visible else self._operations)}

    @property
    def input_payload(self) -> str | None:
        """The execution's input (JSON text)."""
        for op in self._operations:
            if op["Type"] == "EXECUTION":
                payload: str | None = op["ExecutionDetails"].get("InputPayload")
                return payload
        return None

    @property
    def terminal(self) -> bool:
        """Whether the recorded execution had ended."""
        return self.status != "RUNNING"

    def to_json(self) -> dict[str, Any]:
        """Return the export format (timestamps as ISO text): what :meth:`load` reads."""
        execution: dict[str, Any] = {"DurableExecutionArn": self.arn, "Status": self.status}
        if self.name:
            execution["DurableExecutionName"] = self.name
        if self.result is not None:
            execution["Result"] = self.result
        if self.error is not None:
            execution["Error"] = dict(self.error)
        out: dict[str, Any] = {"Format": FORMAT, "Version": _VERSION, "Execution": execution}
        if self.replay_children is not None:
            out["ReplayChildren"] = sorted(self.replay_children)
        out["Events"] = [_jsonable(e) for e in self.events]
        return out

    def dump(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")


def _replay_children_in(plane: Any, arn: str) -> frozenset[str] | None:
    store = getattr(plane, "store", None)
    read = getattr(store, "operations", None)
    if not callable(read):
        return None  # lambda://: history is all there is
    return frozenset(
        r.op_id for r in read(arn)
        if (r.data.get("ContextDetails") or {}).get("ReplayChildren"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
