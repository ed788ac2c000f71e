"""Per operation type: how a validated ``OperationUpdate`` changes its operation.

One function per type applies an update (wire dict) to a
:class:`~durable_ext.engine.mutation.Mutation`: the resulting operation record (status,
details, attempt arithmetic, timestamps; Name/ParentId/SubType merged), its history events
and its due entries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from durable_ext.engine.history import op_event, payload_block
from durable_ext.engine.mutation import Mutation
from durable_ext.engine.state import DueKey, DueKind, PendingClose
from durable_ext.engine.trace import parse_header

__all__ = ["TERMINAL_OP", "ChainedTarget", "apply_update", "set_status", "target_name"]

TERMINAL_OP = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "STOPPED"})
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


class ChainedTarget(NamedTuple):
    """Where a chained invoke goes: the registered function and the child it will start."""

    function: str | None
    kind: str | None  # "durable", "plain", or None when the function is unknown
    child_id: str
    child_name: str
    child_arn: str
    version: str = "$LATEST"


def apply_update(
    tx: Mutation, u: Mapping[str, Any], start_chained: Callable[[str], ChainedTarget]
) -> None:
    """Apply one validated update to ``tx`` with the service's status rules and events."""
    now = tx.now_ms
    op_id = u["Id"]
    kind, action = u["Type"], u["Action"]
    if kind == "EXECUTION":
        status = "SUCCEEDED" if action == "SUCCEED" else "FAILED"
        tx.evolve(closing=PendingClose(status, u.get("Payload"), u.get("Error")))
        return
    old = tx.get(op_id) or {}
    data: dict[str, Any] = {k: v for k, v in old.items()}
    data["Id"] = op_id
    data["Type"] = kind
    for key in ("ParentId", "Name", "SubType"):
        if u.get(key) is not None:
            data[key] = u[key]
    data.setdefault("StartTimestamp", now)
    if kind == "CHAINED_INVOKE":
        function = str(u["ChainedInvokeOptions"]["FunctionName"])
        _apply_chained_invoke(tx, u, data, start_chained(function), now)
        return
    _APPLIERS[kind](tx, u, data, action, now)


def set_status(data: dict[str, Any], status: str, now: int) -> None:
    """Set the status; terminal statuses get an EndTimestamp, others lose it."""
    data["Status"] = status
    if status in TERMINAL_OP:
        data.setdefault("EndTimestamp", now)
    else:
        data.pop("EndTimestamp", None)


def _apply_step(
    tx: Mutation, u: Mapping[str, Any], data: dict[str, Any], action: str, now: int
) -> None:
    sd = dict(data.get("StepDetails") or {})
    attempt = int(sd.get("Attempt", 0) or 0)
    if action == "START":
        sd["Attempt"] = attempt
        sd.pop("Error", None)
        if u.get("Payload") is not None:
            sd["Result"] = u["Payload"]
        data["StepDetails"] = sd
        set_status(data, "STARTED", now)
        tx.put(data)
        tx.event(op_event("StepStarted", data, now))
        return
    attempt += 1
    sd["Attempt"] = attempt
    sd.pop("NextAttemptTimestamp", None)
    retry: dict[str, Any] = {"CurrentAttempt": attempt}
    if action == "RETRY":
        delay = int((u.get("StepOptions") or {}).get("NextAttemptDelaySeconds", 0) or 0)
        sd["NextAttemptTimestamp"] = now + delay * 1000
        sd["Result"] = u.get("Payload")
        sd["Error"] = u.get("Error")
        sd = {k: v for k, v in sd.items() if v is not None}
        data["StepDetails"] = sd
        set_status(data, "PENDING", now)
        tx.put(data)
        tx.set_due(DueKey.wake(data["Id"]), DueKind.WAKE, now + delay * 1000, op=data["Id"])
        retry["NextAttemptDelaySeconds"] = delay
        if u.get("Error") is not None:
            details = {"Error": payload_block(u["Error"]), "RetryDetails": retry}
            tx.event(op_event("StepFailed", data, now, details))
        else:
            details = {"Result": payload_block(u.get("Payload")), "RetryDetails": retry}
            tx.event(op_event("StepSucceeded", data, now, details))
        return
    if action == "SUCCEED":
        sd["Result"] = u.get("Payload")
        sd.pop("Error", None)
        sd = {k: v for k, v in sd.items() if v is not None}
        data["StepDetails"] = sd
        set_status(data, "SUCCEEDED", now)
        tx.put(data)
        details = {"Result": payload_block(u.get("Payload")), "RetryDetails": retry}
        tx.event(op_event("StepSucceeded", data, now, details))
    else:
        sd["Error"] = u.get("Error") or {}
        data["StepDetails"] = sd
        set_status(data, "FAILED", now)
        tx.put(data)
        details = {"Error": payload_block(sd["Error"]), "RetryDetails": retry}
        tx.event(op_event("StepFailed", data, now, details))
    tx.clear_due(DueKey.wake(data["Id"]))


def _apply_context(
    tx: Mutation, u: Mapping[str, Any], data: dict[str, Any], action: str, now: int
) -> None:
    if action == "START":
        data["ContextDetails"] = {}
        set_status(data, "STARTED", now)
        tx.put(data)
        tx.event(op_event("ContextStarted", data, now))
    elif action == "SUCCEED":
        replay = bool((u.get("ContextOptions") or {}).get("ReplayChildren", False))
        cd: dict[str, Any] = {"ReplayChildren": replay}
        if u.get("Payload") is not None:
            cd["Result"] = u["Payload"]
        data["ContextDetails"] = cd
        set_status(data, "SUCCEEDED", now)
        tx.put(data)
        tx.event(
            op_event("ContextSucceeded", data, now, {"Result": payload_block(u.get("Payload"))})
        )
    else:
        err = u.get("Error") or {}
        data["ContextDetails"] = {"Error": err}
        set_status(data, "FAILED", now)
        tx.put(data)
        tx.event(op_event("ContextFailed", data, now, {"Error": payload_block(err)}))


