"""Versions and aliases: an execution runs the version it started on, on every process.

Includes a rolling deploy on Redis and DynamoDB: executions started on v1 keep replaying on
v1 while a v2 pool takes the new work, then the v1 pool drains and stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration
from test_pause_resume import store_url

from durable_ext.errors import ConfigError
from durable_ext.fleet import Worker
from durable_ext.runtime import Runtime, VirtualClock

pytestmark = pytest.mark.integration

RAN: list[str] = []
_lock = threading.Lock()


def _note(text: str) -> None:
    with _lock:
        RAN.append(text)


def _orders(version: str) -> Any:
    @durable_execution
    def handler(event: Any, ctx: DurableContext) -> Any:
        eid = str(event["id"])
        ctx.step(lambda _: _note(f"v{version}:{eid}:a"), name="a")
        ctx.wait(Duration.from_seconds(int(event.get("gap", 1))), name="gap")
        ctx.step(lambda _: _note(f"v{version}:{eid}:b"), name="b")
        return {"version": version}

    return handler


orders_v1 = _orders("1")
orders_v2 = _orders("2")


@durable_execution
def caller(event: Any, ctx: DurableContext) -> Any:
    return ctx.invoke(str(event["target"]), {"id": "child", "gap": 1}, name="call")


@pytest.fixture(autouse=True)
def _clean() -> None:
    RAN.clear()


def test_start_resolves_aliases_and_records_the_version() -> None:
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("orders:1", orders_v1)
        rt.register("orders:2", orders_v2)
        rt.alias("orders", "live", "1")
        assert rt.versions("orders") == ["1", "2"]
        first = rt.start("orders:live", {"id": "e1"})
        assert ":function:orders:1/durable-execution/" in first
        rt.alias("orders", "live", "2")  # the deploy flips the alias
        second = rt.start("orders:live", {"id": "e2"})
        newest = rt.start("orders", {"id": "e3"})  # unqualified: the newest version here
        pinned = rt.start("orders:1", {"id": "e4"})
        rt.run_until_idle(30)
        for arn, version in ((first, "1"), (second, "2"), (newest, "2"), (pinned, "1")):
            desc = rt.describe(arn)
            assert desc["Status"] == "SUCCEEDED", desc
            assert desc["Version"] == version
        assert sorted(RAN) == sorted([
            "v1:e1:a", "v1:e1:b", "v2:e2:a", "v2:e2:b", "v2:e3:a", "v2:e3:b",
            "v1:e4:a", "v1:e4:b"])
        with pytest.raises(ConfigError, match="no version or alias 'beta'"):
            rt.start("orders:beta", {"id": "x"})
        with pytest.raises(ConfigError, match="register a version"):
            rt.register("orders:live", orders_v1)
        rt.register("orders", orders_v2)  # $LATEST wins for an unqualified start
        assert ":function:orders:$LATEST/" in rt.start("orders", {"id": "e5"})


def test_an_execution_whose_version_nobody_serves_waits(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    with Runtime(url, clock=VirtualClock()) as only_v2:
        only_v2.register("orders:2", orders_v2)
        arn = only_v2.start("orders:1", {"id": "w1"})  # nobody here runs v1
        only_v2.run_until_idle(5)
        desc = only_v2.describe(arn)
        assert desc["Status"] == "RUNNING" and desc["Version"] == "1"
        kinds = [e["EventType"] for e in only_v2.history(arn)["Events"]]
        assert "InvocationCompleted" not in kinds and RAN == []
    with Runtime(url, clock=VirtualClock()) as v1:
        v1.register("orders:1", orders_v1)
        v1.run_until_idle(30)
        assert v1.describe(arn)["Status"] == "SUCCEEDED"
    assert RAN == ["v1:w1:a", "v1:w1:b"]


def test_chained_invokes_resolve_the_callee_qualifier() -> None:
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("caller", caller)
        rt.register("orders:1", orders_v1)
        rt.register("orders:2", orders_v2)
        rt.alias("orders", "live", "1")
        arn = rt.start("caller", {"target": "orders:live"})
        missing = rt.start("caller", {"target": "orders:beta"})
        rt.run_until_idle(30)
        assert rt.describe(arn)["Status"] == "SUCCEEDED"
        started = next(e for e in rt.history(arn)["Events"]
                       if e["EventType"] == "ChainedInvokeStarted")
        details = started["ChainedInvokeStartedDetails"]
        assert details["ExecutedVersion"] == "1"
        assert ":function:orders:1/durable-execution/" in details["DurableExecutionArn"]
        assert rt.describe(details["DurableExecutionArn"])["Version"] == "1"
        assert RAN == ["v1:child:a", "v1:child:b"]
        failed = [e for e in rt.history(missing)["Events"]
                  if e["EventType"] == "ChainedInvokeFailed"]
        assert failed[0]["ChainedInvokeFailedDetails"]["Error"]["Payload"]["ErrorType"] == \
            "ResourceNotFoundException"


# ---------------------------------------------------------------- rolling deploy


def _until(check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not reached in time: {what}"
        time.sleep(0.05)


def _pool(url: str, version: str, handler: Any) -> tuple[Worker, threading.Thread]:
    worker = Worker(url, concurrency=2, lease_seconds=10, skew_margin=1, poll_interval=0.05,
                    worker_id=f"pool-v{version}")
    worker.register(f"orders:{version}", handler)
    thread = threading.Thread(target=worker.run, kwargs={"max_seconds": 120}, daemon=True)
    thread.start()
    return worker, thread


@pytest.mark.parametrize("kind", ["redis", "dynamodb"])
def test_rolling_deploy(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    url = store_url(kind, request, tmp_path, monkeypatch)
    pool1, thread1 = _pool(url, "1", orders_v1)
    pool2: Worker | None = None
    try:
        with Runtime(url) as control:
            control.register("orders:1", orders_v1)
            control.alias("orders", "live", "1")
            old = [control.start("orders:live", {"id": f"old{i}", "gap": 3}) for i in range(3)]

            def first_steps(prefix: str, n: int) -> bool:
                return sum(1 for r in list(RAN) if r.endswith(":a") and prefix in r) >= n

            _until(lambda: first_steps(":old", 3), "the v1 executions' first steps")
            # deploy v2: a new pool, the alias moves; old executions are mid-wait on v1
            pool2, _thread2 = _pool(url, "2", orders_v2)
            control.register("orders:2", orders_v2)
            control.alias("orders", "live", "2")
            new = [control.start("orders:live", {"id": f"new{i}", "gap": 1}) for i in range(3)]

            def done(arns: list[str]) -> bool:
                return all(control.describe(a)["Status"] == "SUCCEEDED" for a in arns)

            _until(lambda: done(old) and done(new), "every execution finished")
            # v1 drained: nothing of v1 is left running, and its pool stops
            running = control.list_executions("orders", status="RUNNING")["DurableExecutions"]
            assert running == []
            pool1.stop()
            thread1.join(30)
            assert not thread1.is_alive()
            for arn in old:
                assert control.describe(arn)["Version"] == "1"
            for arn in new:
                assert control.describe(arn)["Version"] == "2"
    finally:
        pool1.stop()
        if pool2 is not None:
            pool2.stop()
    ran = list(RAN)
    # every step of an old execution ran v1 code, of a new one v2 code, never the other
    for i in range(3):
        assert sorted(r for r in ran if f":old{i}:" in r) == [f"v1:old{i}:a", f"v1:old{i}:b"]
        assert sorted(r for r in ran if f":new{i}:" in r) == [f"v2:new{i}:a", f"v2:new{i}:b"]
    assert pool2 is not None and pool2.stats.invocations >= 6
    assert pool1.stats.invocations >= 6


def test_invoke_over_http_resolves_the_qualifier() -> None:
    import boto3
    from botocore.config import Config
    from test_http_api import CREDS

    from durable_ext.http import LocalService, ServerThread

    svc = LocalService("memory://", virtual_time=True)
    svc.register("orders:1", orders_v1)
    svc.register("orders:2", orders_v2)
    svc.runtime.alias("orders", "live", "1")
    with ServerThread(svc) as srv:
        lam = boto3.client("lambda", endpoint_url=srv.url,
                           config=Config(retries={"max_attempts": 1}), **CREDS)
        for kwargs, version in (({"FunctionName": "orders", "Qualifier": "live"}, "1"),
                                ({"FunctionName": "orders:2"}, "2"),
                                ({"FunctionName": "orders"}, "2")):
            res = lam.invoke(Payload=b'{"id": "h"}', **kwargs)
            assert res["ExecutedVersion"] == version
            arn = res["DurableExecutionArn"]
            assert lam.get_durable_execution(DurableExecutionArn=arn)["Version"] == version
        with pytest.raises(lam.exceptions.ResourceNotFoundException, match="orders:nope"):
            lam.invoke(FunctionName="orders", Qualifier="nope", Payload=b"{}")


def test_alias_specs_of_the_command_line() -> None:
    from durable_ext.runtime.versions import parse_alias_spec

    assert parse_alias_spec("orders:live=2") == ("orders", "live", "2")
    for bad in ("orders=2", "orders:live", ":live=2", "orders:=2"):
        with pytest.raises(ConfigError, match="FUNCTION:ALIAS=VERSION"):
            parse_alias_spec(bad)
    with Runtime("memory://") as rt, pytest.raises(ConfigError, match="must point at a version"):
        rt.alias(*parse_alias_spec("orders:live=beta"))
