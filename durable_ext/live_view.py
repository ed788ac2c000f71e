"""The live view of ``durable-ext run``: what an execution is doing and waiting for.

The state shown is computed from the execution's description and its history events
alone (:func:`live_state`, or :class:`HistoryFold` fed page by page), so it is the same
whichever store or service the history came from::

    state = live_state(rt.describe(arn), rt.history(arn)["Events"], now_ms=now)
    state.timers[0].seconds_left     # the next timer: a wait, a retry, a callback timeout
    state.callbacks[0].name          # what ``durable-ext callback succeed EXEC NAME`` takes

:func:`render_live` draws a state as a bounded rich view (the most recent operations, a
count of those left out), :func:`summary_lines` as the plain lines left on screen when
the command ends, and :func:`follow` drives an execution with the view on screen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shlex
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durable_ext.runtime.control import ControlPlane
    from durable_ext.serializers.readable import Decoder

__all__ = [
    "CallbackView",
    "HistoryFold",
    "HistoryFollower",
    "LiveState",
    "OperationView",
    "ProgressView",
    "TimerView",
    "callback_command",
    "follow",
    "live_state",
    "printable",
    "render_live",
    "summary_lines",
]

#: operations listed in the live view (the most recent ones; the others are counted)
DEFAULT_SHOWN = 12
#: characters of a decoded value shown in the live view and the summary
SHORT_VALUE = 60
LONG_VALUE = 400
#: at most this many timers, callbacks and map/parallel lines in the live view
MAX_LINES = 5
#: history pages read per refresh, so a long history catches up over several refreshes
PAGES_PER_POLL = 20
PAGE_SIZE = 1000

_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "STOPPED"})
_SUFFIXES = (("Started", "STARTED"), ("Succeeded", "SUCCEEDED"), ("Failed", "FAILED"),
             ("TimedOut", "TIMED_OUT"), ("Cancelled", "CANCELLED"), ("Stopped", "STOPPED"))
_PREFIXES = {"Step": "Step", "Wait": "Wait", "Callback": "Callback", "Context": "Context",
             "ChainedInvoke": "ChainedInvoke"}
_FAN_OUT = {"Map": "MapIteration", "Parallel": "ParallelBranch"}
_ENDED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"})


# ---------------------------------------------------------------- the state


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TimerView:
    """A timer the execution waits on: a wait, a step's next attempt, a callback's timeout."""

    operation: str
    kind: str
    due_ms: int
    seconds_left: float


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CallbackView:
    """A callback the execution waits for; ``by_name`` when its name finds it alone."""

    name: str | None
    callback_id: str
    by_name: bool


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ProgressView:
    """A map or parallel: its children done (failed among them) of those started so far."""

    name: str
    kind: str
    done: int
    failed: int
    started: int
    finished: bool


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OperationView:
    """One operation as listed: its latest status and a short detail."""

    name: str
    kind: str
    status: str
    attempts: int
    detail: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LiveState:
    """Everything the live view and the summary show of one execution at one moment."""

    name: str
    arn: str
    status: str
    elapsed_seconds: float
    timers: tuple[TimerView, ...]
    callbacks: tuple[CallbackView, ...]
    progress: tuple[ProgressView, ...]
    operations: tuple[OperationView, ...]
    hidden: int
    counts: tuple[tuple[str, int], ...]
    retries: int
    invocations: int
    result: str | None
    error: str | None

    @property
    def ended(self) -> bool:
        """Whether the execution has ended (it will not move again)."""
        return self.status in _ENDED


@dataclasses.dataclass(slots=True)
class _Op:
    id: str
    name: str | None
    kind: str
    parent: str | None
    status: str = "STARTED"
    last_event: int = 0
    attempts: int = 0
    due_ms: int | None = None
    timer: str = ""
    callback_id: str | None = None
    # the latest result or error: (event id, "result" | "error", payload)
    outcome: tuple[int, str, Any] | None = None
    note: str = ""


class HistoryFold:
    """The operations of an execution, folded from its history events as they come.

    Feed events in order with :meth:`add` (any repeat of an EventId already seen is
    ignored); :meth:`state` reads the fold at a moment. Payloads are decoded when shown,
    once each.
    """

    def __init__(self, decoder: Decoder | None = None) -> None:
        self.decoder = decoder
        self._ops: dict[str, _Op] = {}
        self._children: dict[str, list[str]] = {}
        self._last_event = 0
        self._invocations = 0
        self._shown: dict[tuple[int, int], str] = {}

    @property
    def last_event_id(self) -> int:
        """The EventId of the last event folded in (0 before any)."""
        return self._last_event

    def add(self, events: Iterable[Mapping[str, Any]]) -> HistoryFold:
        """Fold in more events (in history order); return ``self``."""
        for ev in events:
            event_id = int(ev.get("EventId") or self._last_event + 1)
            if event_id <= self._last_event:
                continue
            self._last_event = event_id
            self._event(event_id, ev)
        return self

    def _event(self, event_id: int, ev: Mapping[str, Any]) -> None:
        kind = str(ev.get("EventType") or "")
        if kind == "InvocationCompleted":
            self._invocations += 1
            return
        if kind.startswith("Execution") or not ev.get("Id"):
            return
        prefix, status = _split(kind)
        if prefix is None:
            return
        op_id = str(ev["Id"])
        op = self._ops.get(op_id)
        if op is None:
            parent = ev.get("ParentId")
            op = _Op(op_id, ev.get("Name"), str(ev.get("SubType") or prefix),
                     str(parent) if parent else None)
            self._ops[op_id] = op
            if op.parent is not None:
                self._children.setdefault(op.parent, []).append(op_id)
        op.name = ev.get("Name") or op.name
        op.last_event = event_id
        op.due_ms, op.timer = None, ""
        details = ev.get(f"{kind}Details")
        details = details if isinstance(details, Mapping) else {}
        at = _ms(ev.get("EventTimestamp")) or 0
        retry = details.get("RetryDetails")
        retry = retry if isinstance(retry, Mapping) else {}
        op.attempts = max(op.attempts, int(retry.get("CurrentAttempt") or 0))
        if status == "STARTED":
            self._started(op, prefix, details, at)
        elif retry.get("NextAttemptDelaySeconds") is not None:
            # A failed attempt, or a wait_for_condition check, with another one to come.
            op.status = "RETRYING"
            op.due_ms = at + int(retry["NextAttemptDelaySeconds"] or 0) * 1000
            op.timer = "retry" if status == "FAILED" else "next check"
        else:
            op.status = status
        for key, role in (("Error", "error"), ("Result", "result")):
            block = details.get(key)
            if isinstance(block, Mapping):
                op.outcome = (event_id, role, block.get("Payload"))
                break

    def _started(self, op: _Op, prefix: str, details: Mapping[str, Any], at: int) -> None:
        op.status = "STARTED"
        if prefix == "Step":
            op.attempts += 1
        elif prefix == "Wait":
            op.status = "WAITING"
            due = _ms(details.get("ScheduledEndTimestamp"))
            op.due_ms = due if due is not None else at + int(details.get("Duration") or 0) * 1000
            op.timer = "wait"
            op.note = f"{details.get('Duration')} s" if details.get("Duration") is not None else ""
        elif prefix == "Callback":
            op.status = "WAITING"
            op.callback_id = str(details.get("CallbackId") or "") or None
            if details.get("Timeout"):
                op.due_ms, op.timer = at + int(details["Timeout"]) * 1000, "callback timeout"
        elif prefix == "ChainedInvoke" and details.get("FunctionName"):
            op.note = f"invoking {details['FunctionName']}"

    def state(self, desc: Mapping[str, Any], *, now_ms: int, shown: int = DEFAULT_SHOWN,
              arn: str | None = None) -> LiveState:
        """Return the state at ``now_ms`` of the execution ``desc`` (GetDurableExecution)."""
        arn = str(arn or desc.get("DurableExecutionArn") or "")
        status = str(desc.get("Status") or "RUNNING")
        start = _ms(desc.get("StartTimestamp"))
        end = _ms(desc.get("EndTimestamp"))
        elapsed = max(0.0, ((end if end is not None else now_ms) - (start or now_ms)) / 1000)
        moving = status not in _ENDED
        ops = list(self._ops.values())
        timers = sorted(
            (TimerView(operation=_label(op), kind=op.timer, due_ms=op.due_ms,
                       seconds_left=max(0.0, (op.due_ms - now_ms) / 1000))
             for op in ops if op.due_ms is not None and moving and op.status not in _TERMINAL),
            key=lambda t: t.due_ms)
        waiting = [op for op in ops if op.callback_id and op.status == "WAITING" and moving]
        names = Counter(op.name for op in waiting)
        callbacks = tuple(CallbackView(name=op.name, callback_id=str(op.callback_id),
                                       by_name=bool(op.name) and names[op.name] == 1)
                          for op in waiting)
        recent = sorted(ops, key=lambda o: o.last_event)[-shown:] if shown > 0 else []
        counts = Counter(op.kind for op in ops)
        retries = sum(max(0, op.attempts - 1) for op in ops if op.kind == "Step")
        return LiveState(
            name=str(desc.get("DurableExecutionName") or arn),
            arn=arn,
            status=status,
            elapsed_seconds=elapsed,
            timers=tuple(timers),
            callbacks=callbacks,
            progress=tuple(self._progress(op) for op in ops if op.kind in _FAN_OUT),
            operations=tuple(self._row(op, arn) for op in recent),
            hidden=len(ops) - len(recent),
            counts=tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            retries=retries,
            invocations=self._invocations,
            result=self._result(desc, arn),
            error=_error_text(desc.get("Error"), LONG_VALUE),
        )

    def _progress(self, op: _Op) -> ProgressView:
        child_kind = _FAN_OUT[op.kind]
        children = [self._ops[c] for c in self._children.get(op.id, ())
                    if self._ops[c].kind == child_kind]
        return ProgressView(
            name=_label(op), kind=op.kind,
            done=sum(c.status in _TERMINAL for c in children),
            failed=sum(c.status == "FAILED" for c in children),
            started=len(children), finished=op.status in _TERMINAL)

    def _row(self, op: _Op, arn: str) -> OperationView:
        if op.kind in _FAN_OUT and op.status != "FAILED":
            # Its counts say more than its BatchResult would, cut to a line.
            p = self._progress(op)
            detail = f"{p.done}/{p.started} done" + (f", {p.failed} failed" if p.failed else "")
        elif op.outcome is not None:
            detail = self._shown_payload(op, arn, SHORT_VALUE)
        elif op.callback_id and op.status == "WAITING":
            detail = "waiting for a callback"
        else:
            detail = op.note
        return OperationView(name=_label(op), kind=op.kind, status=op.status,
                             attempts=op.attempts, detail=detail)

    def _shown_payload(self, op: _Op, arn: str, width: int) -> str:
        assert op.outcome is not None
        event_id, role, payload = op.outcome
        key = (event_id, width)
        if key not in self._shown:
            if role == "error":
                self._shown[key] = _error_text(payload, width) or "error"
            else:
                self._shown[key] = self._decode(payload, op.id, arn, width)
        return self._shown[key]

    def _decode(self, payload: Any, op_id: str, arn: str, width: int) -> str:
        if payload is None:
            return ""
        text = str(payload)
        if self.decoder is None:
            return _cut(text, width)
        view = self.decoder.payload(text, operation_id=op_id, execution_arn=arn)
        if view is None:
            return ""
        if "Value" in view:
            return _cut(json.dumps(view["Value"], ensure_ascii=False), width)
        what = view.get("Undecoded") or {}
        return f"({what.get('Encoding')}, {what.get('Chars')} chars, not decoded)"

    def _result(self, desc: Mapping[str, Any], arn: str) -> str | None:
        raw = desc.get("Result")
        if raw is None:
            return None
        return self._decode(raw, "", arn, LONG_VALUE)


def live_state(desc: Mapping[str, Any], events: Iterable[Mapping[str, Any]], *, now_ms: int,
               shown: int = DEFAULT_SHOWN, decoder: Decoder | None = None) -> LiveState:
    """Return the state of an execution from its description and its history events.

    Args:
        desc: GetDurableExecution's answer (status, timestamps, result, error).
        events: GetDurableExecutionHistory's events, in order (timestamps as datetimes,
            epoch milliseconds or ISO text).
        now_ms: The moment to count timers and elapsed time from (epoch milliseconds).
        shown: How many of the most recent operations to list.
        decoder: Decodes results for display (raw payload text without one).

    Example:
        >>> desc = {"DurableExecutionName": "o-1", "Status": "RUNNING", "StartTimestamp": 0}
        >>> events = [{"EventId": 1, "EventType": "WaitStarted", "Id": "w", "Name": "nap",
        ...            "EventTimestamp": 0, "WaitStartedDetails": {
        ...                "Duration": 5, "ScheduledEndTimestamp": 5000}}]
        >>> live_state(desc, events, now_ms=2000).timers[0].seconds_left
        3.0

    """
    return HistoryFold(decoder).add(events).state(desc, now_ms=now_ms, shown=shown)


# ---------------------------------------------------------------- text


def callback_command(execution: str, callback: CallbackView, backend: str | None = None) -> str:
    """Return the command that completes ``callback``: by name when that finds it alone."""
    ref = (f"{shlex.quote(execution)} {shlex.quote(callback.name or '')}" if callback.by_name
           else callback.callback_id)
    where = f" --backend {shlex.quote(backend)}" if backend else ""
    return f"durable-ext callback succeed {ref} '<json>'{where}"


def countdown(seconds: float) -> str:
    """Return ``seconds`` to go as a person reads them: ``in 7 s``, ``in 2 m 05 s``, ``due``."""
    if seconds <= 0:
        return "due"
    whole = math.ceil(seconds)
    if whole < 60:
        return f"in {whole} s"
    hours, rest = divmod(whole, 3600)
    if hours:
        return f"in {hours} h {rest // 60:02d} m"
    return f"in {rest // 60} m {rest % 60:02d} s"


def duration(seconds: float) -> str:
    """Return an elapsed time: ``4.2 s``, ``3 m 07 s``, ``2 h 01 m``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    if hours:
        return f"{hours} h {rest // 60:02d} m"
    return f"{rest // 60} m {rest % 60:02d} s"