def _apply_wait(
    tx: Mutation, u: Mapping[str, Any], data: dict[str, Any], action: str, now: int
) -> None:
    key = DueKey.wake(data["Id"])
    if action == "START":
        secs = int((u.get("WaitOptions") or {}).get("WaitSeconds", 0) or 0)
        end = now + secs * 1000
        data["WaitDetails"] = {"ScheduledEndTimestamp": end}
        data["_wait"] = secs
        set_status(data, "STARTED", now)
        tx.put(data)
        tx.set_due(key, DueKind.WAKE, end, op=data["Id"])
        tx.event(
            op_event("WaitStarted", data, now, {"Duration": secs, "ScheduledEndTimestamp": end})
        )
        return
    if not u.get("WaitOptions"):
        data.pop("WaitDetails", None)
    set_status(data, "CANCELLED", now)
    tx.put(data)
    tx.clear_due(key)
    details: dict[str, Any] = {}
    if u.get("Error") is not None:
        details["Error"] = payload_block(u["Error"])
    tx.event(op_event("WaitCancelled", data, now, details))


def _apply_callback(
    tx: Mutation, u: Mapping[str, Any], data: dict[str, Any], action: str, now: int
) -> None:
    opts = u.get("CallbackOptions") or {}
    timeout = int(opts.get("TimeoutSeconds", 0) or 0)
    heartbeat = int(opts.get("HeartbeatTimeoutSeconds", 0) or 0)
    cb_id = tx.ids.callback_id(tx.arn, data["Id"])
    data["CallbackDetails"] = {"CallbackId": cb_id}
    data["_cb"] = {"t": timeout, "hb": heartbeat}
    set_status(data, "STARTED", now)
    tx.put(data)
    tx.open_op(data["Id"])
    if timeout > 0:
        tx.set_due(
            DueKey.callback_timeout(data["Id"]),
            DueKind.CALLBACK_TIMEOUT,
            now + timeout * 1000,
            op=data["Id"],
        )
    if heartbeat > 0:
        tx.set_due(
            DueKey.callback_heartbeat(data["Id"]),
            DueKind.CALLBACK_HEARTBEAT,
            now + heartbeat * 1000,
            op=data["Id"],
        )
    details: dict[str, Any] = {"CallbackId": cb_id}
    if timeout > 0:
        details["Timeout"] = timeout
    if heartbeat > 0:
        details["HeartbeatTimeout"] = heartbeat
    tx.event(op_event("CallbackStarted", data, now, details))


def _apply_chained_invoke(
    tx: Mutation, u: Mapping[str, Any], data: dict[str, Any], resolved: ChainedTarget, now: int
) -> None:
    opts = u["ChainedInvokeOptions"]
    fn_name = str(opts["FunctionName"])
    tenant = opts.get("TenantId")
    payload = u.get("Payload")
    target, kind, child_id, child_name, child_arn = resolved[:5]
    started: dict[str, Any] = {
        "FunctionName": fn_name,
        "Input": payload_block(payload),
        "ExecutedVersion": resolved.version,
        "DurableExecutionArn": child_arn,
    }
    if tenant is not None:
        started["TenantId"] = tenant
    data["ChainedInvokeDetails"] = {}
    data["_inv"] = {"fn": fn_name, "child": child_arn}
    if kind is None:
        err = {
            "ErrorType": "ResourceNotFoundException",
            "ErrorMessage": f"Function not found: {fn_name}",
        }
        data["ChainedInvokeDetails"] = {"Error": err}
        set_status(data, "FAILED", now)
        tx.put(data)
        tx.event(op_event("ChainedInvokeStarted", data, now, started))
        tx.event(op_event("ChainedInvokeFailed", data, now, {"Error": payload_block(err)}))
        return
    set_status(data, "STARTED", now)
    tx.put(data)
    tx.open_op(data["Id"])
    tx.set_due(
        DueKey.dispatch(data["Id"]),
        DueKind.DISPATCH,
        now,
        op=data["Id"],
        function=target,
        target_kind=kind,
        payload=payload,
        tenant=tenant,
        trace=_caller_trace(opts.get("XAmznTraceId")),
        child_id=child_id,
        child_name=child_name,
        child_arn=child_arn,
        version=resolved.version,
    )
    tx.event(op_event("ChainedInvokeStarted", data, now, started))


def _caller_trace(value: Any) -> str | None:
    # The caller's header rides with the dispatch to the child; one that could not be
    # read there is not kept (it is the caller's to bound, and the child starts its own).
    header = value if isinstance(value, str) else None
    return header if parse_header(header) is not None else None


def target_name(function_name: str) -> str | None:
    """``fn``, ``fn:qualifier`` or a function ARN -> the registered name."""
    name = function_name
    if name.startswith("arn:"):
        parts = name.split(":")
        name = parts[6] if len(parts) > 6 else ""
    else:
        name = name.split(":", 1)[0]
    return name if _NAME.fullmatch(name or "") else None


_APPLIERS: dict[str, Callable[[Mutation, Mapping[str, Any], dict[str, Any], str, int], None]] = {
    "STEP": _apply_step,
    "CONTEXT": _apply_context,
    "WAIT": _apply_wait,
    "CALLBACK": _apply_callback,
}
