"""``durable-ext pause|resume|delete`` on a file store, and the pytest plugin's pause/resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from durable_ext import cli

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]


def run_cli(capsys: Any, *argv: str) -> tuple[int, Any]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    try:
        return code, json.loads(out.out)
    except ValueError:
        return code, out.out + out.err


def test_pause_resume_delete_commands(tmp_path: Path, capsys: Any) -> None:
    store = ["--backend", f"file://{tmp_path / 'store'}"]
    code, out = run_cli(capsys, "run", "test_http_handlers:approval", "--virtual-time",
                        "--name", "order-5", "--json", *store)
    assert code == cli.EXIT_WAITING and out["Status"] == "RUNNING"
    (_, callback), = out["WaitingCallbacks"]

    code, out = run_cli(capsys, "delete", "order-5", *store)
    assert code == cli.EXIT_USAGE and "only an ended execution" in out

    code, out = run_cli(capsys, "pause", "order-5", "--reason", "release", "--json", *store)
    assert code == cli.EXIT_WAITING and out["Status"] == "PAUSED"
    code, out = run_cli(capsys, "pause", "order-5", *store)
    assert code == cli.EXIT_USAGE and "PAUSED" in out

    code, out = run_cli(capsys, "callback", "succeed", callback, "yes", "--json", *store)
    assert out["Status"] == "PAUSED"  # completed, but not run on while paused

    code, out = run_cli(capsys, "resume", "order-5", "--json", *store)
    assert code == cli.EXIT_OK and out["Status"] == "SUCCEEDED"
    assert out["Result"] == {"answer": "yes"}

    code, out = run_cli(capsys, "executions", "history", "order-5", "--json", *store)
    kinds = [e["EventType"] for e in out["Events"]]
    assert kinds.index("ExecutionPaused") < kinds.index("CallbackSucceeded") \
        < kinds.index("ExecutionResumed")

    code, out = run_cli(capsys, "delete", "order-5", "--json", *store)
    assert code == cli.EXIT_OK and out["DeletionRequestTimestamp"]
    code, out = run_cli(capsys, "executions", "show", "order-5", *store)
    assert code == cli.EXIT_USAGE and "no execution named 'order-5'" in out


def test_the_pytest_plugin_pauses_and_resumes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_paused='''
        import json
        from aws_durable_execution_sdk_python import durable_execution
        from aws_durable_execution_sdk_python.config import Duration

        @durable_execution
        def nightly(event, ctx):
            ctx.wait(Duration.from_hours(2), name="window")
            return ctx.step(lambda _: "ran", name="job")

        def test_paused_run(durable_runtime):
            run = durable_runtime.start(nightly)
            durable_runtime.advance(seconds=0)
            run.pause("freeze")
            assert run.status == "PAUSED"
            durable_runtime.advance(hours=3)
            assert run.status == "PAUSED"
            assert [op.status for op in run.operations if op.name == "window"] == ["SUCCEEDED"]
            run.resume()
            assert run.result == "ran"
            run.delete()
    ''')
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
