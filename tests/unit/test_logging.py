"""Replay-aware logging without the SDK's runner: the verdict, the scope, the plumbing."""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Iterator
from typing import Any

import pytest
from aws_durable_execution_sdk_python.logger import Logger as SdkLogger
from aws_durable_execution_sdk_python.logger import LogInfo

import durable_ext.logging as dlog
from durable_ext.errors import ConfigError


class FakeContext:
    """Stands in for a DurableContext: a replay flag and an execution ARN."""

    def __init__(self, replaying: bool) -> None:
        self.replaying = replaying
        self.execution_context = type("EC", (), {"durable_execution_arn": "arn:exec/1"})()
        self.logger = SdkLogger(logging.getLogger("unit.app"), {}, self.is_replaying)

    def is_replaying(self) -> bool:
        return self.replaying


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture(autouse=True)
def _clean_install() -> Iterator[None]:
    yield
    dlog.uninstall()


@pytest.fixture
def sink() -> Iterator[ListHandler]:
    handler = ListHandler()
    app = logging.getLogger("unit.app")
    app.addHandler(handler)
    app.setLevel(logging.DEBUG)
    app.propagate = False
    try:
        yield handler
    finally:
        app.removeHandler(handler)
        dlog.uninstall()


log = logging.getLogger("unit.app")


def run_as_handler(ctx: Any, body: Any, **options: Any) -> Any:
    decorated = dlog.replay_aware(**options)(body) if options else dlog.replay_aware(body)
    return decorated({}, ctx)


def test_replayed_lines_are_dropped_and_new_ones_enriched(sink: ListHandler) -> None:
    ctx = FakeContext(replaying=True)

    def body(event: Any, context: Any) -> str:
        log.info("replayed")
        ctx.replaying = False
        log.info("new %s", "work")
        return "ok"

    assert run_as_handler(ctx, body) == "ok"
    assert sink.messages == ["new work"]
    [rec] = sink.records
    assert rec.executionArn == "arn:exec/1" and rec.replayed is False  # type: ignore[attr-defined]
    # the private verdict is left as None, which formatters such as Powertools' drop
    assert rec.__dict__["_durable_ext"] is None


def test_inert_outside_a_durable_execution(sink: ListHandler) -> None:
    dlog.install()
    log.info("plain")
    [rec] = sink.records
    assert not any(hasattr(rec, f) for f in dlog.FIELDS)
    assert "_durable_ext" not in rec.__dict__
    assert dlog.is_replaying() is None and dlog.current_fields() == {}

    seen: list[Any] = []
    plain_ctx = object()
    dlog.replay_aware(lambda e, c: seen.append(c))({"x": 1}, plain_ctx)
    assert seen == [plain_ctx]  # a non-durable context is passed through untouched


def test_scope_helpers_inside(sink: ListHandler) -> None:
    ctx = FakeContext(replaying=True)
    got: list[Any] = []
    run_as_handler(ctx, lambda e, c: got.extend([dlog.is_replaying(), dlog.current_fields()]))
    assert got == [True, {"executionArn": "arn:exec/1", "replayed": True}]


def test_verdict_is_taken_where_the_line_is_logged(sink: ListHandler) -> None:
    """A buffering handler emits later, outside the scope: the verdict travels along."""
    dlog.install()  # the factory and the filter on `sink`; the buffer itself has no filter
    buffer = logging.handlers.MemoryHandler(capacity=100, flushLevel=logging.CRITICAL + 1,
                                            target=sink)
    buffered = logging.getLogger("unit.buffered")
    buffered.addHandler(buffer)
    buffered.setLevel(logging.DEBUG)
    buffered.propagate = False
    ctx = FakeContext(replaying=True)

    def body(event: Any, context: Any) -> None:
        buffered.info("logged while replaying")
        ctx.replaying = False
        buffered.info("logged as new work")
        ctx.replaying = True  # the status at emit time must not matter

    try:
        dlog.replay_aware(install_filter=False)(body)({}, ctx)
        buffer.flush()  # outside any scope
    finally:
        buffered.removeHandler(buffer)
    assert sink.messages == ["logged as new work"]
    assert sink.records[0].replayed is False  # type: ignore[attr-defined]


def test_show_replayed_tags_once_across_handlers(sink: ListHandler) -> None:
    second = ListHandler()
    logging.getLogger("unit.app").addHandler(second)
    ctx = FakeContext(replaying=True)
    try:
        run_as_handler(ctx, lambda e, c: log.info("again"), show_replayed=True)
    finally:
        logging.getLogger("unit.app").removeHandler(second)
    assert sink.messages == second.messages == ["[replay] again"]
    assert sink.records[0].replayed is True  # type: ignore[attr-defined]


