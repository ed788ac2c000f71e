"""What the console's pages show, gathered from a control plane (no HTML here).

:func:`list_view` answers the executions list (filters, paging); :func:`execution_view`
one execution: its description, the :mod:`~durable_ext.console.timeline`, every
operation's payloads decoded by a :class:`~durable_ext.serializers.readable.Decoder`,
the callbacks it waits for and the cost estimate. Both take a query already parsed and
checked (:class:`ListQuery`), so hostile query strings stop at :meth:`ListQuery.parse`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from durable_ext.backends.store import TERMINAL_STATUSES, ExecutionStatus
from durable_ext.console.timeline import Row, Span, Timeline, build_timeline, to_ms
from durable_ext.cost import Estimate, estimate, payloads_of
from durable_ext.engine.arns import version_of
from durable_ext.errors import InvalidParameterValueError, NotFoundError
from durable_ext.runtime.listing import list_filtered
from durable_ext.serializers.readable import Decoder

if TYPE_CHECKING:
    from durable_ext.runtime.control import ControlPlane

__all__ = [
    "PAGE_SIZES",
    "STATUSES",
    "ExecutionRow",
    "ExecutionView",
    "ListQuery",
    "ListView",
    "OperationDetail",
    "OperationView",
    "PayloadView",
    "execution_view",
    "last_event_id",
    "list_view",
    "operation_detail",
    "payload_view",
    "read_events",
]

STATUSES = tuple(s.value for s in ExecutionStatus)
PAGE_SIZES = (25, 50, 100, 250, 1000)
#: most characters of one decoded value shown inline; the rest is cut, said so
SHOWN_CHARS = 4000
#: most history events an execution page lays out, and most payload characters among
#: them: a hostile or runaway execution is shown in part, said so, never read whole
MAX_EVENTS = 25_000
MAX_EVENT_CHARS = 64 << 20
_READ_PAGE = 1000
_TEXT_MAX = 256  # a name or function filter longer than any name


def _duration(start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime) -> str:
    if start is None:
        return ""
    return seconds_text(((end or now) - start).total_seconds())


def seconds_text(seconds: float) -> str:
    """Say a duration the way people read one: ``850 ms``, ``12.5 s``, ``3 min 4 s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def _function_of(function_arn: str | None) -> str:
    return (function_arn or "").rsplit(":", 1)[-1]


# ---------------------------------------------------------------- the list


@dataclass(frozen=True, slots=True, kw_only=True)
class ListQuery:
    """The executions list's filters and page, checked.

    Attributes:
        statuses: Only these statuses (all when empty).
        function: Only this function's executions.
        name: Only executions of this name.
        started_after: Epoch seconds, inclusive.
        started_before: Epoch seconds, inclusive.
        page_size: Executions per page (one of :data:`PAGE_SIZES`).
        marker: Where the page starts (the previous page's next marker).

    """

    statuses: tuple[str, ...] = ()
    function: str | None = None
    name: str | None = None
    started_after: float | None = None
    started_before: float | None = None
    page_size: int = 50
    marker: str | None = None

    @classmethod
    def parse(cls, get: Callable[[str], str | None],
              get_all: Callable[[str], Sequence[str]]) -> ListQuery:
        """Read a query string (``status`` repeatable, ``after``/``before`` ISO times).

        Raises:
            InvalidParameterValueError: a value no form of the page sends.

        """
        statuses = tuple(s for s in get_all("status") if s)
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            raise InvalidParameterValueError(f"unknown status {unknown[0][:40]!r}")
        size_text = get("size") or "50"
        # str.isdigit() also takes "²", which int() refuses: ASCII digits only.
        if not (size_text.isascii() and size_text.isdigit()) or int(size_text) not in PAGE_SIZES:
            raise InvalidParameterValueError(f"page size must be one of {list(PAGE_SIZES)}")
        return cls(statuses=statuses, function=_text(get("function"), "function"),
                   name=_text(get("name"), "name"),
                   started_after=_when(get("after"), "after"),
                   started_before=_when(get("before"), "before"),
                   page_size=int(size_text), marker=_text(get("marker"), "marker", 2048))

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """Return the query as query-string pairs, with ``changes`` applied (None drops)."""
        values: dict[str, Any] = {"function": self.function, "name": self.name,
                                  "after": _iso(self.started_after),
                                  "before": _iso(self.started_before),
                                  "size": self.page_size if self.page_size != 50 else None,
                                  "marker": self.marker}
        values.update(changes)
        pairs = [("status", s) for s in self.statuses]
        pairs += [(k, str(v)) for k, v in values.items() if v not in (None, "")]
        return pairs

    @property
    def after_text(self) -> str:
        """The start of the time range as the form shows it (UTC, to the minute)."""
        return _iso(self.started_after) or ""

    @property
    def before_text(self) -> str:
        """The end of the time range as the form shows it."""
        return _iso(self.started_before) or ""

    @property
    def filtered(self) -> bool:
        """Whether any filter is set."""
        return bool(self.statuses or self.function or self.name
                    or self.started_after is not None or self.started_before is not None)


