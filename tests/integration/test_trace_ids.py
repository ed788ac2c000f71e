"""``_X_AMZN_TRACE_ID`` as the service sets it: one Root per execution, a Parent per invocation.

Run on the memory and file stores, inline and in a process per invocation, through the
HTTP API's handler processes, and with two invocations in flight in one process.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import trace_handlers as th
from botocore.config import Config

from durable_ext.engine.trace import TRACE_ENV, parse_header
from durable_ext.http import LocalService, ServerThread
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.runtime.trace_env import trace_scope

pytestmark = pytest.mark.integration

CALLER_ROOT = "1-5759e988-bd862e3fe1be46a994272793"


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"file://{tmp_path / 'store'}"


@pytest.fixture(autouse=True)
def _clean_env() -> Iterator[None]:
    saved = os.environ.get(TRACE_ENV)
    th.SEEN_AT_START.clear()
    yield
    assert os.environ.get(TRACE_ENV) == saved, "an invocation's trace leaked into the process"


def parts(header: str | None) -> tuple[str, str | None, str]:
    parsed = parse_header(header)
    assert parsed is not None, f"not a trace header: {header!r}"
    return parsed.root, parsed.parent, parsed.sampled


def result_of(out: dict[str, Any]) -> Any:
    return json.loads(out["Result"])


def assert_one_root_per_execution(result: dict[str, Any]) -> None:
    seen = [result["first"], result["second"], *result["branches"], result["final"]]
    roots = {parts(h)[0] for h in seen}
    assert len(roots) == 1, seen
    assert all(parts(h)[2] == "1" for h in seen)
    # The wait splits the run in two invocations, each its own Parent; the map branches
    # and the end of the run are in the second.
    first_parent, second_parent = parts(result["first"])[1], parts(result["second"])[1]
    assert first_parent and second_parent and first_parent != second_parent
    assert {parts(h)[1] for h in [*result["branches"], result["final"]]} == {second_parent}


@pytest.mark.parametrize("handler", [th.plain, th.with_plugin], ids=["no-plugin", "plugin"])
def test_root_is_stable_and_parent_is_per_invocation(backend: str, handler: Any) -> None:
    with Runtime(backend, clock=VirtualClock()) as rt:
        rt.register("fn", handler)
        out = rt.run("fn", {})
        assert out["Status"] == "SUCCEEDED", out
        result = result_of(out)
        assert_one_root_per_execution(result)
        other = result_of(rt.run("fn", {}))
        assert parts(other["first"])[0] != parts(result["first"])[0], "executions share a Root"
    if handler is th.with_plugin:
        # what a plugin reads at invocation start is the invocation's own header
        assert th.SEEN_AT_START[:2] == [result["first"], result["second"]]


def test_root_survives_a_new_runtime_on_the_same_store(tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    with Runtime(store, clock=VirtualClock()) as rt:
        rt.register("fn", th.plain)
        arn = rt.start("fn", {})
        rt.run_until_idle(max_advance=1)  # the first invocation ends at the wait
    with Runtime(store, clock=VirtualClock()) as rt:
        rt.register("fn", th.plain)
        rt.run_until_idle()
        assert_one_root_per_execution(result_of(rt.describe(arn)))


def test_process_isolation_sets_the_child_process_environment(backend: str) -> None:
    with Runtime(backend, clock=VirtualClock(), isolation="process") as rt:
        rt.register("fn", "trace_handlers:plain")
        out = rt.run("fn", {})
        assert out["Status"] == "SUCCEEDED", out
        assert_one_root_per_execution(result_of(out))


def test_a_caller_trace_is_continued(backend: str) -> None:
    caller = f"Root={CALLER_ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
    with Runtime(backend, clock=VirtualClock()) as rt:
        rt.register("fn", th.plain)
        arn = rt.start("fn", {}, trace=caller)
        rt.run_until_idle()
        result = result_of(rt.describe(arn))
    assert {parts(h)[0] for h in (result["first"], result["second"])} == {CALLER_ROOT}
    # the caller's Parent is the service's to hang its segments under: each invocation
    # still has a segment of its own
    parents = {parts(h)[1] for h in (result["first"], result["second"])}
    assert len(parents) == 2 and "53995c3f42cd8ad8" not in parents


def test_an_unreadable_caller_trace_starts_a_trace_of_its_own(backend: str) -> None:
    with Runtime(backend, clock=VirtualClock()) as rt:
        rt.register("fn", th.plain)
        arn = rt.start("fn", {}, trace="Root=not-a-root;" + "x" * 300)
        rt.run_until_idle()
        assert_one_root_per_execution(result_of(rt.describe(arn)))


@pytest.mark.parametrize("caller", [th.caller, th.forwarding_caller], ids=["root", "forwarded"])
def test_chained_invoke_carries_the_trace_into_the_child(backend: str, caller: Any) -> None:
    with Runtime(backend, clock=VirtualClock()) as rt:
        rt.register("parent", caller)
        rt.register("child", th.child)
        out = rt.run("parent", {})
        assert out["Status"] == "SUCCEEDED", out
        result = result_of(out)
        own, child = result["own"], result["child"]["child"]
    if caller is th.forwarding_caller:
        # the XAmznTraceId the caller's instrumentation gave is the trace the child runs in
        assert parts(child)[0] == th.FORWARDED_ROOT and parts(child)[2] == "0"
    else:
        assert parts(child)[0] == parts(own)[0] and parts(child)[2] == "1"
    assert parts(child)[1] not in (None, parts(own)[1], th.FORWARDED_PARENT)


def test_concurrent_invocations_in_one_process_see_their_own_trace() -> None:
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with Runtime("memory://", clock=VirtualClock()) as rt:
                rt.register("fn", th.concurrent)
                out = rt.run("fn", {})
                results[i] = result_of(out)["seen"]
        except BaseException as exc:  # reported below, with the other thread's outcome
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    seen = [results[i] for i in range(2)]
    assert all(not s.startswith("changed") for s in seen), seen
    assert parts(seen[0])[0] != parts(seen[1])[0]
    assert set(th.SEEN_AT_START) == set(seen)


def test_trace_scope_is_per_thread() -> None:
    meet = threading.Barrier(3, timeout=10)
    seen: dict[str, str | None] = {}

    def body(header: str) -> None:
        with trace_scope(header):
            meet.wait()
            seen[header] = os.environ.get(TRACE_ENV)
            meet.wait()

    headers = [f"Root=1-00000000-{i:024x};Sampled=1" for i in (1, 2, 3)]
    threads = [threading.Thread(target=body, args=(h,)) for h in headers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {h: h for h in headers}


# ---------------------------------------------------------------- HTTP API


@pytest.fixture
def server() -> Iterator[ServerThread]:
    svc = LocalService("memory://", virtual_time=True)
    svc.register("fn", "trace_handlers:plain", isolation="http")
    svc.register("inline", th.plain)
    with ServerThread(svc) as srv:
        yield srv
    assert svc.driver_error is None


@pytest.mark.parametrize("function", ["fn", "inline"], ids=["handler-process", "inline"])
def test_http_api_invocations_carry_the_trace(server: ServerThread, function: str) -> None:
    lam = boto3.client("lambda", endpoint_url=server.url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing",
                       config=Config(retries={"total_max_attempts": 1}, read_timeout=60))
    res = lam.invoke(FunctionName=function, Payload=b"{}")
    assert "FunctionError" not in res, res["Payload"].read()
    assert_one_root_per_execution(json.loads(res["Payload"].read()))


def test_http_api_continues_the_callers_trace_header(server: ServerThread) -> None:
    import httpx

    caller = f"Root={CALLER_ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
    res = httpx.post(f"{server.url}/2015-03-31/functions/fn/invocations", content=b"{}",
                     headers={"X-Amzn-Trace-Id": caller}, timeout=60)
    assert res.status_code == 200, res.text
    body = res.json()
    assert parts(body["first"])[0] == parts(body["final"])[0] == CALLER_ROOT
    assert parts(body["second"])[1] != "53995c3f42cd8ad8"
