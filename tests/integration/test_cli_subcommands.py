"""The subcommands other packages add to ``durable-ext``, reached through the main CLI."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution

import durable_ext
from durable_ext import cli
from durable_ext.serializers.s3 import execution_prefix


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_every_subcommand_module_exists_and_answers_help(name: str, capsys: Any) -> None:
    importlib.import_module(cli.SUBCOMMANDS[name])  # a missing module would hide the command
    assert cli.main([name, "--help"]) == 0
    assert name in capsys.readouterr().out


def test_s3_cleanup_deletes_exactly_one_executions_objects(
    moto_server: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)
    s3 = moto_server.client("s3")
    bucket = moto_server.unique("cleanup")
    s3.create_bucket(Bucket=bucket)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/o-1/i"
    other = arn.replace("o-1", "o-2")
    for target, n in ((arn, 3), (other, 2)):
        for i in range(n):
            s3.put_object(Bucket=bucket, Key=f"{execution_prefix(target)}obj-{i}", Body=b"x")
    argv = ["s3", "cleanup", bucket, arn, "--endpoint-url", moto_server.endpoint_url]
    assert cli.main(argv) == 0
    assert "deleted 3 object(s)" in capsys.readouterr().out
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(left) == 2 and all(k.startswith(execution_prefix(other)) for k in left)
    assert cli.main(argv) == 0  # repeating it is safe
    assert "deleted 0 object(s)" in capsys.readouterr().out


def test_s3_lifecycle_rule_is_valid_json(capsys: Any) -> None:
    assert cli.main(["s3", "lifecycle-rule", "--days", "30"]) == 0
    rules = json.loads(capsys.readouterr().out)["Rules"]
    assert rules[0]["Expiration"] == {"Days": 30} and rules[0]["Status"] == "Enabled"


def test_executions_commands_work_on_a_lambda_backend(capsys: Any) -> None:
    import test_http_handlers as handlers

    from durable_ext.http import LocalService, ServerThread

    svc = LocalService("memory://", virtual_time=True)
    svc.register("approval", handlers.approval)
    with ServerThread(svc) as srv:
        url = f"lambda://approval?region=us-east-1&endpoint_url={srv.url}"
        rt = svc.runtime
        arn = rt.start("approval", {}, name="cli-lambda")
        rt.run_until_idle()
        assert cli.main(["executions", "show", arn, "--backend", url, "--json"]) == 3  # waiting
        assert json.loads(capsys.readouterr().out)["Status"] == "RUNNING"
        callback_id = next(
            e["CallbackStartedDetails"]["CallbackId"]
            for e in rt.history(arn)["Events"] if e["EventType"] == "CallbackStarted"
        )
        # Lambda's callback ids are opaque to the CLI: it passes them through unparsed.
        assert cli.main(["callback", "succeed", callback_id, '"yes"', "--backend", url]) == 0
        rt.run_until_idle()
        assert cli.main(["executions", "history", arn, "--backend", url]) == 0
        assert "CallbackSucceeded" in capsys.readouterr().out
        assert rt.describe(arn)["Status"] == "SUCCEEDED"


@durable_execution
@durable_ext.default_serdes("msgpack+zstd")
def _packed(event: Any, ctx: DurableContext) -> Any:
    ctx.step(lambda _: {"ids": (1, 2), "note": "x" * 300}, name="pack")
    return "done"


def test_histories_read_through_lambda_are_decoded_locally(capsys: Any) -> None:
    from durable_ext.http import LocalService, ServerThread

    svc = LocalService("memory://", virtual_time=True)
    svc.register("packed", _packed)
    with ServerThread(svc) as srv:
        url = f"lambda://packed?region=us-east-1&endpoint_url={srv.url}"
        arn = svc.runtime.start("packed", {}, name="cli-lambda-decode")
        svc.runtime.run_until_idle()
        assert cli.main(["executions", "history", arn, "--backend", url, "--json",
                         "--serdes", "msgpack+zstd"]) == 0
        events = json.loads(capsys.readouterr().out)["Events"]
    [step] = [e for e in events if e["EventType"] == "StepSucceeded"]
    result = step["StepSucceededDetails"]["Result"]
    assert not result["Payload"].startswith("{")  # stored as the pipeline wrote it
    assert result["Decoded"]["Value"] == {"ids": [1, 2], "note": "x" * 300}
