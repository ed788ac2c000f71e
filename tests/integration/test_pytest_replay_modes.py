"""Always-replay, step mocks, callback responders and typed values in the pytest plugin.

The inner sessions are the user's: test files run by pytest through pytester, the plugin
loaded through its entry point. Failures must name what went wrong and the user's line.
"""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["pytester"]

HANDLERS = '''
import itertools
import os
import random
import time
import uuid
from dataclasses import dataclass

import durable_ext
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration, StepConfig
from aws_durable_execution_sdk_python.exceptions import CallbackTimeoutError

SENT = []
FLIP = itertools.count()


@dataclass
class Order:
    id: str
    qty: int


MSGPACK = durable_ext.serdes("msgpack", types=[Order])


@durable_execution
def gamble(event, ctx):
    ctx.step(lambda _: "start", name="start")
    if random.random() < 2:  # <- random branch
        ctx.step(lambda _: "heads", name="heads")
    else:
        ctx.step(lambda _: "tails", name="tails")
    return "done"


@durable_execution
def flips(event, ctx):
    ctx.step(lambda _: 1, name="one")
    if next(FLIP) % 2 == 0:
        ctx.step(lambda _: 2, name="even")  # <- even
    else:
        ctx.step(lambda _: 2, name="odd")  # <- flipped
    ctx.step(lambda _: 3, name="three")
    return "done"


@durable_execution
def reads(event, ctx):
    started = time.time()  # <- time
    token = uuid.uuid4().hex  # <- uuid
    region = os.environ.get("AWS_REGION")  # <- env
    stamp = ctx.step(lambda _: time.time(), name="inside")
    return {"ok": bool(started and token and stamp), "region": region}


@durable_execution
def mailer(event, ctx):
    SENT.append("welcome")  # a side effect outside any step
    ctx.step(lambda _: 1, name="a")
    ctx.step(lambda _: 2, name="b")
    return len(SENT)


@durable_execution
def safe(event, ctx):
    a = ctx.step(lambda _: event["n"], name="a")
    ctx.wait(Duration.from_seconds(60), name="pause")
    b = ctx.step(lambda _: a + 1, name="b")
    got = ctx.map([1, 2, 3], lambda c, x, i, xs: c.step(lambda _: x * b, name=f"m{i}"),
                  name="fan")
    return {"b": b, "fan": got.get_results()}


@durable_execution
def pay(event, ctx):
    receipt = ctx.step(lambda _: charge_card(event["card"]), name="charge")
    approval = ctx.create_callback(
        name="approval", config=CallbackConfig(timeout=Duration.from_seconds(3600)))
    try:
        answer = approval.result()
    except CallbackTimeoutError:
        answer = "timed out"
    except Exception as exc:
        answer = f"failed: {exc}"
    return {"receipt": receipt, "answer": answer}


def charge_card(card):
    raise ConnectionError("the real card network is not reachable from tests")


@durable_execution
def typed(event, ctx):
    order = ctx.step(lambda _: Order("o-1", 3), name="load",
                     config=StepConfig(serdes=MSGPACK))
    return order.qty
'''


@pytest.fixture
def handlers(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(handlers=HANDLERS)
    return pytester


def _line(marker: str) -> int:
    return next(i for i, text in enumerate(HANDLERS.splitlines(), 0) if marker in text)


def test_always_replay_catches_a_stepless_random_branch(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_gamble='''
        import pytest
        from handlers import gamble

        @pytest.mark.durable(always_replay=True)
        def test_gamble(durable_runtime):
            run = durable_runtime.run(gamble)
            assert run.result == "done"

        def test_without_always_replay_it_passes(durable_runtime):
            assert durable_runtime.run(gamble).result == "done"
    ''')
    result = handlers.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*ReplayDivergenceError: the handler is not replay-safe (always-replay*",
        f"*random.random() outside a step at handlers.py:{_line('<- random branch')} in "
        "gamble: if random.random() < 2:*",
    ])


def test_always_replay_replays_after_every_operation(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_flips='''
        import pytest
        from handlers import flips

        def test_flips(durable_runtime):
            durable_runtime.run(flips)
    ''')
    result = handlers.runpytest("-p", "no:cacheprovider", "--durable-always-replay")
    result.assert_outcomes(failed=1)
    # the first run takes one branch, its replay the other: caught on the first run
    out = result.stdout.str()
    found = re.search(r"recorded STEP '(even|odd)', the handler now runs STEP '(even|odd)'", out)
    assert found is not None and found.group(1) != found.group(2), out
    now = "<- even" if found.group(2) == "even" else "<- flipped"
    assert f"at handlers.py:{_line(now)} in flips:" in out, out


