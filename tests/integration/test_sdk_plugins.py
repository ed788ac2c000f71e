"""SDK plugins on the local runtime, registered either way, and durable_ext under them.

A plugin makes the SDK run the handler and the hooks in a copy of the invoking thread's
context, and map/parallel branches in copies of theirs; ``@replay_aware`` keeps its scope
in a context variable and ``default_serdes`` wraps the context, so both are run here
with a plugin registered through ``plugins=`` and through the ``aws_durable_execution.plugins``
entry-point group selected by ``DURABLE_EXECUTION_PLUGINS``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import Duration, ParallelBranch, StepConfig
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy

import durable_ext
import durable_ext.logging as dlog
from durable_ext.http import LocalService, ServerThread
from durable_ext.runtime import Runtime, VirtualClock

pytestmark = pytest.mark.integration

APP = "durable_ext_tests.plugins"
log = logging.getLogger(APP)
RETRY = StepConfig(retry_strategy=create_retry_strategy(
    RetryStrategyConfig(max_attempts=3, initial_delay=Duration.from_seconds(1))))


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"file://{tmp_path / 'store'}"


@pytest.fixture
def entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A distribution on the path naming the recorder in the SDK's entry-point group."""
    dist = tmp_path / "site" / "durable_ext_test_plugins-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: durable-ext-test-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[aws_durable_execution.plugins]\nrecorder = plugin_handlers:FACTORY\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("DURABLE_EXECUTION_PLUGINS", "recorder")
    monkeypatch.setenv("PLUGIN_LEDGER", str(tmp_path / "ledger"))
    sys.modules.pop("plugin_handlers", None)  # decorated again, with the variable set
    module = importlib.import_module("plugin_handlers")
    yield module
    sys.modules.pop("plugin_handlers", None)


def ledger(tmp_path: Path) -> list[str]:
    path = tmp_path / "ledger"
    return path.read_text().splitlines() if path.exists() else []


def hook_shape(lines: list[str]) -> list[str]:
    return [line.split(" pid=")[0] for line in lines]


EXPECTED_HOOKS = [
    "invocation-start first=True", "operation-start one", "operation-end one SUCCEEDED",
    "operation-start pause", "invocation-end PENDING",
    "invocation-start first=False", "operation-end pause SUCCEEDED",
    "operation-start two", "operation-end two SUCCEEDED", "invocation-end SUCCEEDED",
]


def test_entry_point_plugin_runs_inline(backend: str, entry_point: ModuleType,
                                        tmp_path: Path) -> None:
    with Runtime(backend, clock=VirtualClock()) as rt:
        rt.register("fn", entry_point.env_selected)
        out = rt.run("fn", {})
    assert out["Status"] == "SUCCEEDED" and json.loads(out["Result"]) == 3, out
    assert hook_shape(ledger(tmp_path)) == EXPECTED_HOOKS


def test_entry_point_plugin_runs_in_a_process_per_invocation(
        entry_point: ModuleType, tmp_path: Path) -> None:
    with Runtime("memory://", clock=VirtualClock(), isolation="process") as rt:
        rt.register("fn", "plugin_handlers:env_selected")
        out = rt.run("fn", {})
    assert out["Status"] == "SUCCEEDED", out
    lines = ledger(tmp_path)
    assert hook_shape(lines) == EXPECTED_HOOKS
    pids = {line.split(" pid=")[1] for line in lines if "pid=" in line}
    assert len(pids) == 2  # each invocation in its own process, each with the plugin


def test_entry_point_plugin_runs_in_http_handler_processes(
        entry_point: ModuleType, tmp_path: Path) -> None:
    import boto3
    from botocore.config import Config

    svc = LocalService("memory://", virtual_time=True)
    svc.register("fn", "plugin_handlers:env_selected", isolation="http")
    with ServerThread(svc) as srv:
        lam = boto3.client("lambda", endpoint_url=srv.url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing",
                           config=Config(retries={"total_max_attempts": 1}, read_timeout=60))
        res = lam.invoke(FunctionName="fn", Payload=b"{}")
        assert json.loads(res["Payload"].read()) == 3
    assert hook_shape(ledger(tmp_path)) == EXPECTED_HOOKS