def _text(value: str | None, what: str, longest: int = _TEXT_MAX) -> str | None:
    value = (value or "").strip()
    if len(value) > longest:
        raise InvalidParameterValueError(f"{what} is longer than {longest} characters")
    return value or None


def _when(value: str | None, what: str) -> float | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)  # the page shows and takes UTC
        # The page shows the time back in UTC: one that is out of the calendar there
        # (0001-01-01 at +01:00) is refused here rather than when the page is drawn.
        return moment.astimezone(dt.UTC).timestamp()
    except (ValueError, OverflowError):
        raise InvalidParameterValueError(
            f"{what} must be a time such as 2026-12-03T15:04, got {value[:40]!r}") from None


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    """One line of the executions list."""

    arn: str
    name: str
    function: str
    version: str
    status: str
    start: dt.datetime | None
    end: dt.datetime | None
    duration: str


@dataclass(frozen=True, slots=True)
class ListView:
    """The executions list: one page of rows, and where the next page starts."""

    query: ListQuery
    rows: tuple[ExecutionRow, ...]
    next_marker: str | None
    functions: tuple[str, ...]


def list_view(plane: ControlPlane, query: ListQuery, *,
              now: dt.datetime | None = None) -> ListView:
    """Return one page of executions matching ``query``, newest first."""
    now = now or dt.datetime.now(dt.UTC)
    page = list_filtered(plane, function_name=query.function, statuses=query.statuses,
                         name=query.name, started_after=query.started_after,
                         started_before=query.started_before, max_items=query.page_size,
                         marker=query.marker)
    rows = tuple(_execution_row(it, now) for it in page["DurableExecutions"])
    functions = tuple(sorted({r.function for r in rows}))
    return ListView(query, rows, page.get("NextMarker"), functions)


def _execution_row(item: Mapping[str, Any], now: dt.datetime) -> ExecutionRow:
    arn = str(item["DurableExecutionArn"])
    start, end = item.get("StartTimestamp"), item.get("EndTimestamp")
    return ExecutionRow(arn=arn, name=str(item.get("DurableExecutionName") or ""),
                        function=_function_of(item.get("FunctionArn")),
                        version=version_of(arn) if ":function:" in arn else "",
                        status=str(item["Status"]), start=start, end=end,
                        duration=_duration(start, end, now))


# ---------------------------------------------------------------- one execution


@dataclass(frozen=True, slots=True)
class PayloadView:
    """A payload as the page shows it: decoded JSON text, or what it is when closed.

    Attributes:
        text: The decoded value as indented JSON (cut at :data:`SHOWN_CHARS`).
        cut: Whether ``text`` was cut.
        encoding: The stage chain (``msgpack+zstd``, ``json``, ``text``).
        chars: Size of the checkpointed text.
        undecoded: What is known of a payload that could not be opened: ``Reason``,
            ``S3``, ``Bytes``, ``Encrypted``...; None when decoded.

    """

    text: str
    cut: bool
    encoding: str
    chars: int
    undecoded: Mapping[str, Any] | None = None


