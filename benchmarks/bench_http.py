"""Checkpoint round trips: in-process, through our HTTP API, and through the testing SDK's server.

One workload for all three: an open invocation checkpoints a STEP START + SUCCEED pair
(64-byte result) per round trip and carries the returned token into the next one, as the
SDK does. The HTTP targets are driven by the SDK's own ``LambdaClient`` (boto3 with
``endpoint_url``), so the HTTP path measured is the one handlers use on Lambda.

* ``in-process``: the SDK's ``DurableServiceClient`` protocol on our engine (memory store);
* ``http``: ``durable-ext serve``'s app (uvicorn + Starlette) on a memory store;
* ``testing-sdk-web``: the official testing SDK's web server (memory store), whose
  handler invocations go to a stub Lambda endpoint that keeps one invocation open.

Run (one run, all targets)::

    pytest benchmarks/bench_http.py --benchmark-json=http.json
    python benchmarks/bench_http.py http.json          # the ratio table
"""

from __future__ import annotations

import itertools
import json
import queue
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from aws_durable_execution_sdk_python.lambda_service import (
    LambdaClient,
    OperationAction,
    OperationType,
    OperationUpdate,
)
from botocore.config import Config

ROUNDS = 400
WARMUP = 20
PAYLOAD = json.dumps("x" * 62)  # 64 characters on the wire
CREDS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench",
         "region_name": "us-east-1"}


@dataclass
class Target:
    """An open invocation: where to checkpoint and the current token."""

    client: Any
    arn: str
    token: str


def _updates(i: int) -> list[OperationUpdate]:
    op = f"step-{i}"
    return [
        OperationUpdate(operation_id=op, operation_type=OperationType.STEP,
                        action=OperationAction.START, name=op, sub_type=None),
        OperationUpdate(operation_id=op, operation_type=OperationType.STEP,
                        action=OperationAction.SUCCEED, name=op, payload=PAYLOAD),
    ]


