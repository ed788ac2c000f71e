"""Replay-aware logging through real handlers over several invocations.

Handlers run under the official testing SDK's in-process runner, which calls the SDK
as Lambda does and replays the handler from the top after each wait, retry and
callback. Each test records which lines every invocation emitted and checks the exact
list: nothing replayed comes back, no new-work line is lost or doubled.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_durable_execution_sdk_python import durable_execution, durable_step
from aws_durable_execution_sdk_python.config import (
    Duration,
    ParallelBranch,
    StepConfig,
)
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy
from aws_durable_execution_sdk_python.waits import (
    WaitForConditionConfig,
    WaitForConditionDecision,
)
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

import durable_ext
import durable_ext.logging as dlog
from durable_ext.log_format import JsonFormatter

APP = "durable_ext_tests.app"
RETRY_TWICE = StepConfig(
    retry_strategy=create_retry_strategy(
        RetryStrategyConfig(max_attempts=3, initial_delay=Duration.from_seconds(1))
    )
)


class Capture(logging.Handler):
    """Keeps (invocation number, record) for every record that reaches it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.invocation = 0
        self.records: list[tuple[int, logging.LogRecord]] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.records.append((self.invocation, record))

    def counted(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def run(event: Any, context: Any) -> Any:
            self.invocation += 1
            return handler(event, context)

        return run

    def lines(self, *, sort: bool = False) -> list[tuple[int, str]]:
        got = [(n, r.getMessage()) for n, r in self.records]
        return sorted(got) if sort else got


@pytest.fixture
def cap() -> Iterator[Capture]:
    handler = Capture()
    app = logging.getLogger(APP)
    app.addHandler(handler)
    app.setLevel(logging.DEBUG)
    app.propagate = False
    try:
        yield handler
    finally:
        app.removeHandler(handler)
        dlog.uninstall()


def run(handler: Callable[..., Any], payload: Any = None) -> Any:
    with DurableFunctionTestRunner(handler=handler) as runner:
        result = runner.run(input=json.dumps(payload or {}), execution_timeout=60)
    assert result.status.name == "SUCCEEDED", result.error
    return json.loads(result.result) if result.result else None


log = logging.getLogger(APP)


def test_steps_waits_and_retries_emit_each_line_once(cap: Capture) -> None:
    seen_arns: set[str] = set()

    @durable_step
    def flaky(step_ctx: Any) -> int:
        log.info("flaky attempt %d", step_ctx.attempt)
        if step_ctx.attempt < 3:
            raise ValueError("not yet")
        return 7

    @durable_execution
    @cap.counted
    @dlog.replay_aware
    def handler(event: Any, ctx: Any) -> int:
        seen_arns.add(ctx.execution_context.durable_execution_arn)
        log.info("start")
        first = ctx.step(lambda _: 1, name="one")
        log.info("after one")
        value = ctx.step(flaky(), config=RETRY_TWICE)
        log.warning("after flaky")
        ctx.wait(Duration.from_seconds(5))
        log.info("after wait")
        second = ctx.step(lambda _: 2, name="two")
        log.error("end %d", first + value + second)
        return int(first + value + second)

    assert run(handler) == 10
    assert cap.lines() == [
        (1, "start"),
        (1, "after one"),
        (1, "flaky attempt 1"),
        (2, "flaky attempt 2"),
        (3, "flaky attempt 3"),
        (3, "after flaky"),
        (4, "after wait"),
        (4, "end 10"),
    ]
    # every emitted line is new work, and carries where it came from
    by_msg = {r.getMessage(): r for _, r in cap.records}
    assert all(r.replayed is False for r in by_msg.values())  # type: ignore[attr-defined]
    assert by_msg["flaky attempt 2"].attempt == 2  # type: ignore[attr-defined]
    assert by_msg["flaky attempt 3"].operationName == "flaky"  # type: ignore[attr-defined]
    assert by_msg["flaky attempt 3"].funcName == "flaky"
    arns = {r.executionArn for r in by_msg.values()}  # type: ignore[attr-defined]
    assert arns == seen_arns and len(arns) == 1
    assert not hasattr(by_msg["start"], "operationId")


def test_without_the_decorator_the_same_handler_repeats_lines(cap: Capture) -> None:
    """The control: what the SDK does to a plain logger on replay."""

    @durable_execution
    @cap.counted
    def handler(event: Any, ctx: Any) -> None:
        log.info("start")
        ctx.step(lambda _: log.info("in step"), name="s")
        ctx.wait(Duration.from_seconds(1))
        log.info("after wait")

    run(handler)
    assert cap.lines() == [(1, "start"), (1, "in step"), (2, "start"), (2, "after wait")]


def test_child_contexts_and_branches_on_threads(cap: Capture) -> None:
    def item(ctx: Any, x: int, index: int, items: Any) -> int:
        log.info("item %d", x)
        if x == 2:  # one branch suspends, so which invocation resumes it is certain
            ctx.wait(Duration.from_seconds(1))
        log.info("item %d done on %s", x, "worker" if threading.current_thread()
                 is not threading.main_thread() else "main")
        return x * 10

    def branch(label: str) -> Callable[[Any], str]:
        def body(ctx: Any) -> str:
            log.info("branch %s", label)
            ctx.step(lambda _: None, name=f"s-{label}")
            log.info("branch %s stepped", label)
            return label

        return body

    def child(ctx: Any) -> int:
        log.info("child start")
        ctx.wait(Duration.from_seconds(2))
        log.info("child after wait")
        return int(ctx.step(lambda _: 5, name="inner"))

    @durable_execution
    @cap.counted
    @dlog.replay_aware
    def handler(event: Any, ctx: Any) -> list[Any]:
        log.info("top")
        got = ctx.run_in_child_context(child, name="kid")
        log.info("after child %d", got)
        mapped = ctx.map([1, 2], item, name="m").get_results()
        log.info("after map")
        par = ctx.parallel(
            [ParallelBranch(branch("a"), name="A"), branch("b")], name="p"
        ).get_results()
        log.info("end")
        return [got, mapped, par]

    assert run(handler) == [5, [10, 20], ["a", "b"]]
    assert cap.lines(sort=True) == sorted([
        (1, "top"),
        (1, "child start"),
        (2, "child after wait"),
        (2, "after child 5"),
        (2, "item 1"),
        (2, "item 1 done on worker"),
        (2, "item 2"),
        (3, "item 2 done on worker"),
        (3, "after map"),
        (3, "branch a"),
        (3, "branch b"),
        (3, "branch a stepped"),
        (3, "branch b stepped"),
        (3, "end"),
    ])
    by_msg = {r.getMessage(): r for _, r in cap.records}
    kid = by_msg["child after wait"]
    assert kid.operationName == "kid" and kid.funcName == "child"  # type: ignore[attr-defined]
    # each branch is its own operation; the parallel's named branch keeps its name
    ids = {by_msg[m].operationId for m in ("item 1", "item 2", "branch a", "branch b")}  # type: ignore[attr-defined]
    assert len(ids) == 4
    assert by_msg["branch a"].operationName == "A"  # type: ignore[attr-defined]
    assert by_msg["item 1 done on worker"].threadName != by_msg["end"].threadName


def test_callback_submitter_and_condition_checks(cap: Capture) -> None:
    def submit(callback_id: str, wctx: Any) -> None:
        log.info("submitting")
        wctx.logger.info("submitter via ctx logger")

    def check(state: int, cctx: Any) -> int:
        log.info("check %d attempt %d", state, cctx.attempt)
        return state + 1

    def strategy(state: int, attempt: int) -> WaitForConditionDecision:
        if state >= 3:
            return WaitForConditionDecision.stop_polling()
        return WaitForConditionDecision.continue_waiting(Duration.from_seconds(1))

    @durable_execution
    @cap.counted
    @dlog.replay_aware
    def handler(event: Any, ctx: Any) -> Any:
        log.info("begin")
        answer = ctx.wait_for_callback(submit, name="approval")
        log.info("answer %s", answer)
        final = ctx.wait_for_condition(
            check, WaitForConditionConfig(initial_state=1, wait_strategy=strategy), name="poll"
        )
        log.info("final %d", final)
        return final

    with DurableFunctionTestRunner(handler=handler) as runner:
        runner.poll_interval = 0.02
        arn = runner.run_async(input="{}", execution_timeout=60)
        callback_id = runner.wait_for_callback(arn, timeout=30)
        runner.send_callback_success(callback_id, result=json.dumps("yes").encode())
        result = runner.wait_for_result(arn, timeout=60)
    assert result.status.name == "SUCCEEDED", result.error
    submitter_lines = [r for _, r in cap.records if r.getMessage() == "submitter via ctx logger"]
    assert cap.lines() == [
        (1, "begin"),
        (1, "submitting"),
        (2, 'answer "yes"'),
        (2, "check 1 attempt 1"),
        (3, "check 2 attempt 2"),
        (3, "final 3"),
    ]
    # the submitter's context logger goes to its own (root) sink: none of it under APP
    assert submitter_lines == []


def test_context_logger_keeps_the_whole_logging_api(
    cap: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    @durable_execution
    @cap.counted
    @dlog.replay_aware
    def handler(event: Any, ctx: Any) -> None:
        ctx.set_logger(log)
        ctx.logger.info("hello %s", "ctx", extra={"order": 42})
        ctx.logger.critical("critical line")
        try:
            raise KeyError("lost")
        except KeyError:
            ctx.logger.error("caught", exc_info=True, stack_info=True)
        ctx.logger.log(logging.WARNING, "via log()")
        helper(ctx.logger)

        def in_step(step_ctx: Any) -> None:
            step_ctx.logger.warning("inside step", stacklevel=1)

        ctx.step(in_step, name="s")
        ctx.wait(Duration.from_seconds(1))
        ctx.logger.info("after wait")

    def helper(logger: Any) -> None:
        logger.info("reported at the caller", stacklevel=2)

    run(handler)
    assert cap.lines() == [
        (1, "hello ctx"),
        (1, "critical line"),
        (1, "caught"),
        (1, "via log()"),
        (1, "reported at the caller"),
        (1, "inside step"),
        (2, "after wait"),
    ]
    recs = {r.getMessage(): r for _, r in cap.records}
    assert recs["hello ctx"].funcName == "handler" and recs["hello ctx"].order == 42  # type: ignore[attr-defined]
    assert recs["critical line"].levelno == logging.CRITICAL
    assert recs["caught"].exc_info is not None and recs["caught"].exc_info[0] is KeyError
    assert recs["caught"].stack_info and "handler" in recs["caught"].stack_info
    assert recs["reported at the caller"].funcName == "handler"
    step_rec = recs["inside step"]
    assert step_rec.funcName == "in_step" and step_rec.operationName == "s"  # type: ignore[attr-defined]
    assert step_rec.attempt == 1  # type: ignore[attr-defined]
    assert all(r.pathname == __file__ for r in recs.values())


def test_show_replayed_keeps_replayed_lines_tagged(cap: Capture) -> None:
    @durable_execution
    @cap.counted
    @dlog.replay_aware(show_replayed=True)
    def handler(event: Any, ctx: Any) -> None:
        log.info("start")
        ctx.wait(Duration.from_seconds(1))
        log.info("after wait")

    run(handler)
    assert cap.lines() == [(1, "start"), (2, "[replay] start"), (2, "after wait")]
    assert [r.replayed for _, r in cap.records] == [False, True, False]  # type: ignore[attr-defined]


def test_switch_from_the_environment(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dlog.SHOW_REPLAYED_ENV, "yes")

    @durable_execution
    @cap.counted
    @dlog.replay_aware(replay_prefix="")
    def handler(event: Any, ctx: Any) -> None:
        log.info("start")
        ctx.wait(Duration.from_seconds(1))

    run(handler)
    assert cap.lines() == [(1, "start"), (2, "start")]
    assert [r.replayed for _, r in cap.records] == [False, True]  # type: ignore[attr-defined]


def test_composes_with_default_serdes(cap: Capture) -> None:
    @durable_execution
    @cap.counted
    @dlog.replay_aware
    @durable_ext.default_serdes("json")
    def handler(event: Any, ctx: Any) -> Any:
        log.info("a")
        got = ctx.run_in_child_context(lambda c: c.step(lambda _: {"k": 1}, name="s"), name="c")
        ctx.wait(Duration.from_seconds(1))
        log.info("b %s", got["k"])
        return got

    assert run(handler) == {"k": 1}
    assert cap.lines() == [(1, "a"), (2, "b 1")]


# -- Powertools and structlog -----------------------------------------------------------


def test_powertools_logger(cap: Capture) -> None:
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    pt = Logger(service="durable-ext-tests-pt", logger_handler=logging.StreamHandler(stream))

    @durable_step
    def charge(step_ctx: Any, amount: int) -> int:
        pt.info("charging", amount=amount)
        if step_ctx.attempt == 1:
            raise RuntimeError("card declined")
        return amount

    @durable_execution
    @cap.counted
    @dlog.replay_aware
    def handler(event: Any, ctx: Any) -> int:
        pt.info("start")
        paid = ctx.step(charge(5), config=RETRY_TWICE)
        ctx.wait(Duration.from_seconds(1))
        ctx.set_logger(pt)
        ctx.logger.info("done via context logger")
        try:
            raise ValueError("kept")
        except ValueError:
            pt.exception("after wait")
        return int(paid)

    assert run(handler) == 5
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["message"], x.get("attempt")) for x in lines] == [
        ("start", None),
        ("charging", 1),
        ("charging", 2),
        ("done via context logger", None),
        ("after wait", None),
    ]
    first, charge1, charge2, via_ctx, after = lines
    assert charge2["operationName"] == "charge" and charge2["amount"] == 5
    assert charge2["replayed"] is False and first["executionArn"] == after["executionArn"] != ""
    assert charge1["location"].startswith("charge:") and via_ctx["location"].startswith("handler:")
    assert "_durable_ext" not in first and "_durable_ext" not in after
    assert "ValueError: kept" in after["exception"]


