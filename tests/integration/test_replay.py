"""The replayer on histories recorded on a file store, on Redis and through ``lambda://``.

Each test records an execution of ``v1`` (a module written to the test's own project
directory), then replays it against versions of the handler changed the ways deploys
change them: a step renamed, an operation inserted, a branch on the time. The report
must name the operation that differs and the changed handler's own line; an unchanged
handler must replay clean; nothing of the replay may reach the recorded execution.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import free_port

from durable_ext.errors import ReplayDivergenceError
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.runtime.handlers import load_handler
from durable_ext.runtime.lambda_plane import LambdaControlPlane
from durable_ext.runtime.runtime import function_of
from durable_ext.testing import Recording, replay, replay_many

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "durable_ext.cli"]

HANDLERS = textwrap.dedent(
    """
    import json
    import os
    import time
    from aws_durable_execution_sdk_python import DurableContext, durable_execution

    CUTOFF = float(os.environ.get("REPLAY_TEST_CUTOFF", "1e12"))
    BODIES = os.environ.get("REPLAY_TEST_BODIES")


    def body(value):
        def run(_):
            if BODIES:
                with open(BODIES, "a") as f:
                    f.write(f"{value}\\n")
            return value
        return run


    @durable_execution
    def v1(event, ctx: DurableContext):
        a = ctx.step(body(event["n"]), name="reserve")
        b = ctx.step(body(a * 2), name="charge")
        cb = ctx.create_callback(name="approval")
        answer = json.loads(cb.result())
        c = ctx.step(body(b + 1), name="ship")
        return {"total": c, "answer": answer}


    @durable_execution
    def renamed(event, ctx: DurableContext):
        a = ctx.step(body(event["n"]), name="reserve")
        b = ctx.step(body(a * 2), name="bill")  # <- renamed
        cb = ctx.create_callback(name="approval")
        answer = json.loads(cb.result())
        c = ctx.step(body(b + 1), name="ship")
        return {"total": c, "answer": answer}


    @durable_execution
    def inserted(event, ctx: DurableContext):
        a = ctx.step(body(event["n"]), name="reserve")
        ctx.step(body("audit"), name="audit")  # <- inserted
        b = ctx.step(body(a * 2), name="charge")
        cb = ctx.create_callback(name="approval")
        answer = json.loads(cb.result())
        c = ctx.step(body(b + 1), name="ship")
        return {"total": c, "answer": answer}


    @durable_execution
    def on_time(event, ctx: DurableContext):
        a = ctx.step(body(event["n"]), name="reserve")
        if time.time() > CUTOFF:
            b = ctx.step(body(a * 3), name="express-charge")  # <- time branch
        else:
            b = ctx.step(body(a * 2), name="charge")
        cb = ctx.create_callback(name="approval")
        answer = json.loads(cb.result())
        c = ctx.step(body(b + 1), name="ship")
        return {"total": c, "answer": answer}


    @durable_execution
    def extra(event, ctx: DurableContext):
        a = ctx.step(body(event["n"]), name="reserve")
        b = ctx.step(body(a * 2), name="charge")
        cb = ctx.create_callback(name="approval")
        answer = json.loads(cb.result())
        c = ctx.step(body(b + 1), name="ship")
        ctx.step(body("mail"), name="notify")  # <- extra
        return {"total": c, "answer": answer}


    @durable_execution
    def broken(event, ctx: DurableContext):
        a = ctx.step(body(event["n"]), name="reserve")
        return event["missing"]  # <- broken


    @durable_execution
    def shortened(event, ctx: DurableContext):
        a = ctx.step(body(event["n"]), name="reserve")
        b = ctx.step(body(a * 2), name="charge")
        cb = ctx.create_callback(name="approval")
        return {"total": b, "answer": json.loads(cb.result())}
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The handlers' project, with a file where step bodies note that they ran."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "replay_app.py").write_text(HANDLERS)
    monkeypatch.setenv("REPLAY_TEST_BODIES", str(tmp_path / "bodies.txt"))
    return proj