def payload_view(decoder: Decoder, payload: str | None, *, operation_id: str | None = None,
                 execution_arn: str = "") -> PayloadView | None:
    """Decode one payload for display (None for no payload)."""
    view = decoder.payload(payload, operation_id=operation_id, execution_arn=execution_arn)
    if view is None:
        return None
    if "Undecoded" in view:
        info = dict(view["Undecoded"])
        preview = info.pop("Preview", None)
        text = "" if preview is None else _json_text(preview)
        return PayloadView(text=text[:SHOWN_CHARS], cut=len(text) > SHOWN_CHARS,
                           encoding=str(info.pop("Encoding", "unknown")),
                           chars=int(info.pop("Chars", len(payload or ""))), undecoded=info)
    text = _json_text(view["Value"])
    return PayloadView(text=text[:SHOWN_CHARS], cut=len(text) > SHOWN_CHARS,
                       encoding=str(view["Encoding"]), chars=int(view["Chars"]))


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class Bar:
    """A span placed on the chart: left edge and width in percent."""

    span: Span
    left: float
    width: float


@dataclass(frozen=True, slots=True)
class OperationView:
    """A timeline row with its bars placed (payloads are decoded when it is opened)."""

    row: Row
    bars: tuple[Bar, ...]
    started: float
    duration: str
    due: dt.datetime | None


@dataclass(frozen=True, slots=True)
class OperationDetail:
    """One operation opened: its row and its payloads decoded."""

    arn: str
    operation: OperationView
    result: PayloadView | None
    input: PayloadView | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ExecutionView(ExecutionRow):
    """Everything the execution page shows: its list line, and the rest."""

    input: PayloadView | None
    result: PayloadView | None
    error: str | None
    pause_reason: str | None
    timeline: Timeline
    operations: tuple[OperationView, ...]
    invocations: tuple[Bar, ...]
    waiting_callbacks: tuple[OperationView, ...]
    cost: Estimate
    event_count: int
    events_shown: int
    axis: tuple[tuple[float, str], ...] = field(default=())

    @property
    def ended(self) -> bool:
        """Whether the execution has ended."""
        return self.status in TERMINAL_STATUSES

    @property
    def rerun_function(self) -> str:
        """The function (and version) a re-run starts."""
        return self.function if self.version in ("", "$LATEST") else \
            f"{self.function}:{self.version}"


def execution_view(plane: ControlPlane, arn: str, decoder: Decoder, *,
                   now: dt.datetime | None = None) -> ExecutionView:
    """Describe ``arn`` and lay out its history."""
    now = now or dt.datetime.now(dt.UTC)
    desc = plane.describe(arn)
    events, _ = read_events(plane, arn)
    timeline = build_timeline(events, to_ms(now) or 0)
    operations = tuple(_operation(timeline, row) for row in timeline.rows)
    start, end = desc.get("StartTimestamp"), desc.get("EndTimestamp")
    pause = desc.get("PauseDetails") or {}
    return ExecutionView(
        arn=arn, name=str(desc.get("DurableExecutionName") or ""),
        function=_function_of(desc.get("FunctionArn")),
        version=str(desc.get("Version") or version_of(arn)),
        status=str(desc["Status"]), start=start, end=end,
        duration=_duration(start, end, now),
        input=payload_view(decoder, desc.get("InputPayload"), execution_arn=arn),
        result=payload_view(decoder, desc.get("Result"), execution_arn=arn),
        error=_error_text(desc.get("Error")), pause_reason=pause.get("Reason"),
        timeline=timeline, operations=operations,
        invocations=tuple(_bar(timeline, s) for s in timeline.invocations),
        waiting_callbacks=tuple(o for o in operations
                                if o.row.type == "Callback" and o.row.is_open
                                and desc["Status"] not in TERMINAL_STATUSES),
        cost=estimate({"Events": events}), event_count=last_event_id(plane, arn),
        events_shown=len(events),
        axis=_axis(timeline))


