"""The durable-ext command: exit codes, JSON output, callbacks from the command line."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

import durable_ext
from durable_ext.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, EXIT_WAITING, SUBCOMMANDS, main
from durable_ext.logging import replay_aware

ROOT = Path(__file__).resolve().parents[2]


@durable_execution
def approve(event: Any, ctx: DurableContext) -> Any:
    ctx.wait(Duration.from_seconds(1), name="breath")
    cb = ctx.create_callback(name="ok")
    return {"got": json.loads(cb.result()), "input": event}


@durable_execution
def boom(event: Any, ctx: DurableContext) -> Any:
    raise RuntimeError("kaput")


@pytest.fixture
def backend(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'store'}"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_run_wait_callback_then_succeed(capsys: pytest.CaptureFixture[str], backend: str) -> None:
    code, out = run_json(
        capsys,
        "run",
        "test_cli:approve",
        "--input",
        '{"n": 1}',
        "--name",
        "a1",
        "--backend",
        backend,
        "--json",
        "--virtual-time",
    )
    assert code == EXIT_WAITING
    assert out["Status"] == "RUNNING"
    [(name, cb_id)] = out["WaitingCallbacks"]
    assert name == "ok"
    code, out = run_json(
        capsys, "callback", "succeed", cb_id, '"yes"', "--backend", backend, "--json"
    )
    assert code == EXIT_OK
    assert out["Result"] == {"got": "yes", "input": {"n": 1}}
    code, hist = run_json(capsys, "executions", "history", "a1", "--backend", backend, "--json")
    assert code == EXIT_OK
    kinds = [e["EventType"] for e in hist["Events"]]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded"
    code, listing = run_json(capsys, "executions", "list", "--backend", backend, "--json")
    assert [e["DurableExecutionName"] for e in listing["DurableExecutions"]] == ["a1"]
    code, shown = run_json(capsys, "executions", "show", "a1", "--backend", backend, "--json")
    assert code == EXIT_OK and shown["Status"] == "SUCCEEDED"


def test_failed_execution_exit_code(capsys: pytest.CaptureFixture[str], backend: str) -> None:
    code, out = run_json(capsys, "run", "test_cli:boom", "--backend", backend, "--json")
    assert code == EXIT_FAILED
    assert out["Status"] == "FAILED" and "kaput" in out["Error"]["ErrorMessage"]


def test_stop(capsys: pytest.CaptureFixture[str], backend: str) -> None:
    run_json(
        capsys,
        "run",
        "test_cli:approve",
        "--name",
        "s1",
        "--backend",
        backend,
        "--json",
        "--virtual-time",
    )
    code, out = run_json(capsys, "stop", "s1", "--message", "halt", "--backend", backend, "--json")
    assert code == EXIT_FAILED
    assert out["Status"] == "STOPPED" and out["Error"] == {"ErrorMessage": "halt"}


def test_callback_fail_and_heartbeat(capsys: pytest.CaptureFixture[str], backend: str) -> None:
    _, out = run_json(
        capsys,
        "run",
        "test_cli:approve",
        "--name",
        "f1",
        "--backend",
        backend,
        "--json",
        "--virtual-time",
    )
    cb_id = out["WaitingCallbacks"][0][1]
    assert main(["callback", "heartbeat", cb_id, "--backend", backend]) == EXIT_OK
    capsys.readouterr()
    code, out = run_json(
        capsys,
        "callback",
        "fail",
        cb_id,
        '{"ErrorType": "No", "ErrorMessage": "denied"}',
        "--backend",
        backend,
        "--json",
    )
    assert code == EXIT_FAILED
    assert "denied" in json.dumps(out["Error"])


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "no_colon_here"],
        ["run", "test_cli:missing_attr"],
        ["run", "no_such_module_xyz:handler"],
        ["run", "test_cli:approve", "--input", "{not json"],
        ["callback", "succeed", "not-a-callback-id"],
        ["executions", "show", "unknown-name"],
        ["nonsense"],
        [],
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--backend", backend] if argv and argv[0] in ("run", "callback", "executions") else []
    assert main(argv + extra) == EXIT_USAGE
    assert capsys.readouterr().err


def test_plugins_lists_without_importing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_json(capsys, "plugins", "--json")
    assert code == EXIT_OK
    assert {"memory", "file", "redis"} <= set(out["backends"])
    assert "msgpack" in out["serializers"]


def test_subcommand_table_skips_missing_modules(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(SUBCOMMANDS, "teleport", "durable_ext.no_such_module")
    assert main(["plugins"]) == EXIT_OK
    assert main(["teleport"]) == EXIT_USAGE


def test_demo_runs_on_the_file_backend(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "order_workflow.py"),
            "--name",
            "demo-1",
            "--backend",
            f"file://{tmp_path / 'd'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "demo-1: SUCCEEDED" in proc.stdout
    for kind in ("StepFailed", "WaitSucceeded", "CallbackSucceeded", "ContextSucceeded"):
        assert kind in proc.stdout
    assert '"payment_attempts": 2' in proc.stdout



def _demo_waiting_for_approval(
    tmp_path: Path, name: str
) -> tuple[subprocess.CompletedProcess[str], str, dict[str, str]]:
    """Run the demo with manual approval; it stops waiting for the callback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    url = f"file://{tmp_path / 'd'}"
    first = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "order_workflow.py"), "--name", name,
         "--manual", "--backend", url],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    assert first.returncode == EXIT_WAITING, first.stderr[-2000:]
    return first, url, env

