"""The pytest plugin as users meet it: test files run by pytest through pytester.

The inner sessions load the plugin the way a user's does, through the ``pytest11``
entry point of the installed distribution (no conftest, no ``-p``).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import Duration

from durable_ext.logging import replay_aware, uninstall

pytest_plugins = ["pytester"]

HANDLERS = '''
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration, StepConfig
from aws_durable_execution_sdk_python.exceptions import CallbackTimeoutError
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy

RETRY = StepConfig(retry_strategy=create_retry_strategy(
    RetryStrategyConfig(max_attempts=3, initial_delay=Duration.from_seconds(30))))


@durable_execution
def order(event, ctx):
    total = ctx.step(lambda _: event["qty"] * 5, name="charge")
    ctx.wait(Duration.from_seconds(6 * 3600), name="cool-off")
    answer = ctx.wait_for_callback(lambda callback_id, wctx: None, name="approval")

    def ship(step_ctx):
        if step_ctx.attempt < 2:
            raise ConnectionError("carrier down")
        return "shipped"

    status = ctx.step(ship, name="ship", config=RETRY)
    return {"total": total, "answer": answer, "status": status}


@durable_execution
def deadline(event, ctx):
    cb = ctx.create_callback(name="reply",
                             config=CallbackConfig(timeout=Duration.from_seconds(3600)))
    try:
        return cb.result()
    except CallbackTimeoutError:
        return "timed out"
'''


@pytest.fixture
def handlers(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(handlers=HANDLERS)
    return pytester


def test_three_line_test_of_a_workflow(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_order='''
        from handlers import order

        def test_order(durable_runtime):
            run = durable_runtime.run(order, {"qty": 3})
            run.succeed_callback("approval", "yes")
            assert run.result == {"total": 15, "answer": "yes", "status": "shipped"}

        def test_operations_and_waiting_state(durable_runtime):
            run = durable_runtime.run(order, {"qty": 2})
            assert run.status == "RUNNING" and run.result is None
            assert [(op.name, op.status) for op in run.operations] == [
                ("charge", "SUCCEEDED"), ("cool-off", "SUCCEEDED"), ("approval", "STARTED"),
                ("approval create callback id", "STARTED"), ("approval submitter", "SUCCEEDED"),
            ]
            assert run.operation("charge").value == 10
            run.succeed_callback(result={"ok": True})
            ship = run.operation("ship")
            assert ship.status == "SUCCEEDED" and ship.attempt == 2 and ship.error is None
            assert run.status == "SUCCEEDED"
    ''')
    result = handlers.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_advance_fires_timeouts_at_the_right_moment(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_deadline='''
        from handlers import deadline

        def test_deadline(durable_runtime, durable_clock):
            start = durable_clock.now_ms()
            run = durable_runtime.run(deadline)
            assert run.status == "RUNNING"           # idle: waiting for the reply
            durable_runtime.advance(minutes=59)
            assert run.status == "RUNNING"
            durable_runtime.advance(minutes=1)
            assert run.result == "timed out"
            assert durable_clock.now_ms() - start == 3600 * 1000
    ''')
    handlers.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_an_execution_timeout_on_run_and_start(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_timeout='''
        from handlers import deadline

        def test_run_times_out(durable_runtime):
            run = durable_runtime.run(deadline, execution_timeout=60)
            durable_runtime.advance(seconds=60)
            assert run.status == "TIMED_OUT"

        def test_start_times_out(durable_runtime):
            run = durable_runtime.start(deadline, execution_timeout=30)
            durable_runtime.advance(seconds=29)
            assert run.status == "RUNNING"
            durable_runtime.advance(seconds=1)
            assert run.status == "TIMED_OUT"
    ''')
    handlers.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_file_backend_by_marker_and_by_option(handlers: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    handlers.makepyfile(test_backends='''
        import os
        import pytest
        from handlers import order

        @pytest.mark.durable(backend="file")
        def test_marked(durable_runtime, durable_backend, tmp_path):
            assert durable_backend == f"file://{tmp_path / 'durable'}"
            run = durable_runtime.run(order, {"qty": 1})
            run.succeed_callback("approval", "ok")
            assert run.status == "SUCCEEDED"
            assert os.listdir(tmp_path / "durable")    # the journal is on disk

        def test_default(durable_backend):
            assert durable_backend == os.environ["EXPECTED_BACKEND"]
    ''')
    monkeypatch.setenv("EXPECTED_BACKEND", "memory://")
    handlers.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
    monkeypatch.setenv("EXPECTED_BACKEND", "file://")
    result = handlers.runpytest("-p", "no:cacheprovider", "--durable-backend=file",
                                "-k", "marked")
    result.assert_outcomes(passed=1, deselected=1)


def test_real_clock_by_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_clock='''
        import pytest
        from durable_ext.runtime import RealClock, VirtualClock

        @pytest.mark.durable(clock="real")
        def test_real(durable_clock):
            assert isinstance(durable_clock, RealClock)

        def test_virtual(durable_clock):
            assert isinstance(durable_clock, VirtualClock)
    ''')
    pytester.runpytest("-p", "no:cacheprovider", "--strict-markers").assert_outcomes(passed=2)


def test_bad_setting_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad='''
        import pytest

        @pytest.mark.durable(backend="redis")
        def test_x(durable_runtime):
            pass
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "backend='redis' is not one of ['memory', 'file']" in result.stdout.str()


def test_lookup_errors_name_what_exists(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_lookup='''
        import pytest
        from handlers import order

        def test_lookup(durable_runtime):
            run = durable_runtime.run(order, {"qty": 1})
            with pytest.raises(LookupError, match="there are: .*'charge'"):
                run.operation("chrage")
            with pytest.raises(LookupError, match="no pending callback named 'nope'"):
                run.succeed_callback("nope", "x")
    ''')
    handlers.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_in_a_fresh_process_through_the_entry_point(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_fresh='''
        from handlers import order

        def test_order(durable_runtime):
            run = durable_runtime.run(order, {"qty": 4})
            run.succeed_callback("approval", "go")
            assert run.result["total"] == 20
    ''')
    result = handlers.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


# -- the fixture in this project's own tests -------------------------------------------


def test_replay_aware_logging_on_the_local_runtime(
    durable_runtime: Any, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("durable_ext_tests.runtime")

    @durable_execution
    @replay_aware
    def handler(event: Any, ctx: Any) -> str:
        log.info("start")
        ctx.wait(Duration.from_seconds(86400))
        log.info("a day later")
        return "done"

    caplog.set_level(logging.INFO, logger="durable_ext_tests.runtime")
    try:
        run = durable_runtime.run(handler)
    finally:
        uninstall()
    assert run.result == "done"
    assert [r.getMessage() for r in caplog.records if r.name == log.name] == [
        "start", "a day later"]
