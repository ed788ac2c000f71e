"""One handler loader and one naming rule, through the real ``durable-ext`` command.

Each test runs the installed command in a subprocess, from a project directory of its own
(a package ``app`` next to the store), the way a user runs it from a shell.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cli_server import health, serving

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "durable_ext.cli"]

APP = textwrap.dedent(
    """
    import json
    from aws_durable_execution_sdk_python import DurableContext, durable_execution


    @durable_execution
    def process_order(event, ctx: DurableContext):
        total = ctx.step(lambda _: event["n"] * 2, name="double")
        cb = ctx.create_callback(name="approval")
        return {"total": total, "approved": json.loads(cb.result())}


    @durable_execution
    def refund(event, ctx: DurableContext):
        return {"refunded": event["n"]}
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: ``app/handlers.py`` in the current directory, nothing installed."""
    proj = tmp_path / "proj"
    (proj / "app").mkdir(parents=True)
    (proj / "app" / "__init__.py").write_text("")
    (proj / "app" / "handlers.py").write_text(APP)
    return proj


def durable_ext(cwd: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DURABLE_EXT_BACKEND")}
    return subprocess.run([*CLI, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def waiting_callback(out: str) -> str:
    data: dict[str, Any] = json.loads(out)
    [(_name, callback_id)] = data["WaitingCallbacks"]
    return str(callback_id)


def test_readme_flow_run_here_and_callback_from_another_shell(tmp_path: Path) -> None:
    """`run examples/order_workflow.py:handler --name o-1`, then the callback elsewhere."""
    here = tmp_path / "here"
    elsewhere = tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    shutil.copytree(ROOT / "examples", here / "examples")
    store = f"file://{here / '.durable'}"
    run = durable_ext(here, "run", "examples/order_workflow.py:handler", "--input",
                      '{"order_id": "o-1"}', "--name", "o-1", "--virtual-time", "--json",
                      "--backend", store)
    assert run.returncode == 3, run.stderr[-2000:]
    assert json.loads(run.stdout)["DurableExecutionArn"].split(":")[6] == "order-workflow"
    cb = durable_ext(elsewhere, "callback", "succeed", waiting_callback(run.stdout),
                     '{"approved": true}', "--backend", store, "--json")
    assert cb.returncode == 0, cb.stderr[-2000:]
    assert json.loads(cb.stdout)["Result"]["status"] == "shipped"


def test_a_module_of_the_current_directory_runs_and_resumes_elsewhere(project: Path,
                                                                      tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    run = durable_ext(project, "run", "app.handlers:process_order", "--input", '{"n": 4}',
                      "--json", "--backend", store)
    assert run.returncode == 3, run.stderr[-2000:]
    arn = json.loads(run.stdout)["DurableExecutionArn"]
    assert arn.split(":")[6] == "handlers-process-order"  # the one naming rule
    cb = durable_ext(tmp_path, "callback", "succeed", waiting_callback(run.stdout), "true",
                     "--backend", store, "--json")
    assert cb.returncode == 0, cb.stderr[-2000:]
    assert json.loads(cb.stdout)["Result"] == {"total": 8, "approved": True}


def test_a_handler_that_cannot_be_loaded_again_is_a_one_line_error(project: Path,
                                                                   tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    run = durable_ext(project, "run", "app.handlers:process_order", "--input", '{"n": 1}',
                      "--json", "--backend", store)
    assert run.returncode == 3, run.stderr[-2000:]
    shutil.rmtree(project / "app")
    cb = durable_ext(tmp_path, "callback", "succeed", waiting_callback(run.stdout), "true",
                     "--backend", store)
    assert cb.returncode == 2
    lines = [line for line in cb.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in cb.stderr
    assert lines[0].startswith("durable-ext: error: cannot run execution")
    assert "app.handlers:process_order" in lines[0] and str(project) in lines[0]
    assert "run from the directory" in lines[0]
    # the callback itself was delivered; the execution waits to be run on
    show = durable_ext(tmp_path, "executions", "show", run.stdout and json.loads(
        run.stdout)["DurableExecutionArn"], "--backend", store, "--json")
    assert json.loads(show.stdout)["Status"] == "RUNNING"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["run", "no_such_module_xyz:handler"], "cannot import handler 'no_such_module_xyz"),
        (["run", "app.handlers:nope"], "has no attribute 'nope'"),
        (["run", "missing/file.py:handler"], "no such file"),
        (["serve", "--handlers", "app.handlers:refund", "other=app.handlers:refund",
          "app.handlers:refund"], "two handlers are named 'handlers-refund'"),
        (["worker", "--backend", "memory://", "--handlers", "no_such_module_xyz"],
         "cannot import handler 'no_such_module_xyz'"),
        (["worker", "--backend", "memory://", "--handlers", "x=app.handlers:refund",
          "--plain", "x=app.handlers:refund"], "two handlers are named 'x'"),
    ],
)
def test_import_failures_and_duplicate_names_are_one_line_errors(project: Path, argv: list[str],
                                                                 words: str) -> None:
    proc = durable_ext(project, *argv, "--backend", "memory://") if argv[0] == "run" \
        else durable_ext(project, *argv)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("durable-ext: error")]
    assert len(lines) == 1 and words in lines[0], proc.stderr[-2000:]


@pytest.mark.parametrize("isolation", ["inline", "http"])
def test_serve_loads_a_package_of_the_current_directory(project: Path, tmp_path: Path,
                                                        isolation: str) -> None:
    with serving(["--backend", f"file://{tmp_path / 'store'}", "--isolation", isolation,
                  "--handlers", "app.handlers:process_order", "orders=app.handlers:refund"],
                 project) as srv:
        assert sorted(health(srv.port)["functions"]) == ["handlers-process-order", "orders"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{srv.port}/2015-03-31/functions/orders/invocations",
            data=b'{"n": 3}', method="POST", headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            assert json.loads(r.read()) == {"refunded": 3}


def test_worker_loads_a_package_of_the_current_directory(project: Path, tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    proc = durable_ext(project, "worker", "--backend", store, "--handlers",
                       "app.handlers:refund", "--max-seconds", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "invocations=0" in proc.stderr


HOSTILE_APP = textwrap.dedent(
    """
    import durable_ext
    from aws_durable_execution_sdk_python import DurableContext, durable_execution
    from aws_durable_execution_sdk_python.config import CallbackConfig


    @durable_execution
    def waits(event, ctx: DurableContext):
        cb = ctx.create_callback(name="in", config=CallbackConfig(serdes=durable_ext.serdes()))
        return {"got": repr(cb.result())[:40]}
    """
)


def test_a_hostile_callback_result_does_not_crash_an_inline_server(project: Path,
                                                                   tmp_path: Path) -> None:
    """400 nested extension types in ~2 KB, sent as a callback result: once enough to crash
    the interpreter of `serve --isolation inline` (SIGSEGV); now the execution fails with a
    SerDesError naming the bound and the server keeps answering."""
    import boto3
    from hostile import msgpack_frame, nested_ext

    (project / "app" / "hostile.py").write_text(HOSTILE_APP)
    with serving(["--backend", f"file://{tmp_path / 'store'}", "--isolation", "inline",
                  "--handlers", "waits=app.hostile:waits"], project) as srv:
        lam = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{srv.port}",
                           region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x")
        arn = lam.invoke(FunctionName="waits", InvocationType="Event",
                         Payload=b"{}")["DurableExecutionArn"]
        callback_id = None
        for _ in range(300):
            events = lam.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
            started = [e for e in events if e["EventType"] == "CallbackStarted"]
            if started:
                callback_id = started[0]["CallbackStartedDetails"]["CallbackId"]
                break
            time.sleep(0.05)
        assert callback_id is not None
        payload = msgpack_frame(nested_ext(1, 400), 1)
        lam.send_durable_execution_callback_success(CallbackId=callback_id,
                                                    Result=payload.encode())
        for _ in range(300):
            status = lam.get_durable_execution(DurableExecutionArn=arn)["Status"]
            if status != "RUNNING":
                break
            time.sleep(0.05)
        assert srv.proc.poll() is None, "the server died"
        assert status == "FAILED"
        error = lam.get_durable_execution(DurableExecutionArn=arn)["Error"]
        assert "max_depth" in error["ErrorMessage"]
        assert health(srv.port)["status"] == "ok"
