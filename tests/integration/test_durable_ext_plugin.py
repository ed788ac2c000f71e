"""durable_ext's own plugin: serializer and commit spans in the execution's trace, once.

The handler checkpoints msgpack+zstd results through ``default_serdes`` over several
invocations; replaying reads every earlier result back, and the plugin must not show
those reads, while a callback's result (delivered between invocations) is new work.
"""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.config import Duration, WaitForCallbackConfig

import durable_ext
from durable_ext.observe import OBSERVERS
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.tracing import LocalTraces

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"file://{tmp_path / 'store'}"


def _handler(plugins: list[Any] | None) -> Any:
    @durable_execution(plugins=plugins)
    @durable_ext.default_serdes("msgpack+zstd")
    def handler(event: Any, ctx: Any) -> Any:
        a = ctx.step(lambda _: {"n": 1, "blob": b"x" * 2000}, name="first")
        ctx.wait(Duration.from_seconds(2), name="pause")
        b = ctx.step(lambda _: [a["n"], 2], name="second")
        got = ctx.wait_for_callback(lambda cid, _: None, name="approval",
                                    config=WaitForCallbackConfig(timeout=Duration.from_hours(1)))
        return {"b": b, "got": got}

    return handler


def run(rt: Runtime, handler: Any) -> str:
    rt.register("fn", handler)
    arn = rt.start("fn", {})
    rt.run_until_idle()
    events = rt.history(arn)["Events"]
    (started,) = [e for e in events if e["EventType"] == "CallbackStarted"]
    rt.send_callback_success(started["CallbackStartedDetails"]["CallbackId"], b'"ok"')
    rt.run_until_idle()
    assert rt.describe(arn)["Status"] == "SUCCEEDED", rt.describe(arn)
    return arn


def step_ids(rt: Runtime, arn: str) -> dict[str, str]:
    return {e["Name"]: e["Id"] for e in rt.history(arn)["Events"]
            if e["EventType"] == "StepStarted"}


def check(traces: LocalTraces, rt: Runtime, arn: str) -> None:
    spans = traces.spans(arn)
    assert len({s.trace_id for s in spans}) == 1
    by_id = {s.span_id: s for s in spans}
    ids = step_ids(rt, arn)
    encodes = [s for s in spans if s.name == "durable_ext.serialize"]
    encoded = Counter(s.attributes["durable.operation.id"] for s in encodes)
    # each step result encoded once, in the invocation that ran it, under its operation
    assert encoded[ids["first"]] == 1 and encoded[ids["second"]] == 1
    for s in encodes:
        assert s.attributes["durable_ext.serdes.pipeline"] == "msgpack+zstd"
        assert s.attributes["durable_ext.serdes.chars"] > 0
    (first,) = [s for s in encodes if s.attributes["durable.operation.id"] == ids["first"]]
    assert by_id[first.parent_id].name == "first"
    # every later invocation read the results back while replaying: no span for those
    # (a read in the invocation that produced the result is that invocation's work)
    decoded = Counter(s.attributes["durable.operation.id"] for s in spans
                      if s.name == "durable_ext.deserialize")
    runs = sum(s.name == "Invocation" for s in spans)
    assert runs >= 3 and decoded[ids["first"]] <= 1 and decoded[ids["second"]] <= 1
    commits = [s for s in spans if s.name == "durable_ext.checkpoint"]
    # under what the official plugin made current for the invocation (the execution view:
    # its Workflow span)
    assert commits and all(by_id[s.parent_id].name == "Workflow" for s in commits)
    assert sum(s.attributes["durable_ext.commit.updates"] for s in commits) >= 6
    assert len({s.span_id for s in spans}) == len(spans)
    assert not OBSERVERS, "an observer outlived its invocation"


def test_serializer_and_commit_spans(backend: str) -> None:
    traces = LocalTraces()
    with Runtime(backend, clock=VirtualClock()) as rt:
        arn = run(rt, _handler([traces.plugin(), traces.durable_ext_plugin()]))
        check(traces, rt, arn)


def test_selected_through_the_entry_point_group(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    from opentelemetry import trace

    traces = LocalTraces()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: traces.provider)
    monkeypatch.setenv("DURABLE_EXECUTION_PLUGINS", "otel-execution,durable-ext")
    with Runtime("memory://", clock=VirtualClock()) as rt:
        arn = run(rt, _handler(None))
        check(traces, rt, arn)


def test_off_without_the_plugin(backend: str) -> None:
    traces = LocalTraces()
    with Runtime(backend, clock=VirtualClock()) as rt:
        arn = run(rt, _handler([traces.plugin()]))
    names = {s.name for s in traces.spans(arn)}
    assert not any(n.startswith("durable_ext.") for n in names) and "Workflow" in names
    assert not OBSERVERS


def test_entry_point_is_registered() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="aws_durable_execution.plugins")
             if e.name == "durable-ext"]
    assert ep.load() is importlib.import_module("durable_ext.tracing_plugin").FACTORY


def test_a_failed_encode_is_an_error_span(backend: str) -> None:
    traces = LocalTraces()

    @durable_execution(plugins=[traces.plugin(), traces.durable_ext_plugin()])
    @durable_ext.default_serdes("msgpack")
    def handler(event: Any, ctx: Any) -> str:
        try:
            ctx.step(lambda _: object(), name="unencodable")
        except Exception as exc:  # the step's result cannot be encoded
            return type(exc).__name__
        return "encoded"

    with Runtime(backend, clock=VirtualClock()) as rt:
        rt.register("fn", handler)
        out = rt.run("fn", {})
    assert out["Status"] == "SUCCEEDED", out
    (failed,) = [s for s in traces.spans(out["DurableExecutionArn"])
                 if s.name == "durable_ext.serialize"]
    assert failed.status == "ERROR"
    assert "durable_ext.serdes.chars" not in failed.attributes
