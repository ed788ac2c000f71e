"""The console over ``lambda://``: executions that a Lambda API (``durable-ext serve``) runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import console_handlers as handlers
import pytest
from chromium import WAIT_MS, screenshot

from durable_ext.console.app import ConsoleSettings
from durable_ext.console.server import ConsoleServer, guarded_console
from durable_ext.http import LocalService, ServerThread
from durable_ext.runtime import open_control_plane
from durable_ext.runtime.control import ControlPlane
from durable_ext.serializers.readable import Decoder

expect = pytest.importorskip("playwright.sync_api",
                             reason="playwright is in the test extra").expect
HERE = Path(__file__).resolve().parent
READY_SECONDS = 30


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)


def waiting_for_callback(plane: ControlPlane, arn: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not any(e["EventType"] == "CallbackStarted" for e in plane.history(arn)["Events"]):
        assert time.monotonic() < deadline, "the execution never reached its callback"
        time.sleep(0.05)


@pytest.fixture
def lambda_api(aws_env: None) -> Iterator[str]:
    service = LocalService("memory://", virtual_time=True)
    service.register("approval", handlers.approval)
    with ServerThread(service) as server:
        yield f"lambda://approval?region=us-east-1&endpoint_url={server.url}"


def test_the_console_reads_and_completes_executions_through_lambda(
        lambda_api: str, page: Any) -> None:
    with open_control_plane(lambda_api) as plane:
        arn = plane.start(None, {"order_id": "o-lambda"}, name="through-lambda")
        waiting_for_callback(plane, arn)
        # Lambda runs its executions itself: the console only asks (no on_change).
        app = guarded_console(plane, ConsoleSettings(decoder=Decoder(), refresh_seconds=0.3))
        with ConsoleServer(app) as console:
            page.goto(console.url + "/")
            page.get_by_role("link", name="through-lambda").click()
            ops = page.locator("li.op .op-name .name")
            expect(ops.last).to_have_text("manager-approval")
            load = page.locator("li.op").filter(has_text="load-order")
            load.locator("summary").click()
            expect(load.locator(".op-detail")).to_contain_text("msgpack+zstd")
            page.get_by_label("Payload for manager-approval", exact=False).fill(
                '{"approved": true}')
            page.get_by_role("button", name="Send success").click()
            expect(page.locator("#execution h1 .status")).to_have_text("SUCCEEDED",
                                                                       timeout=WAIT_MS)
        assert json.loads(plane.describe(arn)["Result"])["approved"] is True


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(aws_env: None) -> Iterator[int]:
    """``durable-ext serve --console`` as a user runs it, in a process of its own."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DURABLE_EXT_BACKEND")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "durable_ext.cli", "serve", "--console", "--backend", "memory://",
         "--virtual-time", "--isolation", "inline", "--port", str(port),
         "--handlers", "approval=console_handlers:approval"],
        cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_durable_ext/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "durable-ext serve did not come up"
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_console_shows_the_api_s_executions_under_console(served: int, page: Any) -> None:
    url = f"lambda://approval?region=us-east-1&endpoint_url=http://127.0.0.1:{served}"
    with open_control_plane(url) as plane:
        arn = plane.start(None, {"order_id": "o-served"}, name="served-order")
        waiting_for_callback(plane, arn)
        page.goto(f"http://127.0.0.1:{served}/console/")
        page.get_by_role("link", name="served-order").click()
        expect(page.locator("li.op").filter(has_text="charge")).to_contain_text("2 attempts")
        page.get_by_role("button", name="Pause").click()
        expect(page.locator("#execution h1 .status")).to_have_text("PAUSED", timeout=WAIT_MS)
        screenshot(page, "paused")
        page.get_by_role("button", name="Resume").click()
        expect(page.locator("#execution h1 .status")).to_have_text("RUNNING", timeout=WAIT_MS)
        page.get_by_label("Payload for manager-approval", exact=False).fill('{"approved": 1}')
        page.get_by_role("button", name="Send success").click()
        expect(page.locator("#execution h1 .status")).to_have_text("SUCCEEDED",
                                                                   timeout=WAIT_MS)
        assert plane.describe(arn)["Status"] == "SUCCEEDED"