def test_unknown_plugin_name_is_refused_at_decoration(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_durable_execution_sdk_python.exceptions import PluginLoadError

    monkeypatch.setenv("DURABLE_EXECUTION_PLUGINS", "no-such-plugin")
    with pytest.raises(PluginLoadError, match="no-such-plugin"):
        durable_execution(lambda event, ctx: None)


# ---------------------------------------------------------------- durable_ext under plugins


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.invocation = 0
        self.lines: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.lines.append((self.invocation, record.getMessage()))

    def counted(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def run(event: Any, context: Any) -> Any:
            self.invocation += 1
            return handler(event, context)

        return run


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


def _replay_aware_handler(cap: Capture, plugins: list[Any] | None) -> Any:
    attempts = {"n": 0}

    def flaky(_: Any) -> int:
        attempts["n"] += 1
        log.info("flaky attempt %d", attempts["n"])
        if attempts["n"] < 3:
            raise ValueError("not yet")
        return 7

    def item(ctx: Any, x: int, index: int, items: Any) -> int:
        log.info("item %d", x)
        if x == 2:
            ctx.wait(Duration.from_seconds(1))
        log.info("item %d done", x)
        return x * 10

    def branch(label: str) -> Callable[[Any], str]:
        def body(ctx: Any) -> str:
            log.info("branch %s", label)
            ctx.step(lambda _: None, name=f"s-{label}")
            return label
        return body

    @durable_execution(plugins=plugins)
    @cap.counted
    @dlog.replay_aware
    def handler(event: Any, ctx: Any) -> Any:
        log.info("top")
        value = ctx.step(flaky, name="flaky", config=RETRY)
        log.info("after flaky")
        mapped = ctx.map([1, 2], item, name="m").get_results()
        log.info("after map")
        par = ctx.parallel([ParallelBranch(branch("a"), name="A"), branch("b")],
                           name="p").get_results()
        log.info("end")
        return [value, mapped, par]

    return handler


EXPECTED_LINES = sorted([
    (1, "top"), (1, "flaky attempt 1"), (2, "flaky attempt 2"), (3, "flaky attempt 3"),
    (3, "after flaky"), (3, "item 1"), (3, "item 1 done"), (3, "item 2"),
    (4, "item 2 done"), (4, "after map"), (4, "branch a"), (4, "branch b"), (4, "end"),
])


@pytest.mark.parametrize("how", ["decorator", "entry-point"])
def test_replay_aware_logs_each_line_once_with_a_plugin(
        backend: str, cap: Capture, entry_point: ModuleType, tmp_path: Path,
        how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "decorator":
        monkeypatch.delenv("DURABLE_EXECUTION_PLUGINS")
    handler = _replay_aware_handler(cap, [entry_point.RecorderFactory()]
                                    if how == "decorator" else None)
    with Runtime(backend, clock=VirtualClock()) as rt:
        rt.register("fn", handler)
        out = rt.run("fn", {})
    assert out["Status"] == "SUCCEEDED", out
    assert json.loads(out["Result"]) == [7, [10, 20], ["a", "b"]]
    assert sorted(cap.lines) == EXPECTED_LINES
    assert cap.invocation == 4
    assert entry_point.HOOKS.count("invocation-end SUCCEEDED") == 1


def test_default_serdes_frames_every_payload_with_a_plugin(
        backend: str, entry_point: ModuleType) -> None:
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    @durable_execution
    @durable_ext.default_serdes("msgpack")
    def handler(event: Any, ctx: Any) -> Any:
        got = ctx.step(lambda _: {"at": stamp, "raw": b"\x00\xff", "tags": {1, 2}}, name="s")
        ctx.wait(Duration.from_seconds(1))
        mapped = ctx.map([1, 2], lambda c, x, i, xs: c.step(lambda _: (x, b"%d" % x)),
                         name="m").get_results()
        kid = ctx.run_in_child_context(lambda c: c.step(lambda _: stamp, name="in"), name="c")
        same = got == {"at": stamp, "raw": b"\x00\xff", "tags": {1, 2}} and kid == stamp
        return {"same": same, "mapped": [[m[0], m[1].decode()] for m in mapped]}

    with Runtime(backend, clock=VirtualClock()) as rt:
        rt.register("fn", handler)
        arn = rt.start("fn", {})
        rt.run_until_idle()
        out = rt.describe(arn)
        assert out["Status"] == "SUCCEEDED", out
        assert json.loads(out["Result"]) == {"same": True, "mapped": [[1, "1"], [2, "2"]]}
        steps = [e for e in rt.history(arn)["Events"] if e["EventType"] == "StepSucceeded"]
    assert steps
    # every step result, in branches and child contexts too, went through the pipeline
    for event in steps:
        payload = event["StepSucceededDetails"]["Result"]["Payload"]
        assert not payload.lstrip().startswith(("{", "[", '"')), payload
    assert "invocation-end SUCCEEDED" in entry_point.HOOKS
