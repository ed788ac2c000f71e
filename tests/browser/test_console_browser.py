"""The console in a real browser: list, filter, timeline, payloads, actions, live updates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import console_handlers as handlers
import pytest
from chromium import WAIT_MS, screenshot

from durable_ext.console.app import ConsoleSettings, Settler
from durable_ext.console.server import ConsoleServer, guarded_console
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.readable import Decoder

expect = pytest.importorskip("playwright.sync_api",
                             reason="playwright is in the test extra").expect


@dataclass
class Console:
    rt: Runtime
    url: str

    def start(self, function: str, payload: Any, name: str) -> str:
        arn = self.rt.start(function, payload, name=name)
        self.rt.run_until_idle(timeout=30)
        return arn

    def page_of(self, arn: str) -> str:
        return f"{self.url}/execution?arn={quote(arn, safe='')}"


@pytest.fixture
def console() -> Iterator[Console]:
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("approval", handlers.approval)
        rt.register("quick", handlers.quick)
        settler = Settler(rt, timeout=30)
        app = guarded_console(rt, ConsoleSettings(decoder=Decoder(), on_change=settler,
                                                  refresh_seconds=0.3))
        try:
            with ConsoleServer(app) as server:
                yield Console(rt, server.url)
        finally:
            settler.close()


def status_of(page: Any) -> Any:
    return page.locator("#execution h1 .status")


def assert_every_control_is_labelled(page: Any) -> None:
    controls = page.locator("input:not([type=hidden]), select, textarea")
    assert controls.count() > 0
    unlabelled = controls.evaluate_all(
        "cs => cs.filter(c => c.labels.length === 0).map(c => c.outerHTML)")
    assert unlabelled == []


def test_the_list_shows_and_filters_executions(console: Console, page: Any) -> None:
    for i in range(3):
        console.start("quick", {"i": i}, f"quick-{i}")
    console.start("approval", {"order_id": "o-1"}, "order-1")
    page.goto(console.url + "/")
    rows = page.locator("#executions-body tr")
    expect(rows).to_have_count(4)
    first = rows.nth(0).locator("td")
    expect(first.nth(0)).to_have_text("order-1")  # newest first
    expect(first.nth(1)).to_have_text("approval")
    expect(first.nth(2)).to_have_text("RUNNING")
    expect(first.nth(3)).to_contain_text("UTC")
    assert_every_control_is_labelled(page)
    screenshot(page, "list")

    page.get_by_label("SUCCEEDED").check()
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(3)
    expect(page.locator("#executions-body")).not_to_contain_text("order-1")
    page.get_by_label("Name").fill("quick-1")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("quick-1")
    page.get_by_label("Name").fill("")
    page.get_by_label("SUCCEEDED").uncheck()
    page.get_by_label("Function").fill("approval")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(1)
    page.get_by_label("Started before (UTC)").fill("2001-01-01T00:00")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows.first).to_contain_text("No executions match these filters")


def test_paging_and_live_refresh_of_the_list(console: Console, page: Any) -> None:
    for i in range(30):
        console.start("quick", None, f"page-{i:02d}")
    page.goto(console.url + "/?size=25")
    names = page.locator("#executions-body tr td:first-child")
    expect(names).to_have_count(25)
    seen = set(names.all_inner_texts())
    page.get_by_role("link", name="Next page").click()
    expect(names).to_have_count(5)
    seen |= set(names.all_inner_texts())
    assert seen == {f"page-{i:02d}" for i in range(30)}
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    page.goto(console.url + "/")
    console.start("quick", None, "arrived-later")  # shows up without reloading
    expect(page.locator("#executions-body tr")).to_have_count(31, timeout=WAIT_MS)
    expect(page.locator("#executions-body")).to_contain_text("arrived-later")
    expect(page.locator("#list-updated")).to_contain_text("updated")


def test_an_execution_shows_its_timeline_and_decoded_msgpack_zstd_payloads(
        console: Console, page: Any) -> None:
    arn = console.start("approval", {"order_id": "o-7"}, "order-7")
    page.goto(console.url + "/")
    page.get_by_role("link", name="order-7").click()
    expect(status_of(page)).to_have_text("RUNNING")
    ops = page.locator("li.op")
    names = [n.strip() for n in ops.locator(".op-name .name").all_inner_texts()]
    assert names == ["load-order", "price-lines", "map-item-0", "price", "map-item-1", "price",
                     "charge", "cool-off", "manager-approval"]
    expect(page.locator("li.op.d1")).to_have_count(2)  # map items inside the map
    expect(page.locator("li.op.d2")).to_have_count(2)  # their steps inside them
    charge = ops.filter(has_text="charge")
    expect(charge.locator(".op-line")).to_contain_text("2 attempts")
    kinds = charge.locator("svg.bars rect").evaluate_all("rs => rs.map(r => r.classList[1])")
    assert kinds == ["attempt", "retry", "attempt"]
    # the chart's text alternative (and its tooltip)
    expect(charge.locator("svg.bars title")).to_have_text(
        "attempt 1 FAILED; retry in 2 s SUCCEEDED; attempt 2 SUCCEEDED")
    page.locator("#h-timeline").evaluate("e => e.scrollIntoView()")
    screenshot(page, "timeline")
    load = ops.filter(has_text="load-order")
    load.locator("summary").click()
    detail = load.locator(".op-detail")
    expect(detail).to_contain_text("msgpack+zstd")
    expect(detail.locator("pre")).to_contain_text('"order_id": "o-7"')
    expect(detail.locator("pre")).to_contain_text("keep this order")
    expect(page.locator(".callbacks")).to_contain_text("manager-approval")
    assert_every_control_is_labelled(page)
    expect(page.locator(".cost")).to_contain_text("Durable operations")
    load.evaluate("e => e.scrollIntoView()")
    screenshot(page, "payload")
    page.get_by_role("link", name=re.compile(r"\d+ history events")).click()
    expect(page.locator("ol.events li").first).to_contain_text('"EventType": "ExecutionStarted"')
    page.get_by_role("link", name="execution", exact=True).click()
    expect(page.locator("#execution code.arn").first).to_have_text(arn)


def test_completing_a_callback_from_the_page_finishes_the_execution(
        console: Console, page: Any) -> None:
    arn = console.start("approval", {"order_id": "o-8"}, "order-8")
    page.goto(console.page_of(arn))
    page.get_by_label(re.compile("Payload for manager-approval")).fill('{"approved": true}')
    page.get_by_role("button", name="Send success").click()
    expect(page.locator("#action-status")).to_have_text("callback succeeded")
    expect(status_of(page)).to_have_text("SUCCEEDED", timeout=WAIT_MS)  # live update
    expect(page.locator(".io")).to_contain_text('"approved": true')
    expect(page.locator(".callbacks")).to_have_count(0)
    screenshot(page, "succeeded")
    assert console.rt.describe(arn)["Status"] == "SUCCEEDED"


def test_stop_from_the_page(console: Console, page: Any) -> None:
    arn = console.start("approval", {}, "to-stop")
    page.goto(console.page_of(arn))
    page.get_by_role("button", name="Stop").click()
    expect(status_of(page)).to_have_text("STOPPED")
    assert console.rt.describe(arn)["Status"] == "STOPPED"
    page.get_by_role("button", name="Delete").click()  # offered once it has ended
    page.wait_for_url(console.url + "/")
    expect(page.locator("#executions-body")).not_to_contain_text("to-stop")


def test_pause_and_resume_from_the_page(console: Console, page: Any) -> None:
    arn = console.start("approval", {}, "to-pause")
    page.goto(console.page_of(arn))
    page.get_by_role("button", name="Pause").click()
    expect(status_of(page)).to_have_text(re.compile("PAUSING|PAUSED"))
    assert console.rt.describe(arn)["Status"] in ("PAUSING", "PAUSED")
    page.get_by_role("button", name="Resume").click()
    expect(status_of(page)).to_have_text("RUNNING")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()


def test_rerun_starts_a_new_execution_with_the_same_input(console: Console, page: Any) -> None:
    arn = console.start("quick", {"same": ["input"]}, "original")
    page.goto(console.page_of(arn))
    page.get_by_role("button", name="Re-run with the same input").click()
    expect(page.locator("#execution h1")).to_contain_text("original-rerun-")
    expect(status_of(page)).to_have_text("SUCCEEDED")
    expect(page.locator(".io")).to_contain_text('"same"')


def test_hostile_payloads_are_shown_as_text_and_run_nothing(console: Console, page: Any) -> None:
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    arn = console.start("quick", {"x": evil}, "hostile")
    page.goto(console.page_of(arn))
    expect(page.locator(".io pre").first).to_contain_text("<script>alert(1)</script>")
    assert page.locator(".io img").count() == 0
    # the page fixture fails the test on any dialog or script error

