"""The service's checkpoint validation table, with its exact messages; names and inputs.

Everything here is pure: it looks at a batch of ``OperationUpdate`` dicts (the SDK's
``OperationUpdate.to_dict`` wire shape) and the stored operations the batch refers to, and
either returns or raises :class:`InvalidParameterValueError`. A rejected batch changes
nothing, so the checkpoint token stays valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from durable_ext.errors import InvalidParameterValueError

__all__ = [
    "CHAINED_INVOKE_INPUT_LIMIT",
    "ERROR_OBJECT_LIMIT",
    "check_shapes",
    "normalize_input",
    "validate_batch",
    "validate_name",
]

ERROR_OBJECT_LIMIT = 1024 * 1024
"""The service accepts ErrorObjects up to 1 MB (the testing SDK's 32768 is a deviation)."""

CHAINED_INVOKE_INPUT_LIMIT = 1024 * 1024
_OP_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_SUBTYPE = re.compile(r"[a-zA-Z0-9_-]{1,32}")
_TENANT = re.compile(r"[a-zA-Z0-9._:/=+\-@ ]{1,256}")
_TYPES = {"EXECUTION", "CONTEXT", "STEP", "WAIT", "CALLBACK", "CHAINED_INVOKE"}
_ACTIONS = {"START", "SUCCEED", "FAIL", "RETRY", "CANCEL"}
_VALID_ACTIONS: Mapping[str, frozenset[str]] = {
    "STEP": frozenset({"START", "SUCCEED", "FAIL", "RETRY"}),
    "CONTEXT": frozenset({"START", "SUCCEED", "FAIL"}),
    "WAIT": frozenset({"START", "CANCEL"}),
    "CALLBACK": frozenset({"START"}),
    "CHAINED_INVOKE": frozenset({"START"}),
    "EXECUTION": frozenset({"SUCCEED", "FAIL"}),
}


def _fail(message: str) -> InvalidParameterValueError:
    return InvalidParameterValueError(message)


def validate_batch(
    updates: Sequence[Mapping[str, Any]],
    existing: Mapping[str, Mapping[str, Any]],
) -> None:
    """Validate a whole batch before anything is applied.

    Args:
        updates: The batch, in order (wire dicts).
        existing: Stored operations (wire dicts) for every ``Id`` and ``ParentId`` the
            batch mentions that exist.

    Raises:
        InvalidParameterValueError: with the service's message.

    """
    exec_positions = [i for i, u in enumerate(updates) if u.get("Type") == "EXECUTION"]
    if len(exec_positions) > 1:
        raise _fail("Cannot checkpoint multiple EXECUTION updates.")
    if exec_positions and exec_positions[0] != len(updates) - 1:
        raise _fail("EXECUTION checkpoint must be the last update.")

    last_action: dict[str, str] = {}
    started_contexts: set[str] = set()
    for u in updates:
        _check_shape(u)
        op_id = u["Id"]
        kind = u["Type"]
        action = u["Action"]
        prev = last_action.get(op_id)
        if prev is not None and not (
            kind in ("STEP", "CONTEXT") and prev == "START" and action != "START"
        ):
            raise _fail("Cannot checkpoint multiple operations with the same ID.")
        parent = u.get("ParentId")
        if parent:
            parent_op = existing.get(parent)
            if parent not in started_contexts and (
                parent_op is None or parent_op.get("Type") != "CONTEXT"
            ):
                raise _fail("Invalid parent operation id.")
        if kind == "CONTEXT" and action == "START":
            started_contexts.add(op_id)
        last_action[op_id] = action

    # Per-update checks see the batch applied so far: START then SUCCEED of one step is
    # judged against the STARTED state the START produces.
    simulated: dict[str, str | None] = {}
    for u in updates:
        current = existing.get(u["Id"])
        status = (
            simulated[u["Id"]]
            if u["Id"] in simulated
            else (current.get("Status") if current is not None else None)
        )
        _check_metadata(u, current)
        _check_sizes(u)
        _check_action(u)
        simulated[u["Id"]] = _check_transition(u, current, status)


def check_shapes(updates: Sequence[Any]) -> None:
    """Refuse a batch whose updates are not operation updates, before anything reads them."""
    if not isinstance(updates, Sequence) or isinstance(updates, str | bytes):
        raise _fail("Updates must be a list of operation updates.")
    for u in updates:
        _check_shape(u)


def _check_shape(u: Any) -> None:
    if not isinstance(u, Mapping):
        raise _fail("Each update must be an object.")
    op_id = u.get("Id")
    if not isinstance(op_id, str) or not op_id:
        raise _fail("Operation Id is required.")
    parent = u.get("ParentId")
    if parent is not None and not isinstance(parent, str):
        raise _fail(f"Invalid parent operation id {parent!r}.")
    if u.get("Type") not in _TYPES:
        raise _fail(f"Invalid operation type {u.get('Type')!r}.")
    if u.get("Action") not in _ACTIONS:
        raise _fail(f"Invalid operation action {u.get('Action')!r}.")
    if u["Type"] != "EXECUTION" and not _OP_ID.fullmatch(op_id):
        raise _fail(f"Invalid operation id {op_id!r}: expected 1-64 of [a-zA-Z0-9-_].")
    sub = u.get("SubType")
    if sub is not None and not _SUBTYPE.fullmatch(str(sub)):
        raise _fail(f"Invalid operation subtype {sub!r}.")
    name = u.get("Name")
    if name is not None and not (isinstance(name, str) and 1 <= len(name) <= 256):
        raise _fail("Invalid operation name: expected 1-256 characters.")


def _check_metadata(u: Mapping[str, Any], current: Mapping[str, Any] | None) -> None:
    if current is None:
        return
    if current.get("Type") != u["Type"]:
        raise _fail("Inconsistent operation type.")
    if u.get("SubType") is not None and current.get("SubType") != u.get("SubType"):
        raise _fail("Inconsistent operation subtype.")
    if u.get("Name") is not None and current.get("Name") != u.get("Name"):
        raise _fail("Inconsistent operation name.")
    if u.get("ParentId") is not None and current.get("ParentId") != u.get("ParentId"):
        raise _fail("Inconsistent parent operation id.")


def _check_sizes(u: Mapping[str, Any]) -> None:
    err = u.get("Error")
    if err is not None and len(json.dumps(err)) > ERROR_OBJECT_LIMIT:
        raise _fail(f"Error object size must be less than {ERROR_OBJECT_LIMIT} bytes.")
    if u["Type"] == "CHAINED_INVOKE":
        payload = u.get("Payload")
        if payload is not None and len(payload.encode()) > CHAINED_INVOKE_INPUT_LIMIT:
            raise _fail(
                "CHAINED_INVOKE input payload size must be less than or equal to "
                f"{CHAINED_INVOKE_INPUT_LIMIT} bytes."
            )


def _check_action(u: Mapping[str, Any]) -> None:
    if u["Action"] not in _VALID_ACTIONS[u["Type"]]:
        if u["Type"] == "EXECUTION":
            raise _fail("Invalid EXECUTION action.")
        raise _fail("Invalid action for the given operation type.")


def _payload_error_rules(u: Mapping[str, Any]) -> None:
    if u["Action"] == "FAIL" and u.get("Payload") is not None:
        raise _fail("Cannot provide a Payload for FAIL action.")
    if u["Action"] == "SUCCEED" and u.get("Error") is not None:
        raise _fail("Cannot provide an Error for SUCCEED action.")


def _check_transition(
    u: Mapping[str, Any], current: Mapping[str, Any] | None, status: str | None
) -> str | None:
    """Check the transition and return the status the update leads to."""
    kind, action = u["Type"], u["Action"]
    exists = current is not None or status is not None
    if kind == "STEP":
        if action == "START":
            if exists and status != "READY":
                raise _fail("Invalid current STEP state to start.")
            return "STARTED"
        if exists and status not in ("STARTED", "READY"):
            raise _fail("Invalid current STEP state to close.")
        if action == "RETRY":
            opts = u.get("StepOptions")
            if not opts:
                raise _fail("Invalid StepOptions for the given action.")
            if u.get("Error") is not None and u.get("Payload") is not None:
                raise _fail("Cannot provide both error and payload to RETRY a STEP.")
            return "PENDING"
        _payload_error_rules(u)
        return "SUCCEEDED" if action == "SUCCEED" else "FAILED"
    if kind == "CONTEXT":
        if action == "START":
            if exists:
                raise _fail("Cannot start a CONTEXT that already exist.")
            return "STARTED"
        if exists and status != "STARTED":
            raise _fail("Invalid current CONTEXT state to close.")
        _payload_error_rules(u)
        return "SUCCEEDED" if action == "SUCCEED" else "FAILED"
    if kind == "WAIT":
        if action == "START":
            if exists:
                raise _fail("Cannot start a WAIT that already exist.")
            return "STARTED"
        if status != "STARTED":
            raise _fail("Cannot cancel a WAIT that does not exist or has already completed.")
        return "CANCELLED"
    if kind == "CALLBACK":
        if exists:
            raise _fail("Cannot start a CALLBACK that already exist.")
        return "STARTED"
    if kind == "CHAINED_INVOKE":
        if exists:
            raise _fail("Cannot start a CHAINED_INVOKE that already exist.")
        opts = u.get("ChainedInvokeOptions")
        if not opts or not opts.get("FunctionName"):
            raise _fail("ChainedInvokeOptions are required to start a CHAINED_INVOKE.")
        tenant = opts.get("TenantId")
        if tenant is not None and not _TENANT.fullmatch(str(tenant)):
            raise _fail(f"Invalid TenantId '{tenant}'.")
        return "STARTED"
    # EXECUTION
    _payload_error_rules(u)
    return None


_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def validate_name(kind: str, value: str) -> str:
    """Check an execution or function name (``[a-zA-Z0-9-_]{1,64}``)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidParameterValueError(
            f"invalid {kind} {value!r}: expected 1-64 characters of [a-zA-Z0-9-_]"
        )
    return value


def normalize_input(value: Any) -> str:
    """Normalise input as the service does: JSON kept, other strings encoded, None -> null."""
    if value is None:
        return "null"
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return json.dumps(value)
        return value
    return json.dumps(value)