def operation_counts(state: LiveState) -> str:
    """Return the operations by type, retries and invocations, on one line."""
    parts = [f"{n} {kind}" for kind, n in state.counts] or ["none"]
    extra = [f"{state.retries} retr{'y' if state.retries == 1 else 'ies'}"] if state.retries else []
    extra.append(f"{state.invocations} invocation{'' if state.invocations == 1 else 's'}")
    return ", ".join(parts) + " · " + ", ".join(extra)


def summary_lines(state: LiveState, *, resume: str | None = None,
                  backend: str | None = None, timeout: float | None = None,
                  interrupted: bool = False) -> list[str]:
    """Return the summary left on screen when the command ends (plain text lines).

    ``resume`` is the command that runs a still running execution on; ``backend`` goes
    into the callback commands; ``timeout`` is given when the command stopped at it,
    ``interrupted`` when Ctrl-C stopped it.
    """
    head = f"execution {state.name}: {state.status} after {duration(state.elapsed_seconds)}"
    stopped = interrupted or timeout is not None
    if state.status == "RUNNING" and interrupted:
        head += ", still running when the command was interrupted"
    elif state.status == "RUNNING" and timeout is not None:
        head += f", still running when --timeout {timeout:g} s ran out"
    elif state.status == "RUNNING" and state.callbacks:
        head += ", waiting for a callback"
    lines = [head, f"arn: {state.arn}", f"operations: {operation_counts(state)}"]
    if state.result is not None:
        lines.append(f"result: {state.result}")
    if state.error is not None:
        lines.append(f"error: {state.error}")
    for timer in state.timers[:1]:
        lines.append(f"next timer: {timer.operation} ({timer.kind}) "
                     f"{countdown(timer.seconds_left)}")
    for cb in state.callbacks:
        lines.append(f"waiting for callback {cb.name or '(unnamed)'}: "
                     f"{callback_command(state.name, cb, backend)}")
    if state.status in ("PAUSING", "PAUSED"):
        lines.append(f"resume: durable-ext resume {shlex.quote(state.name)}"
                     + (f" --backend {shlex.quote(backend)}" if backend else ""))
    elif state.status == "RUNNING" and resume and stopped:
        # (stopped early only: otherwise it waits for a callback, and running it again
        # would wait for the same one)
        lines.append(f"run it on: {resume}")
    return [printable(line) for line in lines]