def read_events(plane: ControlPlane, arn: str, *, most: int | None = None,
                most_chars: int | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Read ``arn``'s history from its start, a page at a time, within both bounds.

    ``most`` and ``most_chars`` default to :data:`MAX_EVENTS` and :data:`MAX_EVENT_CHARS`.

    Returns:
        The events read, and whether there were more.

    """
    most = MAX_EVENTS if most is None else most
    most_chars = MAX_EVENT_CHARS if most_chars is None else most_chars
    events: list[dict[str, Any]] = []
    chars = 0
    marker: str | None = None
    while len(events) < most and chars <= most_chars:
        page = plane.history(arn, include_execution_data=True,
                             max_items=min(_READ_PAGE, most - len(events)), marker=marker)
        for event in page["Events"]:
            chars += sum(len(p) for p in payloads_of(event))
        events.extend(page["Events"])
        marker = page.get("NextMarker")
        if not marker or not page["Events"]:
            return events, False
    return events, True


def last_event_id(plane: ControlPlane, arn: str) -> int:
    """Return the id of ``arn``'s newest event (its event count), reading one event."""
    page = plane.history(arn, include_execution_data=False, max_items=1, reverse_order=True)
    events = page.get("Events") or [{}]
    return int(events[0].get("EventId") or 0)


def _bar(timeline: Timeline, span: Span) -> Bar:
    left, width = timeline.place(span)
    return Bar(span, left, width)


def operation_detail(plane: ControlPlane, arn: str, operation_id: str, decoder: Decoder, *,
                     now: dt.datetime | None = None) -> OperationDetail:
    """Return one operation of ``arn`` with its payloads decoded.

    Raises:
        NotFoundError: the execution has no such operation.

    """
    now = now or dt.datetime.now(dt.UTC)
    events, _ = read_events(plane, arn)
    timeline = build_timeline(events, to_ms(now) or 0)
    row = next((r for r in timeline.rows if r.id == operation_id), None)
    if row is None:
        raise NotFoundError(f"execution {arn} has no operation {operation_id[:80]!r}")
    return OperationDetail(
        arn=arn, operation=_operation(timeline, row),
        result=payload_view(decoder, row.result, operation_id=row.id, execution_arn=arn),
        input=payload_view(decoder, row.input, operation_id=row.id, execution_arn=arn),
        error=_error_text(row.error))


def _operation(timeline: Timeline, row: Row) -> OperationView:
    due = None
    if row.due_ms is not None and row.is_open:
        due = dt.datetime.fromtimestamp(row.due_ms / 1000, dt.UTC)
    end = row.end_ms if row.end_ms is not None else (row.spans[-1].end_ms if row.spans
                                                     else row.start_ms)
    return OperationView(
        row=row, bars=tuple(_bar(timeline, s) for s in row.spans),
        started=timeline.offset(row.start_ms), duration=seconds_text((end - row.start_ms) / 1000),
        due=due)


def _error_text(error: Mapping[str, Any] | None) -> str | None:
    if not error:
        return None
    head = ": ".join(str(error[k]) for k in ("ErrorType", "ErrorMessage") if error.get(k))
    rest = {k: v for k, v in error.items() if k not in ("ErrorType", "ErrorMessage")}
    if rest:
        head += "\n" + json.dumps(rest, indent=2, ensure_ascii=False, default=str)
    return head[:SHOWN_CHARS] or "(no details)"


def _axis(timeline: Timeline, ticks: int = 4) -> tuple[tuple[float, str], ...]:
    """Return tick marks along the chart: (percent, seconds from the start)."""
    total = (timeline.end_ms - timeline.start_ms) / 1000
    return tuple((i * 100 / ticks, seconds_text(total * i / ticks)) for i in range(ticks + 1))
