"""Status-change events: every transition at least once, in order, to hooks, webhooks and SQS.

Delivery survives a worker SIGKILLed between the commit and the send (an outbox in the
store), and a duplicate sent before such a kill carries the same id.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import test_pause_resume as scenarios
from test_pause_resume import backend, store_url  # noqa: F401  (every store)

from durable_ext.errors import ConfigError, DeliveryError
from durable_ext.events import (
    DETAIL_TYPE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HookSink,
    SqsSink,
    WebhookSink,
    event_id,
    verify,
)
from durable_ext.runtime import Runtime, VirtualClock

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent


def statuses(events: list[Mapping[str, Any]], arn: str) -> list[tuple[str | None, str]]:
    return [(e["detail"]["PreviousStatus"], e["detail"]["Status"]) for e in events
            if e["detail"]["DurableExecutionArn"] == arn]


def callback_of(rt: Runtime, arn: str) -> str:
    started = [e for e in rt.history(arn)["Events"] if e["EventType"] == "CallbackStarted"]
    return str(started[-1]["CallbackStartedDetails"]["CallbackId"])


# ---------------------------------------------------------------- every store, a hook


def test_every_transition_in_order_with_stable_ids(backend: str) -> None:  # noqa: F811
    got: list[Mapping[str, Any]] = []
    with Runtime(backend, clock=VirtualClock(), event_sinks=[HookSink(got.append)]) as rt:
        rt.register("approval", scenarios.approval)
        rt.register("long-wait", scenarios.long_wait)
        arn = rt.start("approval", {})
        rt.run_until_idle(30)
        rt.pause(arn)
        rt.send_callback_success(callback_of(rt, arn), '"ok"')
        rt.resume(arn)
        rt.run_until_idle(30)
        rt.delete(arn)
        rt.run_until_idle(30)
        with pytest.raises(KeyError):
            rt.describe(arn)  # deleted, once its events were out

        stopped = rt.start("approval", {})
        rt.run_until_idle(30)
        rt.stop(stopped)
        timed = rt.start("long-wait", {}, execution_timeout=60)
        rt.run_until_idle(30)
        rt.run_until_idle(30)  # delivers what the last pass left
        assert rt.outbox is not None and rt.outbox.pending() == []

    assert statuses(got, arn) == [
        (None, "RUNNING"), ("RUNNING", "PAUSED"), ("PAUSED", "RUNNING"),
        ("RUNNING", "SUCCEEDED"), ("SUCCEEDED", "DELETING"),
    ]
    assert statuses(got, stopped) == [(None, "RUNNING"), ("RUNNING", "STOPPED")]
    assert statuses(got, timed) == [(None, "RUNNING"), ("RUNNING", "TIMED_OUT")]
    mine = [e for e in got if e["detail"]["DurableExecutionArn"] == arn]
    assert [e["id"] for e in mine] == [event_id(arn, n) for n in range(1, 6)]
    assert [e["detail"]["Sequence"] for e in mine] == [1, 2, 3, 4, 5]
    first = mine[0]
    assert first["detail-type"] == DETAIL_TYPE == "Durable Execution Status Change"
    assert first["source"] == "aws.lambda" and first["version"] == "0"
    assert first["resources"][0] == arn
    assert first["detail"]["FunctionArn"] == first["resources"][1]
    assert first["time"].endswith("Z")
    assert "EndTimestamp" in mine[3]["detail"]
    timed_out = [e for e in got if e["detail"]["DurableExecutionArn"] == timed][-1]
    assert timed_out["detail"]["Error"]["ErrorType"] == "Execution.Timeout"


def test_a_failing_sink_holds_later_events_back_and_loses_none(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    got: list[Mapping[str, Any]] = []
    down = {"on": True}

    def flaky(event: Mapping[str, Any]) -> None:
        if down["on"]:
            raise ConnectionError("receiver down")
        got.append(event)

    url = store_url("file", request, tmp_path, monkeypatch)
    with Runtime(url, clock=VirtualClock(), event_sinks=[HookSink(flaky)]) as rt:
        assert rt.outbox is not None
        rt.outbox.base_delay = 0.0  # no backoff wait in this test
        rt.register("approval", scenarios.approval)
        arn = rt.start("approval", {})
        rt.run_until_idle(30)
        rt.pause(arn)
        rt.resume(arn)
        rt.stop(arn)
        assert [d.key for d in rt.outbox.pending(arn)] == [
            "emit:000000000001", "emit:000000000002", "emit:000000000003",
            "emit:000000000004"]
        assert isinstance(rt.outbox.last_error, ConnectionError)
        down["on"] = False
        assert rt.deliver_events() == 4
    assert statuses(got, arn) == [(None, "RUNNING"), ("RUNNING", "PAUSED"),
                                  ("PAUSED", "RUNNING"), ("RUNNING", "STOPPED")]


# ---------------------------------------------------------------- webhook


class _Receiver(http.server.BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv = self.server
        with srv.lock:
            srv.requests.append((dict(self.headers), body))
            fail = srv.fail_next > 0
            srv.fail_next -= 1
        self.send_response(503 if fail else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Any]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    srv.requests = []
    srv.fail_next = 0
    srv.lock = threading.Lock()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(10)


def test_webhook_retries_with_backoff_and_signs_every_request(receiver: Any) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    sleeps: list[float] = []
    sink = WebhookSink(url, secret="s3cret", attempts=4, base_delay=0.1, sleep=sleeps.append)
    receiver.fail_next = 2
    with Runtime("memory://", clock=VirtualClock(), event_sinks=[sink]) as rt:
        rt.register("approval", scenarios.approval)
        arn = rt.start("approval", {})
        rt.run_until_idle(30)
        rt.stop(arn)
        rt.run_until_idle(30)
    assert len(sleeps) == 2 and all(0 <= s <= 0.2 for s in sleeps)  # two retries, backoff
    bodies = [json.loads(body) for _, body in receiver.requests]
    assert [b["detail"]["Status"] for b in bodies] == ["RUNNING", "RUNNING", "RUNNING",
                                                        "STOPPED"]
    assert len({b["id"] for b in bodies[:3]}) == 1  # the retried event keeps its id
    for headers, body in receiver.requests:
        assert headers["Content-Type"] == "application/json"
        assert verify(b"s3cret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert not verify(b"other", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert not verify(b"s3cret", headers[TIMESTAMP_HEADER], body + b" ",
                          headers[SIGNATURE_HEADER])


def test_webhook_that_stays_down_raises_and_a_refusal_is_not_retried(receiver: Any) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    receiver.fail_next = 10
    sink = WebhookSink(url, attempts=3, base_delay=0, sleep=lambda _s: None)
    with pytest.raises(DeliveryError, match="after 3 tries"):
        sink.send({"id": "e-1", "detail": {}})
    assert len(receiver.requests) == 3
    closed = WebhookSink("http://127.0.0.1:9/nothing", attempts=2, base_delay=0,
                         sleep=lambda _s: None)
    with pytest.raises(DeliveryError, match="not taken"):
        closed.send({"id": "e-2"})
    with pytest.raises(ConfigError):
        WebhookSink("ftp://example.com/x")


# ---------------------------------------------------------------- SQS (moto)


@pytest.mark.parametrize("fifo", [False, True])
def test_sqs_sink_delivers_in_order(moto_server: Any, fifo: bool,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sqs = moto_server.client("sqs", region_name="us-east-1")
    name = moto_server.unique("events") + (".fifo" if fifo else "")
    attrs = {"FifoQueue": "true"} if fifo else {}
    queue = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    sink = SqsSink(queue, region="us-east-1", endpoint_url=moto_server.endpoint_url)
    delivered: list[Mapping[str, Any]] = []
    with Runtime("memory://", clock=VirtualClock(),
                 event_sinks=[sink, HookSink(delivered.append)]) as rt:
        rt.register("approval", scenarios.approval)
        arn = rt.start("approval", {})
        rt.run_until_idle(30)
        rt.pause(arn)
        rt.stop(arn)
        rt.run_until_idle(30)
        assert rt.outbox is not None and rt.outbox.pending() == []
    # a repeat of a delivered event (as after a crash): FIFO drops it by its id
    sink.send(delivered[-1])
    messages: list[dict[str, Any]] = []
    for _ in range(10):
        out = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                  MessageAttributeNames=["All"], WaitTimeSeconds=0)
        batch = out.get("Messages", [])
        if not batch:
            break
        messages += batch
        for m in batch:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    events = [json.loads(m["Body"]) for m in messages]
    want = [(None, "RUNNING"), ("RUNNING", "PAUSED"), ("PAUSED", "STOPPED")]
    if fifo:
        assert statuses(events, arn) == want
    else:  # a standard queue orders best-effort and keeps the duplicate
        assert sorted(statuses(events, arn), key=str) == sorted([*want, want[-1]], key=str)
    for m in messages:
        body = json.loads(m["Body"])
        assert m["MessageAttributes"]["id"]["StringValue"] == body["id"]
        assert m["MessageAttributes"]["execution"]["StringValue"] == arn


# ---------------------------------------------------------------- SIGKILL after commit

_CHILD = textwrap.dedent('''
    import json, os, signal, sys
    sys.path.insert(0, {tests!r})
    from durable_ext.events import HookSink
    from durable_ext.fleet import Worker
    import test_http_handlers as handlers

    mode, log_path = {mode!r}, {log!r}

    def sink(event):
        status = event["detail"]["Status"]
        if mode == "before" and status == "SUCCEEDED":
            os.kill(os.getpid(), signal.SIGKILL)   # committed, never sent
        with open(log_path, "a") as fh:
            fh.write(json.dumps(event) + "\\n")
            fh.flush()
            os.fsync(fh.fileno())
        if mode == "after" and status == "SUCCEEDED":
            os.kill(os.getpid(), signal.SIGKILL)   # sent, never removed from the outbox

    worker = Worker({backend!r}, lease_seconds=5, skew_margin=1, poll_interval=0.02,
                    event_sinks=[HookSink(sink)])
    worker.register("adder", handlers.adder)
    arn = worker.runtime.start("adder", {{"a": 1}}, name={name!r})
    print(arn, flush=True)
    worker.run(max_seconds=60)
''')


@pytest.mark.parametrize("mode", ["before", "after"])
@pytest.mark.parametrize("kind", ["file", "redis"])
def test_events_survive_a_worker_sigkilled_after_the_commit(
    kind: str, mode: str, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = store_url(kind, request, tmp_path, monkeypatch)
    log = tmp_path / "sent.jsonl"
    script = _CHILD.format(tests=str(HERE), mode=mode, log=str(log), backend=url,
                           name=f"kill-{mode}")
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": str(HERE)})
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    arn = child.stdout.split()[0]
    sent_before = [json.loads(line) for line in log.read_text().splitlines()]

    got: list[Mapping[str, Any]] = []
    import test_http_handlers as handlers

    with Runtime(url, event_sinks=[HookSink(got.append)]) as rt:
        rt.register("adder", handlers.adder)
        rt.run_until_idle(30)
        assert rt.describe(arn)["Status"] == "SUCCEEDED"
        assert rt.outbox is not None and rt.outbox.pending(arn) == []
    everything = sent_before + list(got)
    seen = statuses(everything, arn)
    # nothing lost, in order; the only repeat is the event the kill cut short
    if mode == "before":
        assert seen == [(None, "RUNNING"), ("RUNNING", "SUCCEEDED")]
    else:
        assert seen == [(None, "RUNNING"), ("RUNNING", "SUCCEEDED"), ("RUNNING", "SUCCEEDED")]
        assert everything[-1]["id"] == everything[-2]["id"] == event_id(arn, 2)
    assert [e["id"] for e in got] == [event_id(arn, 2)]