def test_structlog_stdlib_integration(cap: Capture) -> None:
    structlog = pytest.importorskip("structlog")
    stream = io.StringIO()
    sink = logging.StreamHandler(stream)
    sink.setFormatter(
        structlog.stdlib.ProcessorFormatter(processor=structlog.processors.JSONRenderer())
    )
    std = logging.getLogger("durable_ext_tests.structlog")
    std.addHandler(sink)
    std.setLevel(logging.INFO)
    std.propagate = False
    structlog.configure(
        processors=[
            dlog.add_durable_fields,
            structlog.stdlib.add_log_level,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    try:
        slog = structlog.get_logger("durable_ext_tests.structlog")

        @durable_execution
        @cap.counted
        @dlog.replay_aware
        def handler(event: Any, ctx: Any) -> None:
            slog.info("start", order=1)
            ctx.step(lambda _: slog.info("in step"), name="s")
            ctx.wait(Duration.from_seconds(1))
            slog.info("after wait")

        run(handler)
    finally:
        structlog.reset_defaults()
        std.removeHandler(sink)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [x["event"] for x in lines] == ["start", "in step", "after wait"]
    assert lines[1]["operationName"] == "s" and lines[0]["order"] == 1
    assert all(x["replayed"] is False and "executionArn" in x for x in lines)


def test_structlog_through_the_filter_alone(cap: Capture) -> None:
    """Without the processor, structlog's stdlib records are still judged by the filter."""
    structlog = pytest.importorskip("structlog")
    structlog.configure(
        processors=[structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    try:
        slog = structlog.get_logger(APP)

        @durable_execution
        @cap.counted
        @dlog.replay_aware
        def handler(event: Any, ctx: Any) -> None:
            slog.info("start")
            ctx.wait(Duration.from_seconds(1))
            slog.info("after wait")

        run(handler)
    finally:
        structlog.reset_defaults()
    assert cap.lines() == [(1, "start"), (2, "after wait")]


def test_json_formatter_on_real_records(cap: Capture) -> None:
    cap.setFormatter(JsonFormatter(static={"service": "orders"}))

    @durable_execution
    @cap.counted
    @dlog.replay_aware
    def handler(event: Any, ctx: Any) -> None:
        ctx.step(lambda _: log.info("charged", extra={"amount": 3}), name="charge")

    run(handler)
    [(_, record)] = cap.records
    out = json.loads(cap.format(record))
    assert out["message"] == "charged" and out["service"] == "orders" and out["amount"] == 3
    assert out["operationName"] == "charge" and out["attempt"] == 1 and out["replayed"] is False
    assert out["executionArn"] and out["level"] == "INFO"
    assert "_durable_ext" not in out


def test_wrong_decorator_order_is_refused(cap: Capture) -> None:
    @dlog.replay_aware
    @durable_execution
    def handler(event: Any, ctx: Any) -> None:
        log.info("never")

    event = {"DurableExecutionArn": "arn:x", "CheckpointToken": "t", "InitialExecutionState": {}}
    with pytest.raises(TypeError, match="below @durable_execution"):
        handler(event, None)
    assert cap.lines() == []


def test_on_the_local_runtime_with_a_callback(cap: Capture, durable_runtime: Any) -> None:
    """The same guarantees on durable_ext's own runtime (virtual clock, memory store)."""

    @durable_step
    def charge(step_ctx: Any) -> int:
        log.info("charge attempt %d", step_ctx.attempt)
        if step_ctx.attempt == 1:
            raise ConnectionError("gateway down")
        return 3

    def item(ctx: Any, x: int, index: int, items: Any) -> int:
        log.info("item %d", x)
        return int(ctx.step(lambda _: x, name=f"item-{x}"))

    @durable_execution
    @cap.counted
    @dlog.replay_aware
    def handler(event: Any, ctx: Any) -> Any:
        log.info("start")
        paid = ctx.step(charge(), config=RETRY_TWICE)
        log.info("paid %d", paid)
        answer = ctx.wait_for_callback(lambda cid, w: log.info("asking"), name="approval")
        log.info("answer %s", answer)
        got = ctx.map([1, 2], item, name="fan-out").get_results()
        ctx.wait(Duration.from_seconds(7 * 86400))
        log.info("a week later %s", got)
        return got

    run = durable_runtime.run(handler)
    assert cap.lines() == [(1, "start"), (1, "charge attempt 1"), (2, "charge attempt 2"),
                           (2, "paid 3"), (2, "asking")]
    run.succeed_callback("approval", "ok")
    assert run.result == [1, 2]
    assert cap.lines(sort=True) == sorted([
        (1, "start"), (1, "charge attempt 1"), (2, "charge attempt 2"), (2, "paid 3"),
        (2, "asking"), (3, "answer ok"), (3, "item 1"), (3, "item 2"),
        (4, "a week later [1, 2]"),
    ])
