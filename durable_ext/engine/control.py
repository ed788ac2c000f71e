"""Pause, resume and delete: the control-plane requests that change an execution's status.

:class:`ExecutionControl` is a part of :class:`~durable_ext.engine.Engine`; the rules
themselves are in :mod:`durable_ext.engine.rules.pausing`.

Where the service's documentation leaves a rule open, this engine decides (and
docs/pause-resume-delete.md says so):

* a pause of an execution that is already PAUSING or PAUSED, and a resume of one that is
  RUNNING, are refused with ``ResourceConflictException``, like any request the status
  forbids (a pause or resume of an ended execution, a delete of one that has not ended);
* a ClientToken is remembered for 15 minutes per execution and action: a repeat with the
  same parameters succeeds without doing anything, the same token with other parameters
  is refused with ``InvalidParameterValueException``;
* a resume of a PAUSING execution calls the pause off without history events;
* a deleted execution's name is free again: starting that name creates a new execution.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from typing import Any

from durable_ext.backends.store import TERMINAL_STATUSES, ExecutionStatus, Store
from durable_ext.engine import rules, views
from durable_ext.engine.mutation import Mutation, NoCommit
from durable_ext.engine.state import ClientRequest, DueKey, DueKind
from durable_ext.errors import InvalidParameterValueError, NotFoundError, ResourceConflictError

__all__ = ["CLIENT_TOKEN_WINDOW_MS", "MAX_REASON_CHARS", "ExecutionControl"]

CLIENT_TOKEN_WINDOW_MS = 15 * 60 * 1000
"""How long a ClientToken is remembered (the model's "within 15 minutes")."""
MAX_REASON_CHARS = 1024
"""The model's bound of PauseReason and ResumeReason."""
_MAX_REQUESTS = 32
"""Client-token requests kept per execution (the oldest go first)."""


def _digest(params: dict[str, Any]) -> str:
    raw = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def _check_reason(reason: str | None, what: str) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise InvalidParameterValueError(
            f"{what} must be a string of at most {MAX_REASON_CHARS} characters"
        )
    return reason


def _check_client_token(token: str | None) -> str | None:
    if token is None or token == "":
        return None
    if not (isinstance(token, str) and 1 <= len(token) <= 64
            and all(0x21 <= ord(c) <= 0x7E for c in token)):
        raise InvalidParameterValueError("ClientToken must be 1-64 printable ASCII characters")
    return token


def _repeat(tx: Mutation, token: str | None, action: str, params: str) -> bool:
    """Whether this request repeats one made with ``token``; prunes expired tokens."""
    live = tuple(r for r in tx.state.requests if tx.now_ms - r.at_ms < CLIENT_TOKEN_WINDOW_MS)
    if live != tx.state.requests:
        tx.evolve(requests=live)
    if token is None:
        return False
    for r in live:
        if r.token == token and r.action == action:
            if r.params != params:
                raise InvalidParameterValueError(
                    f"ClientToken {token!r} was used for another {action} request of "
                    f"{tx.arn} with different parameters"
                )
            return True
    return False


def _remember(tx: Mutation, token: str | None, action: str, params: str) -> None:
    if token is not None:
        kept = (*tx.state.requests, ClientRequest(token, action, params, tx.now_ms))
        tx.evolve(requests=kept[-_MAX_REQUESTS:])


class ExecutionControl:
    """PauseDurableExecution, ResumeDurableExecution and DeleteDurableExecution."""

    store: Store
    _mutate: Callable[[str, Callable[[Mutation], Any]], Any]
    _require: Callable[[str], Any]
    complete_chained: Callable[..., None]

    def pause(
        self,
        arn: str,
        *,
        reason: str | None = None,
        client_token: str | None = None,
        execution_timeout_paused: bool = True,
    ) -> None:
        """PauseDurableExecution: PAUSING while an invocation is in flight, else PAUSED.

        Raises:
            ResourceConflictError: the execution has ended or is already paused.

        """
        reason = _check_reason(reason, "Reason")
        token = _check_client_token(client_token)
        params = _digest({"reason": reason, "timeout_paused": bool(execution_timeout_paused)})
        self._require(arn)

        def fn(tx: Mutation) -> Any:
            if _repeat(tx, token, "pause", params):
                return tx.batch(), None
            status = tx.header.status
            if status != ExecutionStatus.RUNNING:
                raise ResourceConflictError(
                    f"execution {arn} is {status}; only a RUNNING execution can be paused"
                )
            rules.request_pause(tx, reason, bool(execution_timeout_paused))
            _remember(tx, token, "pause", params)
            return tx.batch(), None

        self._mutate(arn, fn)

    def resume(
        self, arn: str, *, reason: str | None = None, client_token: str | None = None
    ) -> None:
        """ResumeDurableExecution: call off a PAUSING, or run a PAUSED execution on.

        Raises:
            ResourceConflictError: the execution is not PAUSING or PAUSED.

        """
        reason = _check_reason(reason, "Reason")
        token = _check_client_token(client_token)
        params = _digest({"reason": reason})
        self._require(arn)

        def fn(tx: Mutation) -> Any:
            if _repeat(tx, token, "resume", params):
                return tx.batch(), None
            status = tx.header.status
            if status not in (ExecutionStatus.PAUSING, ExecutionStatus.PAUSED):
                raise ResourceConflictError(
                    f"execution {arn} is {status}; only a PAUSING or PAUSED execution can be "
                    "resumed"
                )
            rules.resume(tx, reason)
            _remember(tx, token, "resume", params)
            return tx.batch(), None

        self._mutate(arn, fn)

    def delete(self, arn: str, *, finish: bool = True) -> dict[str, Any]:
        """DeleteDurableExecution: DELETING, then the execution and its records are gone.

        ``finish=False`` only makes it DELETING: the due entry it gets has a runtime
        finish the deletion (after delivering the execution's outstanding events).

        A chained child's outcome still owed to its caller is delivered first (again, if
        it was: the caller takes it once). The
        DELETING status carries a due entry, so when this process dies before the store
        removed the execution, any runtime finishes the deletion.

        Raises:
            ResourceConflictError: the execution has not ended.

        """
        h = self._require(arn)
        if h.status in TERMINAL_STATUSES:
            for entry in self.store.due(arn=arn, kinds=[DueKind.NOTIFY]):
                # the caller of a chained child learns its outcome before the child goes
                with contextlib.suppress(NotFoundError):
                    self.complete_chained(str(entry.data.get("arn")),
                                          str(entry.data.get("op")), h.status, h.result,
                                          h.error)

        def fn(tx: Mutation) -> Any:
            h = tx.header
            if h.status == ExecutionStatus.DELETING:
                return NoCommit(tx.state.deletion_ms)
            if h.status not in TERMINAL_STATUSES:
                raise ResourceConflictError(
                    f"execution {arn} is {h.status}; only an ended execution (SUCCEEDED, "
                    "FAILED, STOPPED or TIMED_OUT) can be deleted"
                )
            for d in self.store.due(arn=arn, kinds=[DueKind.NOTIFY]):
                tx.clear_due(d.key)  # delivered above
            tx.evolve(deletion_ms=tx.now_ms)
            tx.set_due(DueKey.DELETE, DueKind.DELETE, tx.now_ms)
            tx.header_changes["status"] = ExecutionStatus.DELETING
            return tx.batch(), tx.now_ms

        requested: int = self._mutate(arn, fn)
        if finish:
            self.finish_deletion(arn)
        return {"DeletionRequestTimestamp": views.ms_to_dt(requested)}

    def finish_deletion(self, arn: str) -> bool:
        """Remove a DELETING execution from the store; False when it is not DELETING."""
        try:
            h = self.store.header(arn)
        except NotFoundError:
            return False
        if h.status != ExecutionStatus.DELETING:
            return False
        return self.store.delete(arn)