def handler(project: Path, name: str) -> Any:
    return load_handler(f"{project / 'replay_app.py'}:{name}")[1]


def line_of(project: Path, marker: str) -> int:
    lines = (project / "replay_app.py").read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if marker in text)


def bodies_run(project: Path) -> list[str]:
    path = project.parent / "bodies.txt"
    return path.read_text().split() if path.exists() else []


def open_callback(plane: Any, arn: str) -> str:
    events = plane.history(arn)["Events"]
    return str(next(e["CallbackStartedDetails"]["CallbackId"] for e in events
                    if e["EventType"] == "CallbackStarted"))


def record_on(url: str, project: Path, *, finish: bool) -> tuple[Runtime, str]:
    """Record an execution of ``v1``, under a function name of its own (stores are shared)."""
    rt = Runtime(url, clock=VirtualClock())
    function = f"orders-{uuid.uuid4().hex[:12]}"
    rt.register(function, handler(project, "v1"))
    arn = rt.start(function, {"n": 5}, name=f"order-{finish}")
    rt.run_until_idle()
    if finish:
        rt.send_callback_success(open_callback(rt, arn), '"yes"')
        rt.run_until_idle()
    return rt, arn


def assert_changed_handlers_are_caught(source: Any, project: Path, plane: Any = None) -> None:
    """The three changes of the issue, each caught at operation #2 on its own line."""
    for variant, recorded, now, marker in (
        ("renamed", "'charge'", "'bill'", "<- renamed"),
        ("inserted", "'charge'", "'audit'", "<- inserted"),
        ("on_time", "'charge'", "'express-charge'", "<- time branch"),
    ):
        os.environ["REPLAY_TEST_CUTOFF"] = "0"  # the time branch takes its new path
        try:
            # the module reads its cutoff at import: load a fresh copy per variant
            sys.modules.pop("replay_app", None)
            result = replay(source, handler(project, variant), plane=plane, check=False)
        finally:
            del os.environ["REPLAY_TEST_CUTOFF"]
            sys.modules.pop("replay_app", None)
        assert not result.ok, variant
        d = result.divergence
        assert d is not None
        assert d.kind == "mismatch", result.report()
        assert d.path == "execution > #2", result.report()
        assert d.recorded is not None and d.current is not None
        assert repr(d.recorded.name) == recorded and repr(d.current.name) == now
        assert d.location is not None
        assert d.location.line == line_of(project, marker), result.report()
        assert Path(d.location.file).name == "replay_app.py"
        assert f"recorded Step {recorded}, the handler now runs Step {now}" in d.message


def assert_unchanged_replays_clean(source: Any, project: Path, plane: Any = None) -> None:
    result = replay(source, handler(project, "v1"), plane=plane)
    assert result.ok and not result.divergences, result.report()
    assert result.operations >= 3


# ---------------------------------------------------------------- file and Redis stores