def test_structured_messages_are_not_prefixed(sink: ListHandler) -> None:
    ctx = FakeContext(replaying=True)
    run_as_handler(ctx, lambda e, c: log.info({"event": "x"}), show_replayed=True)
    assert sink.records[0].msg == {"event": "x"}


def test_caller_extra_wins_over_durable_fields(sink: ListHandler) -> None:
    ctx = FakeContext(replaying=False)
    run_as_handler(ctx, lambda e, c: log.info("x", extra={"executionArn": "mine"}))
    assert sink.records[0].executionArn == "mine"  # type: ignore[attr-defined]


def test_context_logger_adapter(sink: ListHandler) -> None:
    ctx = FakeContext(replaying=True)
    got: list[Any] = []

    def body(event: Any, context: Any) -> None:
        adapter = context.logger
        got.append(isinstance(adapter, dlog.DurableLoggerAdapter))
        got.append(adapter.isEnabledFor(logging.ERROR))
        adapter.error("replayed")
        ctx.replaying = False
        got.append(adapter.isEnabledFor(logging.ERROR))
        adapter.critical("new", extra={"k": 1})

    run_as_handler(ctx, body)
    assert got == [True, False, True]
    assert sink.messages == ["new"]
    rec = sink.records[0]
    assert rec.k == 1 and rec.executionArn == "arn:exec/1"  # type: ignore[attr-defined]
    assert rec.funcName == "body" and rec.levelno == logging.CRITICAL


def test_context_logger_keeps_sdk_logger_when_sink_is_not_stdlib_shaped() -> None:
    class Minimal:
        def info(self, msg: object, *args: object, extra: Any = None) -> None:
            pass

    ctx = FakeContext(replaying=False)
    ctx.logger = SdkLogger(Minimal(), {}, ctx.is_replaying)
    got: list[Any] = []
    run_as_handler(ctx, lambda e, c: got.append(c.logger))
    assert got == [ctx.logger]


def test_sdk_logger_internals_we_read_are_still_there() -> None:
    """Pins the SDK 3.x attributes behind operation scopes (step, check, submitter)."""
    state = type("S", (), {"durable_execution_arn": "arn:e"})()
    info = LogInfo(state, parent_id="p", operation_id="op", name="charge", attempt=2)  # type: ignore[arg-type]
    sdk = SdkLogger.from_log_info(logging.getLogger("unit.app"), info, is_replaying=lambda: True)
    extra, source = dlog._sdk_logger_parts(sdk)
    assert extra == {"executionArn": "arn:e", "parentId": "p", "operationName": "charge",
                     "attempt": 2, "operationId": "op"}
    assert source() is True
    assert dlog._sdk_logger_parts(object())[1]() is False


def test_install_is_idempotent_and_uninstall_restores(sink: ListHandler) -> None:
    before = logging.getLogRecordFactory()
    dlog.install()
    dlog.install()
    assert sink.filters.count(dlog._FILTER) == 1
    factory = logging.getLogRecordFactory()
    assert isinstance(factory, dlog._RecordFactory) and factory.previous is before
    dlog.uninstall()
    assert dlog._FILTER not in sink.filters
    assert logging.getLogRecordFactory() is before


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("TRUE", True), (" yes ", True), ("on", True),
    ("", False), ("0", False), ("false", False), ("Off", False),
])
def test_switch_values(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv(dlog.SHOW_REPLAYED_ENV, raw)
    assert dlog._env_show_replayed() is expected


def test_bad_switch_value_says_what_and_where(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dlog.SHOW_REPLAYED_ENV, "maybe")
    with pytest.raises(ConfigError, match=r"DURABLE_EXT_LOG_REPLAYED='maybe' is not a boolean"):
        dlog.replay_aware(lambda e, c: None)
    # an explicit argument does not read the environment at all
    dlog.replay_aware(show_replayed=False)(lambda e, c: None)


def test_structlog_processor() -> None:
    structlog = pytest.importorskip("structlog")
    assert dlog.add_durable_fields(None, "info", {"event": "x"}) == {"event": "x"}
    ctx = FakeContext(replaying=True)

    def body(event: Any, context: Any) -> Any:
        with pytest.raises(structlog.DropEvent):
            dlog.add_durable_fields(None, "info", {"event": "x"})
        ctx.replaying = False
        return dlog.add_durable_fields(None, "info", {"event": "y", "executionArn": "mine"})

    assert run_as_handler(ctx, body) == {"event": "y", "executionArn": "mine", "replayed": False}


def test_scope_is_restored_after_the_handler_raises(sink: ListHandler) -> None:
    ctx = FakeContext(replaying=True)

    def body(event: Any, context: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_as_handler(ctx, body)
    assert dlog.is_replaying() is None
    log.info("after")
    assert sink.messages == ["after"]
