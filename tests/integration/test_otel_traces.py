"""The SDK's OpenTelemetry plugin on the local runtime: one complete trace per execution.

An execution with a step, a retried step, a wait, a callback, a map, a parallel and a
chained invoke runs over several invocations; its trace is checked span by span: names,
parents, links to the invocation that ran each piece, and that nothing replayed comes
back as a second span. On memory and file stores, on the fleet over Redis (invocations on
threads, several at once), and through the HTTP API's handler processes, which export
over OTLP/HTTP to a receiver in this test.
"""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import otel_handlers as oh
import pytest

from durable_ext.fleet import Worker
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.tracing import SpanRecord

pytestmark = pytest.mark.integration

# operation spans of `everything`, each exactly once (attempt spans checked apart)
OPERATIONS = ["one", "flaky", "pause", "approval", "approval submitter",
              "approval create callback id", "fan", "map-item-0", "map-item-1", "item-1",
              "item-2", "par", "parallel-branch-0", "parallel-branch-1", "left", "right",
              "call-child"]
PARENTS = {
    "one": "Workflow", "flaky": "Workflow", "pause": "Workflow", "approval": "Workflow",
    "approval submitter": "approval", "approval create callback id": "approval",
    "fan": "Workflow", "map-item-0": "fan", "map-item-1": "fan", "item-1": "map-item-0",
    "item-2": "map-item-1", "par": "Workflow", "parallel-branch-0": "par",
    "parallel-branch-1": "par", "left": "parallel-branch-0", "right": "parallel-branch-1",
    "call-child": "Workflow", "flaky attempt 1": "flaky", "flaky attempt 2": "flaky",
    "one attempt 1": "one",
}


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"file://{tmp_path / 'store'}"


@pytest.fixture(autouse=True)
def _fresh_spans() -> None:
    if oh.TRACES._memory is not None:
        oh.TRACES.clear()


def drive(rt: Runtime, arn: str, advance: Any) -> None:
    """Run to the callback, answer it, run to the end."""
    advance()
    events = rt.history(arn)["Events"]
    (started,) = [e for e in events if e["EventType"] == "CallbackStarted"]
    rt.send_callback_success(started["CallbackStartedDetails"]["CallbackId"],
                             json.dumps("yes"))
    advance()
    assert rt.describe(arn)["Status"] == "SUCCEEDED", rt.describe(arn)


def child_of(rt: Runtime, arn: str) -> str:
    events = rt.history(arn)["Events"]
    (started,) = [e for e in events if e["EventType"] == "ChainedInvokeStarted"]
    return str(started["ChainedInvokeStartedDetails"]["DurableExecutionArn"])


def invocations(rt: Runtime, arn: str) -> int:
    return sum(e["EventType"] == "InvocationCompleted" for e in rt.history(arn)["Events"])


def check_trace(spans: list[SpanRecord], arn: str, child: str, counts: dict[str, int]) -> None:
    assert len({s.trace_id for s in spans}) == 1, "the execution and its child share a trace"
    ids = Counter(s.span_id for s in spans)
    assert [i for i, n in ids.items() if n > 1] == [], "a span was exported twice"
    by_id = {s.span_id: s for s in spans}
    own = [s for s in spans if s.execution_arn == arn]
    names = Counter(s.name for s in own)
    for name in [*OPERATIONS, "Workflow"]:
        assert names[name] == 1, (name, names[name])
    for name, parent in PARENTS.items():
        (span,) = [s for s in own if s.name == name]
        assert span.parent_id in by_id and by_id[span.parent_id].name == parent, name
    # retries: one span per attempt, the failed one marked as an error
    assert names["flaky attempt 1"] == names["flaky attempt 2"] == 1
    assert names["flaky attempt 3"] == 0
    status = {s.name: s.status for s in own}
    assert status["flaky attempt 1"] == "ERROR" and status["flaky attempt 2"] == "OK"
    # one Invocation span per invocation, the first one flagged
    runs = [s for s in own if s.name == "Invocation"]
    assert len(runs) == counts[arn]
    assert [s.attributes["durable.invocation.first"] for s in runs].count(True) == 1
    # every operation links to the invocation that ran it
    invocation_ids = {s.span_id for s in runs}
    for s in own:
        if s.name not in ("Invocation", "Workflow"):
            assert set(s.links) & invocation_ids, s.name
    # the child is in the caller's trace, under the service's segments (as on Lambda),
    # not under the caller's SDK spans
    (child_workflow,) = [s for s in spans if s.execution_arn == child and s.name == "Workflow"]
    assert child_workflow.parent_id and child_workflow.parent_id not in by_id
    child_runs = [s for s in spans if s.execution_arn == child and s.name == "Invocation"]
    assert len(child_runs) == counts[child]
    assert all(s.parent_id and s.parent_id not in by_id for s in child_runs)
    assert Counter(s.name for s in spans if s.execution_arn == child)["child-step"] == 1


