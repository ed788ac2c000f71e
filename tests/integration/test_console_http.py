"""The console's HTTP surface: the API's guards, the token, security headers, action errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution

from durable_ext import cli
from durable_ext.console.app import COOKIE, ConsoleSettings
from durable_ext.console.server import ConsoleServer, guarded_console
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.readable import Decoder

TOKEN = "t" * 24


@durable_execution
def done(event: Any, ctx: DurableContext) -> str:
    return "ok"


@pytest.fixture
def setup() -> Iterator[tuple[Runtime, str]]:
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("done", done)
        arn = rt.start("done", {}, name="ended")
        rt.run_until_idle()
        yield rt, arn


def serve(rt: Runtime, **settings: Any) -> ConsoleServer:
    return ConsoleServer(guarded_console(rt, ConsoleSettings(decoder=Decoder(), **settings)))


def test_actions_pass_the_api_s_host_and_cross_site_guards(setup: tuple[Runtime, str]) -> None:
    rt, arn = setup
    with serve(rt) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        body = {"arn": arn}
        same = {"Origin": server.url}
        # a same-origin request reaches the action, which the ended execution refuses
        assert http.post("/api/pause", json=body, headers=same).status_code == 409
        evil = http.post("/api/delete", json=body, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403 and "may not change state" in evil.text
        form = http.post("/api/delete", content=b"arn=x",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 415
        rebound = http.get("/", headers={"Host": "attacker.example"})
        assert rebound.status_code == 403
        assert rt.describe(arn)["Status"] == "SUCCEEDED"  # nothing above touched it
        assert http.post("/api/delete", json=body, headers=same).json() == {
            "message": "deleted", "location": "/"}


def test_pages_carry_a_strict_content_security_policy(setup: tuple[Runtime, str]) -> None:
    rt, arn = setup
    with serve(rt) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        page = http.get("/execution", params={"arn": arn})
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script src=" in page.text and "<script>" not in page.text


def test_bad_requests_are_answered_with_their_reason(setup: tuple[Runtime, str]) -> None:
    rt, arn = setup
    with serve(rt) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/execution", params={"arn": "nope"}).status_code == 400
        missing = http.get("/execution", params={"arn": arn.replace("ended", "other")})
        assert missing.status_code == 404
        assert http.get("/", params={"status": "SLEEPING"}).status_code == 400
        assert http.post("/api/fly", json={}).status_code == 404
        assert http.post("/api/pause", json={"arn": arn}).status_code == 409
        bad = http.post("/api/callback", json={"callback_id": "x", "outcome": "maybe"})
        assert bad.status_code == 400 and "outcome" in bad.json()["message"]
        assert http.get("/static/../app.py").status_code == 404


def test_with_a_token_requests_need_the_cookie_the_token_url_sets(
        setup: tuple[Runtime, str]) -> None:
    rt, _ = setup
    with serve(rt, token=TOKEN) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/").status_code == 403
        assert http.get("/", params={"token": "w" * 24}).status_code == 403
        opened = http.get("/", params={"token": TOKEN, "size": "25"})
        assert opened.status_code == 303 and opened.headers["location"] == "/?size=25"
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        http.cookies.set(COOKIE, TOKEN)
        assert http.get("/").status_code == 200


def test_the_console_subcommand_refuses_a_remote_bind_without_being_asked(capsys: Any) -> None:
    assert cli.main(["console", "--backend", "memory://", "--host", "0.0.0.0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_serve_console_with_sigv4_asks_the_console_for_its_token_and_the_api_for_signatures(
        setup: tuple[Runtime, str], monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import argparse

    from durable_ext.http import LocalService, ServerThread
    from durable_ext.http.cli import _console
    from durable_ext.http.guard import GuardConfig
    from durable_ext.http.sigv4 import SigV4Verifier

    monkeypatch.setenv("DURABLE_EXT_CONSOLE_TOKEN", TOKEN)
    service = LocalService("memory://", virtual_time=True)
    service.register("done", done)
    guard = GuardConfig.build(auth=SigV4Verifier({"AKIDCONSOLETEST": "s" * 40}))
    wrap = _console(service, argparse.Namespace(codec=None, decode=None, host="127.0.0.1", port=0),
                    guard, None)
    assert f"/console/?token={TOKEN}" in capsys.readouterr().err
    with ServerThread(service, wrap=wrap, guard=guard) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/console/").status_code == 403  # no token yet
        assert http.get("/console/", params={"token": TOKEN}).status_code == 303
        http.cookies.set(COOKIE, TOKEN)
        assert http.get("/console/").status_code == 200
        assert http.get("/console/static/console.js").status_code == 200
        # the API beside it still wants signatures, the console's cookie notwithstanding
        unsigned = http.get("/2025-12-01/functions/done/durable-executions")
        assert unsigned.status_code == 403
        assert unsigned.headers["x-amzn-ErrorType"] in ("AccessDeniedException",
                                                        "MissingAuthenticationTokenException",
                                                        "IncompleteSignatureException")


def test_durable_ext_console_runs_a_file_store_s_execution_on_after_a_callback(
        tmp_path: Any) -> None:
    """The command as a user runs it: another process started the execution."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from servers import free_port

    root = Path(__file__).resolve().parents[2]
    store = f"file://{tmp_path / 'store'}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DURABLE_EXT_BACKEND")}
    cli_cmd = [sys.executable, "-m", "durable_ext.cli"]
    ran = subprocess.run([*cli_cmd, "run", "examples/order_workflow.py:handler", "--name", "o-1",
                          "--input", json.dumps({"order_id": "o-1"}),
                          "--virtual-time", "--backend", store, "--json"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 3, ran.stderr  # waiting for its approval callback
    callback_id = json.loads(ran.stdout)["WaitingCallbacks"][0][1]
    port = free_port()
    proc = subprocess.Popen([*cli_cmd, "console", "--backend", store, "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                try:
                    listing = http.get("/")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the console did not come up"
                    time.sleep(0.1)
            assert "o-1" in listing.text and "RUNNING" in listing.text
            arn = json.loads(ran.stdout)["DurableExecutionArn"]
            sent = http.post("/api/callback", headers={"Origin": url},
                             json={"arn": arn, "callback_id": callback_id, "outcome": "succeed",
                                   "payload": '{"approved": true}'})
            assert sent.status_code == 200, sent.text
            status = ""
            while status != "SUCCEEDED":  # the console runs it on, loading its handler
                assert time.monotonic() < deadline + 60, f"still {status}"
                status = http.get("/api/state", params={"arn": arn}).json()["status"]
                time.sleep(0.1)
            page = http.get("/execution", params={"arn": arn}).text
            assert "shipment-o-1" in page
    finally:
        proc.terminate()
        proc.wait(10)


def test_every_answer_refuses_frames_and_referers_and_the_token_redirect_is_not_cached(
        setup: tuple[Runtime, str]) -> None:
    rt, arn = setup
    with serve(rt, token=TOKEN) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        opened = http.get("/", params={"token": TOKEN})
        forbidden = http.get("/execution", params={"arn": arn})  # no cookie yet
        http.cookies.set(COOKIE, TOKEN)
        answers = [opened, forbidden, http.get("/"), http.get("/execution", params={"arn": arn}),
                   http.get("/execution", params={"arn": "nope"}),
                   http.get("/api/state", params={"arn": arn}),
                   http.post("/api/pause", json={"arn": arn})]
        for answer in answers:
            assert answer.headers["x-frame-options"] == "DENY", answer.url
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert answer.headers["referrer-policy"] == "no-referrer"
        assert opened.status_code == 303 and opened.headers["cache-control"] == "no-store"


@durable_execution
def chatty(event: Any, ctx: DurableContext) -> int:
    for i in range(int(event["steps"])):
        ctx.step(lambda _, i=i: "x" * int(event["chars"]) + str(i), name=f"step-{i}")
    return 0


def test_a_long_history_is_laid_out_in_part_and_its_pages_read_in_part(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from durable_ext.console import views

    monkeypatch.setattr(views, "MAX_EVENTS", 20)
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("chatty", chatty)
        arn = rt.start("chatty", {"steps": 30, "chars": 10}, name="long")
        rt.run_until_idle()
        total = len(rt.history(arn)["Events"])
        reads: list[int | None] = []
        history = rt.history

        def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
            reads.append(kwargs.get("max_items"))
            return history(*args, **kwargs)

        monkeypatch.setattr(rt, "history", counted)
        with serve(rt) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            page = http.get("/execution", params={"arn": arn})
            assert page.status_code == 200
            assert f"first 20 of {total} history events" in page.text
            assert page.text.count('<li class="op ') < 20
            assert None not in reads  # no whole-history read, for the page or its poll
            reads.clear()
            assert http.get("/history", params={"arn": arn, "event": "40"}).status_code == 200
            assert None not in reads


def test_the_history_page_cuts_long_payloads() -> None:
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("chatty", chatty)
        arn = rt.start("chatty", {"steps": 5, "chars": 200_000}, name="big")
        rt.run_until_idle()
        with serve(rt) as server, httpx.Client(base_url=server.url, timeout=10) as http:
            page = http.get("/history", params={"arn": arn})
            assert page.status_code == 200
            assert page.text.count("(cut: 20000") == 5
            assert len(page.text) < 200_000  # five payloads of 200,000 characters


_TRICKS = ["/console/../2025-12-01/functions/done/durable-executions",
           "/console/%2e%2e/2025-12-01/functions/done/durable-executions",
           "/console%2F..%2F2025-12-01/functions/done/durable-executions",
           "/console/.//2025-12-01/functions/done/durable-executions",
           "//console/../2025-12-01/functions/done/durable-executions",
           "/console\\..\\2025-12-01/functions/done/durable-executions"]


@pytest.mark.parametrize("path", _TRICKS)
def test_the_unsigned_console_prefix_skips_signatures_only_on_plain_paths(path: str) -> None:
    """A router that normalises dot segments behind the guard must not get them unsigned."""
    from http_raw import request
    from starlette.responses import PlainTextResponse

    from durable_ext.http.guard import GuardConfig, RequestGuard
    from durable_ext.http.sigv4 import SigV4Verifier

    async def normalising_app(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("reached")(scope, receive, send)

    guard = GuardConfig(auth=SigV4Verifier({"AKIDCONSOLETEST": "s" * 40}),
                        unsigned_prefixes=("/console",))
    with ConsoleServer(RequestGuard(normalising_app, guard)) as server:
        assert request(server.port, "GET", "/console/").body == b"reached"
        answer = request(server.port, "GET", path)
        assert answer.status == 403 and answer.body != b"reached"


def test_serve_console_with_sigv4_keeps_the_api_and_its_decoded_views_signed(
        monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import argparse

    from http_raw import request, segment

    from durable_ext.http import LocalService, ServerThread
    from durable_ext.http.cli import _console
    from durable_ext.http.guard import GuardConfig
    from durable_ext.http.sigv4 import SigV4Verifier

    monkeypatch.setenv("DURABLE_EXT_CONSOLE_TOKEN", TOKEN)
    service = LocalService("memory://", virtual_time=True)
    service.register("done", done)
    service.enable_decoded_views("msgpack")
    arn, _ = service.runtime.engine.start("done", "{}")
    guard = GuardConfig.build(auth=SigV4Verifier({"AKIDCONSOLETEST": "s" * 40}))
    wrap = _console(service, argparse.Namespace(codec=None, decode="msgpack", host="127.0.0.1",
                                                port=0), guard, None)
    capsys.readouterr()
    cookie = {"Cookie": f"{COOKIE}={TOKEN}"}
    with ServerThread(service, wrap=wrap, guard=guard) as server:
        history = f"/2025-12-01/durable-executions/{segment(arn)}/history"
        for path in [*_TRICKS, f"{history}?decoded=true", f"/console/..{history}?decoded=true"]:
            answer = request(server.port, "GET", path, headers=cookie)
            assert answer.status in (403, 404), (path, answer.status)
            assert b"Decoded" not in answer.body and b"DurableExecutions" not in answer.body
        decoded = request(server.port, "GET", f"{history}?decoded=true",
                          headers={"X-Durable-Ext-Decoded": "true", **cookie})
        assert decoded.status == 403
        # a page of another origin gets no CORS grant to read a decoded view
        evil = request(server.port, "GET", f"{history}?decoded=true",
                       headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in {k.lower() for k in evil.headers}


@durable_execution
def waits(event: Any, ctx: DurableContext) -> str:
    return str(ctx.create_callback(name="approval").result())


def test_a_callback_runs_on_the_execution_its_id_names_not_the_one_the_body_names(
        setup: tuple[Runtime, str]) -> None:
    rt, other = setup
    rt.register("waits", waits)
    arn = rt.start("waits", {}, name="waiting")
    rt.run_until_idle()
    [callback_id] = [e["CallbackStartedDetails"]["CallbackId"]
                     for e in rt.history(arn)["Events"] if "CallbackStartedDetails" in e]
    changed: list[str] = []
    with serve(rt, on_change=changed.append) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        answer = http.post("/api/callback", json={"callback_id": callback_id, "arn": other,
                                                  "outcome": "succeed", "payload": '"ok"'})
        assert answer.status_code == 200
    assert changed == [arn]