def test_demo_manual_approval_through_the_cli(tmp_path: Path) -> None:
    first, url, env = _demo_waiting_for_approval(tmp_path, "m-1")
    command = first.stdout.strip().splitlines()[-1].split()
    assert command[:3] == ["durable-ext", "callback", "succeed"]
    assert command[-2:] == ["--backend", url]
    cli = [
        sys.executable,
        "-m",
        "durable_ext.cli",
        "callback",
        "succeed",
        command[3],
        '{"approved": true}',
        "--backend",
        url,
    ]
    second = subprocess.run(cli, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert second.returncode == EXIT_OK, second.stdout + second.stderr[-2000:]
    assert '"status": "shipped"' in second.stdout


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("order_workflow:handler", "order-workflow"),
        ("examples/order_workflow.py:handler", "order-workflow"),
        ("pkg.jobs:nightly_run", "jobs-nightly-run"),
        ("app.handlers:process_order", "handlers-process-order"),
        ("shop.billing", "billing"),
        ("/abs/dir/my_mod.py:Handler.go", "my-mod-Handler-go"),
    ],
)
def test_one_naming_rule_for_every_command(path: str, name: str) -> None:
    from durable_ext.runtime.handlers import function_name_for

    assert function_name_for(path) == name


def test_cli_resumes_an_execution_started_by_the_demo_script(tmp_path: Path) -> None:
    _, url, env = _demo_waiting_for_approval(tmp_path, "r-1")
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "durable_ext.cli",
            "run",
            str(ROOT / "examples" / "order_workflow.py") + ":handler",
            "--name",
            "r-1",
            "--input",
            '{"order_id": "r-1"}',
            "--backend",
            url,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    # Same function name, same name and input: the CLI picks up the waiting execution.
    assert again.returncode == EXIT_WAITING, again.stdout + again.stderr[-2000:]
    out = json.loads(again.stdout)
    assert out["DurableExecutionArn"].split("/")[-2] == "r-1"
    assert [name for name, _ in out["WaitingCallbacks"]] == ["manager-approval"]


@durable_execution
def noisy_approve(event: Any, ctx: DurableContext) -> Any:
    print("handler says hello")  # a handler's own output: never on --json's stdout
    got = ctx.create_callback(name="ok").result()
    print("handler got", got)
    return {"got": got}