def test_complete_trace_on_the_local_runtime(backend: str) -> None:
    with Runtime(backend, clock=VirtualClock()) as rt:
        rt.register("fn", oh.everything)
        rt.register("child", oh.child)
        arn = rt.start("fn", {})
        drive(rt, arn, rt.run_until_idle)
        child = child_of(rt, arn)
        counts = {arn: invocations(rt, arn), child: invocations(rt, child)}
    assert counts[arn] >= 5 and counts[child] == 2
    check_trace(oh.TRACES.spans(arn), arn, child, counts)
    tree = oh.TRACES.tree(arn)
    assert tree.startswith("Workflow [OK]") and "\n    flaky attempt 1 [ERROR]" in tree


def test_each_execution_is_its_own_trace(backend: str) -> None:
    with Runtime(backend, clock=VirtualClock()) as rt:
        rt.register("fn", oh.simple)
        arns = [rt.start("fn", {}) for _ in range(2)]
        rt.run_until_idle()
    traces = [oh.TRACES.spans(a) for a in arns]
    assert {s.trace_id for s in traces[0]}.isdisjoint({s.trace_id for s in traces[1]})
    for spans in traces:
        assert Counter(s.name for s in spans) == Counter(
            {"Workflow": 1, "Invocation": 2, "first": 1, "first attempt 1": 1, "nap": 1,
             "second": 1, "second attempt 1": 1})


def test_complete_trace_through_the_fleet_on_redis(redis_server: Any) -> None:
    backend = f"{redis_server.url}?prefix=ot{uuid.uuid4().hex[:8]}:"
    control = Runtime(backend)
    worker = Worker(backend, concurrency=4, poll_interval=0.02)
    try:
        for w in (control, worker):
            w.register("fn", oh.everything)
            w.register("child", oh.child)
        arns = [control.start("fn", {}) for _ in range(3)]

        answered: set[str] = set()

        def finished() -> bool:
            # answers each callback once it is started (a worker runs once, until this)
            for a in set(arns) - answered:
                started = [e for e in control.history(a)["Events"]
                           if e["EventType"] == "CallbackStarted"]
                if started:
                    control.send_callback_success(
                        started[0]["CallbackStartedDetails"]["CallbackId"], json.dumps("yes"))
                    answered.add(a)
            return all(control.describe(a)["Status"] != "RUNNING" for a in arns)

        worker.run(max_seconds=90, until=finished)
        for a in arns:
            assert control.describe(a)["Status"] == "SUCCEEDED", control.describe(a)
            child = child_of(control, a)
            counts = {a: invocations(control, a), child: invocations(control, child)}
            check_trace(oh.TRACES.spans(a), a, child, counts)
    finally:
        worker.close()
        control.close()


# ---------------------------------------------------------------- OTLP, HTTP API


class _Receiver(BaseHTTPRequestHandler):
    spans: list[SpanRecord] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        got = []
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for s in scope.spans:
                    attrs = {a.key: _value(a.value) for a in s.attributes}
                    got.append(SpanRecord(
                        name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex() or None, kind=str(s.kind),
                        status="ERROR" if s.status.code == 2 else "OK",
                        start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                        attributes=attrs, links=tuple(x.span_id.hex() for x in s.links)))
        with self.lock:
            self.spans.extend(got)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.spans = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()
        server.server_close()


def test_complete_trace_over_otlp_from_http_api_handler_processes(
        receiver: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from durable_ext.http import LocalService, ServerThread

    monkeypatch.setenv(oh.ENDPOINT_ENV, receiver)
    svc = LocalService("memory://", virtual_time=True)
    svc.register("fn", "otel_handlers:everything", isolation="http")
    svc.register("child", "otel_handlers:child", isolation="http")
    with ServerThread(svc) as srv:
        rt = svc.runtime
        arn = svc.start("fn", b"{}", None)
        deadline = time.monotonic() + 60
        while not any(e["EventType"] == "CallbackStarted" for e in rt.history(arn)["Events"]):
            assert time.monotonic() < deadline, "never reached the callback"
            time.sleep(0.05)
        (started,) = [e for e in rt.history(arn)["Events"] if e["EventType"] == "CallbackStarted"]
        rt.send_callback_success(started["CallbackStartedDetails"]["CallbackId"],
                                 json.dumps("yes"))
        svc._wake.set()
        while rt.describe(arn)["Status"] == "RUNNING":
            assert time.monotonic() < deadline, "never finished"
            time.sleep(0.05)
        assert rt.describe(arn)["Status"] == "SUCCEEDED"
        child = child_of(rt, arn)
        counts = {arn: invocations(rt, arn), child: invocations(rt, child)}
        del srv
    with _Receiver.lock:
        spans = list(_Receiver.spans)
    trace = {s.trace_id for s in spans if s.execution_arn == arn}
    check_trace([s for s in spans if s.trace_id in trace], arn, child, counts)