def _lambda_client(url: str) -> LambdaClient:
    return LambdaClient(boto3.client("lambda", endpoint_url=url, **CREDS, config=Config(
        retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- targets


@pytest.fixture
def in_process() -> Iterator[Target]:
    from durable_ext.backends.memory import MemoryStore
    from durable_ext.engine import Engine
    from durable_ext.runtime import EngineClient

    engine = Engine(MemoryStore())
    arn, _ = engine.start("bench", "{}")
    inv = engine.begin_invocation(arn)
    assert inv is not None
    yield Target(EngineClient(engine), arn, inv.token)


@pytest.fixture
def http_api() -> Iterator[Target]:
    from durable_ext.http import LocalService, ServerThread

    service = LocalService("memory://")
    with ServerThread(service) as server:
        # "bench" is not a served function: no driver touches this execution.
        arn, _ = service.runtime.engine.start("bench", "{}")
        inv = service.runtime.engine.begin_invocation(arn)
        assert inv is not None
        yield Target(_lambda_client(server.url), arn, inv.token)


class _HeldInvocation(BaseHTTPRequestHandler):
    """A stub Lambda endpoint: hand the invocation's token over, answer when released."""

    tokens: queue.Queue[tuple[str, str]]
    release: threading.Event

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.tokens.put((body["DurableExecutionArn"], body["CheckpointToken"]))
        self.release.wait(300)
        out = json.dumps({"Status": "SUCCEEDED", "Result": "null"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def testing_sdk_web(monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    # its runner invokes the stub endpoint with a default boto3 client
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bench")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bench")
    from aws_durable_execution_sdk_python_testing.runner import WebRunner, WebRunnerConfig
    from aws_durable_execution_sdk_python_testing.web.server import WebServiceConfig

    tokens: queue.Queue[tuple[str, str]] = queue.Queue()
    release = threading.Event()
    handler = type("Held", (_HeldInvocation,), {"tokens": tokens, "release": release})
    stub = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    stub.daemon_threads = True
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    port = _free_port()
    runner = WebRunner(WebRunnerConfig(
        web_service=WebServiceConfig(host="127.0.0.1", port=port),
        lambda_endpoint=f"http://127.0.0.1:{stub.server_address[1]}",
        local_runner_region="us-east-1"))
    runner.start()
    serving = threading.Thread(target=runner.serve_forever, daemon=True)
    serving.start()
    try:
        import httpx

        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.post(f"{url}/start-durable-execution", json={
                    "AccountId": "123456789012", "FunctionName": "bench",
                    "FunctionQualifier": "$LATEST", "ExecutionName": "bench",
                    "ExecutionTimeoutSeconds": 600, "ExecutionRetentionPeriodDays": 1,
                    "Input": "{}"}, timeout=10)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert r.status_code == 201, r.text
        arn, token = tokens.get(timeout=30)
        yield Target(_lambda_client(url), arn, token)
    finally:
        release.set()
        runner.stop()
        stub.shutdown()
        stub.server_close()


# ---------------------------------------------------------------- the benchmark


@pytest.mark.parametrize("target_name", ["in-process", "http", "testing-sdk-web"])
def test_checkpoint_round_trip(benchmark: Any, request: pytest.FixtureRequest,
                               target_name: str) -> None:
    fixture = {"in-process": "in_process", "http": "http_api",
               "testing-sdk-web": "testing_sdk_web"}[target_name]
    target: Target = request.getfixturevalue(fixture)
    counter = itertools.count()

    def round_trip() -> None:
        out = target.client.checkpoint(target.arn, target.token, _updates(next(counter)), None)
        assert out.checkpoint_token
        (op,) = out.new_execution_state.operations
        assert op.status.value == "SUCCEEDED"
        target.token = out.checkpoint_token

    benchmark.extra_info["target"] = target_name
    benchmark.pedantic(round_trip, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)


TARGETS = ("in-process", "http", "testing-sdk-web")


def _prefill(target: Target, operations: int) -> None:
    """Give the execution ``operations`` finished steps (250 updates per call, the SDK's cap)."""
    for k in range(0, operations, 125):
        updates = [u for j in range(k, min(k + 125, operations)) for u in _updates(-1 - j)]
        out = target.client.checkpoint(target.arn, target.token, updates, None)
        target.token = out.checkpoint_token


@pytest.mark.parametrize("history", [0, 2000])
def test_checkpoint_round_trip_interleaved(benchmark: Any, in_process: Target,
                                           http_api: Target, testing_sdk_web: Target,
                                           history: int) -> None:
    """All three targets in one loop, rotating the order each round.

    On a shared machine the load drifts over a run; timing the targets side by side in
    the same rounds keeps that drift out of their ratios (the table uses these medians).
    ``history`` finished steps are checkpointed first: the cost of a checkpoint should
    not grow with the execution's history.
    """
    targets = dict(zip(TARGETS, (in_process, http_api, testing_sdk_web), strict=True))
    for target in targets.values():
        _prefill(target, history)
    benchmark.extra_info["history"] = history
    counter = itertools.count()
    samples: dict[str, list[float]] = {name: [] for name in TARGETS}
    rotation = itertools.count()

    def one_each() -> None:
        shift = next(rotation) % len(TARGETS)
        for name in TARGETS[shift:] + TARGETS[:shift]:
            target = targets[name]
            updates = _updates(next(counter))
            started = time.perf_counter()
            out = target.client.checkpoint(target.arn, target.token, updates, None)
            samples[name].append(time.perf_counter() - started)
            target.token = out.checkpoint_token

    benchmark.pedantic(one_each, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    for name, times in samples.items():
        kept = sorted(times[WARMUP:] if len(times) > WARMUP else times)
        benchmark.extra_info[f"{name}_median"] = kept[len(kept) // 2]
        benchmark.extra_info[f"{name}_p90"] = kept[int(len(kept) * 0.9)]
    assert all(len(t) == ROUNDS + WARMUP for t in samples.values())


# ---------------------------------------------------------------- report


def report(path: str) -> None:
    """Print the ratio tables of a ``--benchmark-json`` file of this module."""
    with open(path) as fh:
        data = json.load(fh)
    benches = data["benchmarks"]
    mixed = [b["extra_info"] for b in benches
             if b["name"].startswith("test_checkpoint_round_trip_interleaved")]
    if mixed:
        print("Interleaved (same rounds, rotating order):\n")
        print("| prior steps | target | median | p90 | round trips/s (median) | time vs http |")
        print("|---:|---|---:|---:|---:|---:|")
        for info in sorted(mixed, key=lambda i: i["history"]):
            base = info["http_median"]
            for name in TARGETS:
                med, p90 = info[f"{name}_median"], info[f"{name}_p90"]
                print(f"| {info['history']:,} | {name} | {med * 1e3:.3f} ms "
                      f"| {p90 * 1e3:.3f} ms | {1 / med:,.0f} | {med / base:.2f}x |")
    rows = {b["extra_info"]["target"]: b["stats"] for b in benches
            if b["name"].startswith("test_checkpoint_round_trip[")}
    if rows:
        base = rows["http"]["median"]
        print("\nSeparate runs (pytest-benchmark, one target at a time, empty history):\n")
        print("| target | median | mean | round trips/s (median) | time vs http |")
        print("|---|---:|---:|---:|---:|")
        for name in TARGETS:
            if name in rows:
                st = rows[name]
                print(f"| {name} | {st['median'] * 1e3:.3f} ms | {st['mean'] * 1e3:.3f} ms "
                      f"| {1 / st['median']:,.0f} | {st['median'] / base:.2f}x |")


if __name__ == "__main__":
    report(sys.argv[1])