def test_callback_payloads_are_sent_as_given_and_json_stdout_is_only_json(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    code = main(["run", "test_cli:noisy_approve", "--name", "n1", "--backend", backend,
                 "--json", "--virtual-time"])
    captured = capsys.readouterr()
    assert code == EXIT_WAITING
    out = json.loads(captured.out)  # nothing but the JSON document
    assert "handler says hello" in captured.err
    [(_name, cb_id)] = out["WaitingCallbacks"]
    code = main(["callback", "succeed", cb_id, "successful", "--backend", backend, "--json"])
    captured = capsys.readouterr()
    assert code == EXIT_OK, captured.err
    assert json.loads(captured.out)["Result"] == {"got": "successful"}
    assert "handler got successful" in captured.err


FAKE_ID = "A" * 100  # shaped like a callback id: longer than any execution name


def test_callback_payload_options_say_what_is_wrong(
    capsys: pytest.CaptureFixture[str], backend: str, tmp_path: Path
) -> None:
    code = main(["callback", "succeed", FAKE_ID, "--json-payload", "{nope", "--backend", backend])
    assert code == EXIT_USAGE
    assert "--json-payload is not valid JSON" in capsys.readouterr().err
    code = main(["callback", "succeed", FAKE_ID, "a", "--json-payload", "1", "--backend", backend])
    assert code == EXIT_USAGE
    assert "give the payload once" in capsys.readouterr().err
    code = main(["callback", "succeed", FAKE_ID, "--payload-file", str(tmp_path / "none"),
                 "--backend", backend])
    assert code == EXIT_USAGE
    assert "--payload-file" in capsys.readouterr().err


def test_callback_payload_from_a_file(capsys: pytest.CaptureFixture[str], backend: str,
                                      tmp_path: Path) -> None:
    code, out = run_json(capsys, "run", "test_cli:noisy_approve", "--name", "n2",
                         "--backend", backend, "--json", "--virtual-time")
    [(_name, cb_id)] = out["WaitingCallbacks"]
    doc = tmp_path / "doc.txt"
    doc.write_text("line one\nline two\n")
    code, out = run_json(capsys, "callback", "succeed", cb_id, "--payload-file", str(doc),
                         "--backend", backend, "--json")
    assert code == EXIT_OK and out["Result"] == {"got": "line one\nline two\n"}


@durable_execution
def quiet_approve(event: Any, ctx: DurableContext) -> Any:
    return {"length": len(ctx.create_callback(name="ok").result())}


def test_payload_previews_never_reach_the_terminal_as_control_sequences(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    _code, out = run_json(capsys, "run", "test_cli:quiet_approve", "--name", "esc",
                         "--backend", backend, "--json", "--virtual-time")
    [(_name, cb_id)] = out["WaitingCallbacks"]
    main(["callback", "succeed", cb_id, "\x1b]0;owned\x07\x1b[2J", "--backend", backend])
    assert "\x1b" not in capsys.readouterr().out
    main(["executions", "history", "esc", "--backend", backend])
    history = capsys.readouterr().out
    assert "\x1b" not in history and "\\x1b]0;owned" in history  # shown, escaped


@durable_execution
def markup_names(event: Any, ctx: DurableContext) -> Any:
    ctx.step(lambda _: "[red]x[/red]", name="[i]pay[/i]")
    return "done"


def test_stored_names_and_payloads_are_shown_not_read_as_markup(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    main(["run", "test_cli:markup_names", "--name", "mk", "--backend", backend,
          "--virtual-time"])
    capsys.readouterr()
    assert main(["executions", "history", "mk", "--backend", backend]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "[i]pay[/i]" in shown
    assert "[red]x[/red]" in shown


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import durable_ext

    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"durable-ext {durable_ext.__version__}"


def test_refused_names_and_reused_names_are_one_line_usage_errors(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    assert main(["run", "test_cli:markup_names", "--name", "order 1", "--backend", backend,
                 "--virtual-time"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("durable-ext: error: invalid execution name 'order 1'")
    assert "Traceback" not in err and err.count("\n") == 1
    main(["run", "test_cli:quiet_approve", "--name", "o-1", "--input", '{"a": 1}',
          "--backend", backend, "--virtual-time"])
    capsys.readouterr()
    assert main(["run", "test_cli:quiet_approve", "--name", "o-1", "--input", '{"a": 2}',
                 "--backend", backend, "--virtual-time"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("durable-ext: error:") and "Traceback" not in err


def test_reading_commands_do_not_create_a_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DURABLE_EXT_BACKEND", raising=False)
    assert main(["executions", "list"]) == EXIT_OK
    assert "no store at .durable" in capsys.readouterr().err
    assert main(["executions", "list", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"DurableExecutions": []}
    for argv in (["executions", "show", "o-1"], ["executions", "history", "o-1"],
                 ["stop", "o-1"]):
        assert main(argv) == EXIT_USAGE
        assert "there is no store at .durable" in capsys.readouterr().err
    assert not (tmp_path / ".durable").exists()


@dataclasses.dataclass
class Parcel:
    sku: str
    grams: int


@durable_execution
@durable_ext.default_serdes("msgpack+zstd", types=[Parcel])
def parcels(event: Any, ctx: DurableContext) -> Any:
    ctx.step(lambda _: [Parcel("a", 5), Parcel("b", 7)], name="pack")
    return {"count": 2}


def test_history_and_show_decode_payloads_with_serdes(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    main(["run", "test_cli:parcels", "--name", "p-1", "--backend", backend, "--virtual-time"])
    capsys.readouterr()
    code, hist = run_json(capsys, "executions", "history", "p-1", "--backend", backend,
                          "--json", "--serdes", "msgpack")
    assert code == EXIT_OK
    [step] = [e for e in hist["Events"] if e["EventType"] == "StepSucceeded"]
    assert step["StepSucceededDetails"]["Result"]["Decoded"]["Value"] == [
        {"$type": "Parcel", "sku": "a", "grams": 5}, {"$type": "Parcel", "sku": "b", "grams": 7}]
    assert main(["executions", "history", "p-1", "--backend", backend,
                 "--types", "test_cli:PARCEL_TYPES"]) == EXIT_OK
    assert '"sku": "a"' in capsys.readouterr().out
    code, desc = run_json(capsys, "executions", "show", "p-1", "--backend", backend, "--json",
                          "--serdes", "msgpack")
    assert desc["DecodedResult"]["Value"] == {"count": 2}


PARCEL_TYPES = [Parcel]


SEALED_SPEC = "msgpack+zstd+localkey+s3://cli-decode/ckpt?threshold=0"
SEALED_KEY = "cli:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0NTY="  # 32 bytes, tests only


@durable_execution
@durable_ext.default_serdes(SEALED_SPEC, types=[Parcel], options={"localkey": {"key": SEALED_KEY}})
def sealed_parcels(event: Any, ctx: DurableContext) -> Any:
    ctx.step(lambda _: [Parcel("c", 9)] * 40, name="pack")
    return {"count": 40}


def test_history_decodes_a_compressed_encrypted_offloaded_execution(
    capsys: pytest.CaptureFixture[str], backend: str, moto_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from servers import TEST_CREDENTIALS

    moto_server.client("s3").create_bucket(Bucket="cli-decode")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", TEST_CREDENTIALS["region_name"])
    monkeypatch.setenv("DURABLE_EXT_LOCAL_KEY", SEALED_KEY)  # what --serdes builds its key from
    assert main(["run", "test_cli:sealed_parcels", "--name", "sp-1", "--backend", backend,
                 "--virtual-time"]) == EXIT_OK
    capsys.readouterr()
    code, raw = run_json(capsys, "executions", "history", "sp-1", "--backend", backend, "--json")
    [stored] = [e for e in raw["Events"] if e["EventType"] == "StepSucceeded"]
    assert "Parcel" not in json.dumps(stored)  # compressed, encrypted, then in S3
    code, hist = run_json(capsys, "executions", "history", "sp-1", "--backend", backend,
                          "--json", "--serdes", SEALED_SPEC, "--types", "test_cli:PARCEL_TYPES")
    assert code == EXIT_OK
    [step] = [e for e in hist["Events"] if e["EventType"] == "StepSucceeded"]
    assert step["StepSucceededDetails"]["Result"]["Decoded"]["Value"] == [
        {"$type": "Parcel", "sku": "c", "grams": 9}] * 40
    # without the key the payload is shown for what it is, not an error
    monkeypatch.delenv("DURABLE_EXT_LOCAL_KEY")
    code, hist = run_json(capsys, "executions", "history", "sp-1", "--backend", backend,
                          "--json", "--serdes", "msgpack")
    assert code == EXIT_OK
    [step] = [e for e in hist["Events"] if e["EventType"] == "StepSucceeded"]
    assert "Value" not in step["StepSucceededDetails"]["Result"]["Decoded"]


def test_decode_reads_a_payload_from_an_argument_or_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = durable_ext.serdes("msgpack").serialize({"ids": (1, 2)}, None)
    assert main(["decode", text]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["Value"] == {"ids": [1, 2]}
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("wQFrAQAAAA\n"))
    assert main(["decode"]) == EXIT_FAILED  # a kms frame it has no key for
    assert "Undecoded" in json.loads(capsys.readouterr().out)


@durable_execution
def two_approvals(event: Any, ctx: DurableContext) -> Any:
    first = ctx.create_callback(name="manager").result()
    second = ctx.create_callback(name="finance").result()
    return {"manager": first, "finance": second}


def test_callbacks_by_execution_and_name_and_one_json_shape(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    code, run = run_json(capsys, "run", "test_cli:two_approvals", "--name", "a-1",
                         "--backend", backend, "--json", "--virtual-time")
    assert code == EXIT_WAITING and [n for n, _ in run["WaitingCallbacks"]] == ["manager"]
    assert main(["executions", "show", "a-1", "--backend", backend]) == EXIT_WAITING
    assert "durable-ext callback succeed a-1 manager '<json>'" in capsys.readouterr().out
    code, out = run_json(capsys, "callback", "succeed", "a-1", "manager", "yes",
                         "--backend", backend, "--json")
    assert code == EXIT_WAITING and [n for n, _ in out["WaitingCallbacks"]] == ["finance"]
    assert main(["callback", "succeed", "a-1", "nobody", "x", "--backend", backend]) \
        == EXIT_USAGE
    assert "waiting: finance" in capsys.readouterr().err
    code, shown = run_json(capsys, "executions", "show", "a-1", "--backend", backend, "--json")
    assert set(shown) == set(out) and shown["WaitingCallbacks"] == out["WaitingCallbacks"]
    # a stopped execution advertises no callback to complete
    code, stopped = run_json(capsys, "stop", "a-1", "--backend", backend, "--json")
    assert stopped["Status"] == "STOPPED" and stopped["WaitingCallbacks"] == []
    assert main(["executions", "show", "a-1", "--backend", backend]) == EXIT_FAILED
    assert "callback succeed" not in capsys.readouterr().out


def test_list_pages_with_marker_and_all(capsys: pytest.CaptureFixture[str],
                                        backend: str) -> None:
    for i in range(5):
        main(["run", "test_cli:markup_names", "--name", f"l-{i}", "--backend", backend,
              "--virtual-time"])
    capsys.readouterr()
    _, first = run_json(capsys, "executions", "list", "--max-items", "2", "--backend", backend,
                        "--json")
    assert len(first["DurableExecutions"]) == 2 and first["NextMarker"]
    _, second = run_json(capsys, "executions", "list", "--max-items", "2", "--marker",
                         first["NextMarker"], "--backend", backend, "--json")
    names = {e["DurableExecutionName"] for e in first["DurableExecutions"]}
    assert not names & {e["DurableExecutionName"] for e in second["DurableExecutions"]}
    _, every = run_json(capsys, "executions", "list", "--max-items", "2", "--all",
                        "--backend", backend, "--json")
    assert sorted(e["DurableExecutionName"] for e in every["DurableExecutions"]) == [
        f"l-{i}" for i in range(5)]


ATTEMPTS: dict[str, int] = {}


def _declined_once(_: Any) -> str:
    ATTEMPTS["pay"] = ATTEMPTS.get("pay", 0) + 1
    if ATTEMPTS["pay"] == 1:
        raise ValueError("card declined")
    return "paid"


@durable_execution
@replay_aware
def flaky_payment(event: Any, ctx: DurableContext) -> Any:
    logging.getLogger("shop.payments").info("charging %s", event["order"])
    return ctx.step(_declined_once, name="pay")


@pytest.mark.parametrize("verbose", [False, True])
def test_retries_log_one_line_and_log_level_shows_the_handlers_logs(
    capsys: pytest.CaptureFixture[str], backend: str, verbose: bool
) -> None:
    ATTEMPTS.clear()
    argv = ["run", "test_cli:flaky_payment", "--name", f"f-{verbose}", "--input",
            '{"order": "o-9"}', "--backend", backend, "--virtual-time", "--log-level", "info"]
    assert main(argv + (["-v"] if verbose else [])) == EXIT_OK
    err = capsys.readouterr().err
    assert err.count("INFO shop.payments: charging o-9") == 1  # not again on the replay
    failed = [line for line in err.splitlines() if "failed step" in line]
    assert len(failed) == 1 and failed[0].endswith("ValueError: card declined") != verbose
    assert ("Traceback (most recent call last)" in err) == verbose