def test_culprits_are_named_with_their_lines(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_reads='''
        from handlers import reads

        def test_reads(durable_runtime):
            durable_runtime.run(reads)
    ''')
    handlers.makeini("[pytest]\ndurable_always_replay = true\n")
    result = handlers.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"*time.time() outside a step at handlers.py:{_line('<- time')} in reads*",
        f"*uuid.uuid4() outside a step at handlers.py:{_line('<- uuid')} in reads*",
        f"*os.environ.get() outside a step at handlers.py:{_line('<- env')} in reads*",
    ])
    assert "handlers.py:" + str(_line("name=\"inside\"")) not in result.stdout.str()


def test_side_effects_outside_steps_show_under_always_replay(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_mailer='''
        import pytest
        import handlers

        @pytest.mark.durable(always_replay=True)
        def test_mail_sent_once(durable_runtime):
            handlers.SENT.clear()
            run = durable_runtime.run(handlers.mailer)
            assert handlers.SENT == ["welcome"]

        def test_normal_run(durable_runtime):
            handlers.SENT.clear()
            durable_runtime.run(handlers.mailer)
            assert handlers.SENT == ["welcome"]
    ''')
    result = handlers.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*assert ?'welcome', 'welcome'? == ?'welcome'?*"])


def test_a_replay_safe_handler_passes_always_replay(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_safe='''
        import pytest
        from handlers import safe

        @pytest.mark.durable(always_replay=True)
        def test_safe(durable_runtime):
            run = durable_runtime.run(safe, {"n": 1})
            assert run.result == {"b": 2, "fan": [2, 4, 6]}
            assert [op.name for op in run.operations][:3] == ["a", "pause", "b"]
            assert durable_runtime.findings == []
    ''')
    handlers.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_step_mocks_and_callback_responders(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_pay='''
        import pytest
        from handlers import pay

        def test_answered(durable_runtime):
            durable_runtime.mock_step("charge", value="r-1")
            durable_runtime.respond("approval", {"ok": True})
            run = durable_runtime.run(pay, {"card": "4242"})
            assert run.result == {"receipt": "r-1", "answer": '{"ok": true}'}
            assert run.operation("charge").value == "r-1"

        def test_mock_with_a_body(durable_runtime):
            durable_runtime.mock_step("charge", lambda step_ctx: f"attempt {step_ctx.attempt}")
            durable_runtime.respond("approval", "yes")
            assert durable_runtime.run(pay, {"card": "1"}).result["receipt"] == "attempt 1"

        def test_failure(durable_runtime):
            durable_runtime.mock_step("charge", value="r-2")
            durable_runtime.respond("approval", error="declined")
            assert durable_runtime.run(pay, {"card": "1"}).result["answer"] == \\
                "failed: declined"

        def test_timeout(durable_runtime, durable_clock):
            durable_runtime.mock_step("charge", value="r-3")
            durable_runtime.respond("approval", timeout=True)
            start = durable_clock.now_ms()
            assert durable_runtime.run(pay, {"card": "1"}).result["answer"] == "timed out"
            assert durable_clock.now_ms() - start >= 3600 * 1000

        def test_after_virtual_time(durable_runtime, durable_clock):
            durable_runtime.mock_step("charge", value="r-4")
            durable_runtime.respond("approval", "late", after=1800)
            start = durable_clock.now_ms()
            assert durable_runtime.run(pay, {"card": "1"}).result["answer"] == "late"
            assert 1800 * 1000 <= durable_clock.now_ms() - start < 3600 * 1000

        def test_too_late_times_out(durable_runtime):
            durable_runtime.mock_step("charge", value="r-5")
            durable_runtime.respond("approval", "late", after=7200)
            assert durable_runtime.run(pay, {"card": "1"}).result["answer"] == "timed out"

        def test_mocked_step_raising(durable_runtime):
            durable_runtime.mock_step("charge", raises=ValueError("card declined"))
            run = durable_runtime.run(pay, {"card": "1"})
            assert run.status == "FAILED"
            assert "card declined" in run.error["ErrorMessage"]

        def test_without_a_mock_the_real_body_runs(durable_runtime):
            durable_runtime.respond("approval", "yes")
            run = durable_runtime.run(pay, {"card": "1"})
            assert run.status == "FAILED"
            assert "card network" in run.error["ErrorMessage"]
    ''')
    handlers.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=8)


def test_value_decodes_with_the_handlers_serdes_and_types(handlers: pytest.Pytester) -> None:
    handlers.makepyfile(test_typed='''
        from handlers import Order, typed

        def test_typed(durable_runtime):
            run = durable_runtime.run(typed)
            assert run.result == 3
            assert run.operation("load").value == Order("o-1", 3)
    ''')
    handlers.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