def printable(text: str) -> str:
    """Return text as a terminal may show it: control characters escaped, not obeyed.

    Names and payloads come from handlers and outside senders; an escape sequence in one
    must not reach the terminal (text-armored payloads hold control characters too).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


# ---------------------------------------------------------------- rich


def render_live(state: LiveState, *, backend: str | None = None, width: int = 100) -> Any:
    """Return the live view of ``state`` as a rich renderable for a ``width`` terminal.

    Its height is bounded by the state's operations; the detail column gives way to
    the others, so no row is wider than the terminal.
    """
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    def t(text: str, style: str = "") -> Text:
        return Text(printable(text), style=style)

    lines: list[Any] = []
    head = Text.assemble(t(state.name, "bold"), "  ", t(state.status, _STYLE.get(
        state.status, "bold")), f"  elapsed {duration(state.elapsed_seconds)}")
    lines.append(head)
    if state.timers:
        timer = state.timers[0]
        more = f"  (+{len(state.timers) - 1} more)" if len(state.timers) > 1 else ""
        lines.append(Text.assemble("next timer  ", t(f"{timer.operation} ({timer.kind})"),
                                   "  ", t(countdown(timer.seconds_left), "bold yellow"), more))
    for cb in state.callbacks[:MAX_LINES]:
        lines.append(Text.assemble("waiting for callback  ", t(cb.name or "(unnamed)", "bold"),
                                   "  complete it with:"))
        lines.append(Text.assemble("  ", t(callback_command(state.name, cb, backend), "cyan")))
    if len(state.callbacks) > MAX_LINES:
        lines.append(Text(f"… {len(state.callbacks) - MAX_LINES} more callbacks waiting"))
    running = [p for p in state.progress if not p.finished]
    for p in running[:MAX_LINES]:
        failed = f", {p.failed} failed" if p.failed else ""
        lines.append(Text.assemble(f"{p.kind.lower()}  ", t(p.name, "bold"),
                                   f"  {p.done}/{p.started} done{failed}"))
    rows = [(printable(op.name), op.kind, op.status, str(op.attempts) if op.attempts else "",
             printable(op.detail)) for op in state.operations]
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="dim")
    heads = ("operation", "type", "status", "attempts", "detail")
    widths = [min(32, max([len(col), *(len(r[i]) for r in rows)]))
              for i, col in enumerate(heads[:-1])]
    for col, w in zip(heads[:-1], widths, strict=True):
        table.add_column(col, no_wrap=True, overflow="ellipsis", min_width=w, max_width=w)
    # the detail takes what is left of the line (one space between columns)
    table.add_column(heads[-1], no_wrap=True, overflow="ellipsis",
                     max_width=max(8, width - sum(widths) - 2 * len(widths)))
    for name, kind, status, attempts, detail in rows:
        style = _STYLE.get(status)
        table.add_row(escape(name), kind, f"[{style}]{status}[/]" if style else status,
                      attempts, escape(detail))
    lines.append(Text(""))
    lines.append(table)
    if state.hidden:
        lines.append(Text(f"… {state.hidden} earlier operation"
                          f"{'' if state.hidden == 1 else 's'} not shown", style="dim"))
    return Group(*lines)


_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "TIMED_OUT": "red", "STOPPED": "red",
          "RETRYING": "yellow", "WAITING": "cyan", "RUNNING": "bold cyan",
          "PAUSED": "yellow", "PAUSING": "yellow"}


# ---------------------------------------------------------------- driving


class HistoryFollower:
    """Reads the new events of an execution's history, a bounded number of pages a time.

    Each read starts from the marker of the page the last read ended on, so a refresh
    costs the new events (and that one page), not the whole history.
    """

    def __init__(self, rt: ControlPlane, arn: str, *, page_size: int = PAGE_SIZE) -> None:
        self.rt, self.arn, self.page_size = rt, arn, page_size
        self._marker: str | None = None

    def poll(self) -> list[dict[str, Any]]:
        """Return the events of the pages read now (the last page again, with its new ones)."""
        events: list[dict[str, Any]] = []
        marker = self._marker
        for _ in range(PAGES_PER_POLL):
            page = self.rt.history(self.arn, include_execution_data=True,
                                   max_items=self.page_size, marker=marker)
            events.extend(page.get("Events") or ())
            following = page.get("NextMarker")
            if not following:
                break
            marker = str(following)
        self._marker = marker
        return events


def follow(rt: ControlPlane, arn: str, *, timeout: float, console: Any,
           now_ms: Callable[[], int], decoder: Decoder | None = None,
           backend: str | None = None, refresh: float = 0.25,
           interrupted: Callable[[LiveState], None] | None = None) -> LiveState:
    """Run the execution on for at most ``timeout`` s with its live view; return its state.

    The view is transient: what stays on screen is for the caller to print (a
    :func:`summary_lines`), so it is complete and in the scrollback. Ctrl-C ends the
    view, hands the last state to ``interrupted`` and is raised on.
    """
    from rich.live import Live

    errors: list[BaseException] = []

    def work() -> None:
        try:
            rt.settle(arn, timeout)
        except BaseException as exc:  # raised on in the caller's thread
            errors.append(exc)

    fold = HistoryFold(decoder)
    follower = HistoryFollower(rt, arn)

    def current() -> LiveState:
        fold.add(follower.poll())
        return fold.state(rt.describe(arn), now_ms=now_ms(), arn=arn,
                          shown=_fitting(console))

    worker = threading.Thread(target=work, name="durable-ext-run", daemon=True)
    worker.start()
    state = current()
    with Live(render_live(state, backend=backend, width=console.width), console=console,
              transient=True, refresh_per_second=max(1, round(1 / refresh))) as view:
        try:
            while worker.is_alive():
                worker.join(refresh)
                state = current()
                view.update(render_live(state, backend=backend, width=console.width))
        except KeyboardInterrupt:
            view.stop()
            if interrupted is not None:
                interrupted(state)
            raise
    if errors:
        raise errors[0]
    return current()


def _fitting(console: Any) -> int:
    # Room for the header lines (status, timer, a few callbacks and maps), the table's
    # head and the hidden count, so the frame fits the terminal as it is.
    height = int(getattr(getattr(console, "size", None), "height", 24) or 24)
    return max(3, min(DEFAULT_SHOWN, height - 12))


# ---------------------------------------------------------------- small pieces


def _split(event_type: str) -> tuple[str | None, str]:
    for suffix, status in _SUFFIXES:
        if event_type.endswith(suffix):
            prefix = _PREFIXES.get(event_type[: -len(suffix)])
            return prefix, status
    return None, ""


def _label(op: _Op) -> str:
    return op.name or op.id[:12]


def _ms(value: Any) -> int | None:
    """Epoch milliseconds of a timestamp given as a datetime, a number or ISO text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value)
    with contextlib.suppress(ValueError):
        return int(datetime.fromisoformat(str(value)).timestamp() * 1000)
    return None


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())  # one line: newlines in a value would break the frame
    return text if len(text) <= width else text[: width - 1] + "…"


def _error_text(error: Any, width: int) -> str | None:
    if error is None:
        return None
    if isinstance(error, Mapping):
        kind, message = error.get("ErrorType"), error.get("ErrorMessage")
        text = ": ".join(str(p) for p in (kind, message) if p) or json.dumps(dict(error))
    else:
        text = str(error)
    return _cut(text, width)