@pytest.fixture(params=["file", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'store'}"
    server = request.getfixturevalue("redis_server")
    return str(server.url)


def test_changed_handlers_are_caught_on_a_running_execution(store_url: str,
                                                            project: Path) -> None:
    rt, arn = record_on(store_url, project, finish=False)
    with rt:
        assert rt.describe(arn)["Status"] == "RUNNING"
        before = rt.history(arn)["Events"]
        ran_before = bodies_run(project)
        assert_changed_handlers_are_caught(arn, project, plane=rt)
        result = replay(arn, handler(project, "v1"), plane=rt)
        # the recording ends at the open callback: the replay stops there, clean
        assert result.ok and result.status == "PENDING", result.report()
        # nothing ran and nothing was written
        assert bodies_run(project) == ran_before
        assert rt.history(arn)["Events"] == before
        assert rt.describe(arn)["Status"] == "RUNNING"


def test_an_extra_or_missing_operation_is_caught_on_a_finished_execution(
        store_url: str, project: Path) -> None:
    rt, arn = record_on(store_url, project, finish=True)
    with rt:
        assert rt.describe(arn)["Status"] == "SUCCEEDED"
        assert_unchanged_replays_clean(arn, project, plane=rt)
        ran_before = bodies_run(project)
        result = replay(arn, handler(project, "extra"), plane=rt, check=False)
        d = result.divergence
        assert d is not None and d.kind == "extra", result.report()
        assert d.path == "execution > #5" and d.current is not None
        assert d.current.name == "notify"
        assert d.location is not None and d.location.line == line_of(project, "<- extra")
        assert bodies_run(project) == ran_before  # the new step's body never ran

        result = replay(arn, handler(project, "shortened"), plane=rt, check=False)
        d = result.divergence
        assert d is not None and d.kind == "missing", result.report()
        assert d.recorded is not None and d.recorded.name == "ship"
        assert "no longer reaches it" in d.message


def test_a_handler_that_now_fails_in_flight_executions_is_caught(store_url: str,
                                                                 project: Path) -> None:
    rt, arn = record_on(store_url, project, finish=False)
    with rt:
        result = replay(arn, handler(project, "broken"), plane=rt, check=False)
    d = result.divergence
    assert d is not None and d.kind == "outcome", result.report()
    assert "the recorded execution is running; replayed, the handler fails it: " \
           "KeyError: 'missing'" in d.message


def test_replay_raises_with_the_report(store_url: str, project: Path) -> None:
    rt, arn = record_on(store_url, project, finish=False)
    with rt, pytest.raises(ReplayDivergenceError) as info:
        replay(arn, handler(project, "renamed"), plane=rt)
    assert "execution > #2: recorded Step 'charge', the handler now runs Step 'bill'" in str(
        info.value)
    assert f"replay_app.py:{line_of(project, '<- renamed')}" in str(info.value)


def test_an_exported_history_file_replays_like_the_execution(store_url: str, project: Path,
                                                             tmp_path: Path) -> None:
    rt, arn = record_on(store_url, project, finish=False)
    with rt:
        recording = Recording.from_execution(rt, arn)
    path = tmp_path / "order.json"
    recording.dump(path)
    loaded = Recording.load(path)
    assert loaded.arn == arn and loaded.status == "RUNNING"
    assert loaded.operations == recording.operations
    assert_changed_handlers_are_caught(path, project)
    assert_unchanged_replays_clean(str(path), project)


def test_batch_replay_of_the_running_executions(store_url: str, project: Path) -> None:
    rt, first = record_on(store_url, project, finish=False)
    function = function_of(first)
    with rt:
        second = rt.start(function, {"n": 7}, name="second")
        done = rt.start(function, {"n": 8}, name="done")
        rt.run_until_idle()
        rt.send_callback_success(open_callback(rt, done), '"ok"')
        rt.run_until_idle()
        report = replay_many(rt, handler(project, "renamed"), function_name=function)
        running = {r.arn for r in report.results}
        assert running == {first, second}
        assert not report.ok and len(report.diverged) == 2
        assert report.summary().endswith(
            f"{len(report.results)} executions replayed: 0 clean, {len(report.results)} "
            "diverge, 0 could not replay")
        clean = replay_many(rt, handler(project, "v1"), function_name=function, status=None)
        assert clean.ok and done in {r.arn for r in clean.results}


# ---------------------------------------------------------------- through lambda:// and serve


def _health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_durable_ext/health", timeout=2) as r:
        body: dict[str, Any] = json.loads(r.read())
        return body


@pytest.fixture
def served(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[LambdaControlPlane]:
    """``durable-ext serve`` running ``v1`` as ``orders``, and its ``lambda://`` plane."""
    for key, value in (("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DURABLE_EXT_BACKEND")}
    proc = subprocess.Popen(
        [*CLI, "serve", "--backend", f"file://{tmp_path / 'served'}", "--port", str(port),
         "--isolation", "inline", "--virtual-time", "--handlers", "orders=replay_app:v1"],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                _health(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.1)
        plane = LambdaControlPlane(
            f"lambda://orders?region=us-east-1&endpoint_url=http://127.0.0.1:{port}"
            "&base_delay=0.01")
        with plane:
            yield plane
    finally:
        proc.terminate()
        proc.wait(10)


def _settled(plane: LambdaControlPlane, arn: str, *, callback: bool) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = plane.history(arn)["Events"]
        kinds = [e["EventType"] for e in events]
        if (callback and "CallbackStarted" in kinds and kinds[-1] == "InvocationCompleted") \
                or plane.describe(arn)["Status"] != "RUNNING":
            return
        time.sleep(0.05)
    raise AssertionError(f"{arn} did not settle")


def test_changed_handlers_are_caught_through_lambda(served: LambdaControlPlane,
                                                    project: Path) -> None:
    arn = served.start(input={"n": 5}, name="through-lambda")
    _settled(served, arn, callback=True)
    before = served.history(arn)["Events"]
    assert_changed_handlers_are_caught(arn, project, plane=served)
    assert_unchanged_replays_clean("through-lambda", project, plane=served)
    assert served.history(arn)["Events"] == before
    served.send_callback_success(open_callback(served, arn), '"yes"')
    _settled(served, arn, callback=False)
    assert served.describe(arn)["Status"] == "SUCCEEDED"
    assert_unchanged_replays_clean(arn, project, plane=served)
    result = replay(arn, handler(project, "extra"), plane=served, check=False)
    assert result.divergence is not None and result.divergence.kind == "extra"


# ---------------------------------------------------------------- the command


def test_export_and_replay_commands(project: Path, tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    rt, arn = record_on(store, project, finish=False)
    rt.close()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DURABLE_EXT_BACKEND")}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *argv], cwd=project, env=env, capture_output=True,
                              text=True, timeout=120)

    out = tmp_path / "exported.json"
    done = cli("executions", "export", arn, "--backend", store, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["Execution"]["DurableExecutionArn"] == arn

    clean = cli("replay", str(out), "--handler", "replay_app:v1")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "clean" in clean.stdout

    broken = cli("replay", str(out), "--handler", "replay_app:renamed")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "recorded Step 'charge', the handler now runs Step 'bill'" in broken.stdout
    assert f"replay_app.py:{line_of(project, '<- renamed')}" in broken.stdout

    batch = cli("replay", "--all", "--function", function_of(arn), "--handler",
                "replay_app:inserted",
                "--backend", store, "--json")
    assert batch.returncode == 1, batch.stderr
    body = json.loads(batch.stdout)
    assert body["Ok"] is False and body["Results"][0]["Divergences"][0]["Current"]["Name"] \
        == "audit"

    usage = cli("replay", "--handler", "replay_app:v1")
    assert usage.returncode == 2 and "--all" in usage.stderr


def test_the_command_escapes_what_a_history_file_says(project: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_durable_execution_sdk_python.identifier import OperationIdNamespace

    from durable_ext.cli import main

    first = OperationIdNamespace().create_id_for_step(1)
    history = {"Events": [
        {"EventType": "ExecutionStarted", "EventTimestamp": "2026-01-01T00:00:00+00:00",
         "Id": "e1", "ExecutionStartedDetails": {"Input": {"Payload": '{"n": 1}'}}},
        {"EventType": "StepStarted", "EventTimestamp": "2026-01-01T00:00:00+00:00",
         "Id": first, "Name": "\x1b[2J\x1b[31mwiped", "SubType": "Step"},
    ]}
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(history))
    monkeypatch.chdir(project)
    code = main(["replay", str(path), "--handler", f"{project / 'replay_app.py'}:v1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "\x1b" not in out
    assert "\\x1b[2J" in out  # shown escaped
