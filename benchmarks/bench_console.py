"""The console's pages: how long the server takes to answer them, on big stores.

* ``list-10000-rows``: the executions list template with 10,000 rows on one page;
* ``list-page``: ``GET /?size=1000``, the first 1,000 of a store of 10,000 executions;
* ``list-filtered``: ``GET /?name=...``, which scans all 10,000 to find one;
* ``execution-5000``: ``GET /execution?arn=...`` of an execution of 5,001 operations
  (2,500 steps, a map of 1,250 items of one step each): history, timeline, 5,000
  payloads decoded, page rendered.

All through the guarded ASGI app (Starlette's test client), on a memory store::

    pytest benchmarks/bench_console.py
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import StepConfig
from starlette.testclient import TestClient

import durable_ext
from durable_ext.console.app import ConsoleSettings, _environment
from durable_ext.console.server import guarded_console
from durable_ext.console.views import ListQuery, list_view
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.readable import Decoder

EXECUTIONS = 10_000
PACKED = durable_ext.serdes("msgpack")


@durable_execution
def wide(event: Any, ctx: DurableContext) -> int:
    for i in range(2500):
        ctx.step(lambda _, i=i: {"i": i, "label": f"item-{i}"}, name=f"step-{i}",
                 config=StepConfig(serdes=PACKED))
    ctx.map(list(range(1250)), lambda c, x, _i, _all: c.step(lambda _: x * 2, name="double"),
            name="doubles")
    return 1


@durable_execution
def idle(event: Any, ctx: DurableContext) -> None:
    return None


@pytest.fixture(scope="module")
def console() -> Iterator[tuple[Runtime, TestClient, str]]:
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("wide", wide)
        arn = rt.start("wide", None, name="wide")
        rt.settle(arn, 600)
        assert rt.describe(arn)["Status"] == "SUCCEEDED"
        rt.register("many", idle)
        for i in range(EXECUTIONS):  # started, never run: the list only reads them
            rt.start("many", None, name=f"x-{i}")
        app = guarded_console(rt, ConsoleSettings(decoder=Decoder()))
        with TestClient(app, base_url="http://127.0.0.1") as client:
            yield rt, client, arn


def test_list_template_with_10000_rows(benchmark: Any, console: tuple[Any, ...]) -> None:
    rt, _, _ = console
    view = list_view(rt, ListQuery(function="many", page_size=1000))
    rows = []
    marker = None
    for _ in range(EXECUTIONS // 1000):
        page = list_view(rt, ListQuery(function="many", page_size=1000, marker=marker))
        rows.extend(page.rows)
        marker = page.next_marker
    everything = type(view)(view.query, tuple(rows), None, view.functions)
    template = _environment().get_template("rows_fragment.html")
    template.globals.update(url=lambda path, params=(): path)
    html = benchmark(template.render, view=everything, query=view.query)
    assert html.count("<tr>") == EXECUTIONS


def test_list_page_of_1000_from_10000(benchmark: Any, console: tuple[Any, ...]) -> None:
    _, client, _ = console
    response = benchmark(client.get, "/", params={"size": "1000"})
    assert response.status_code == 200 and response.text.count("<tr>") == 1000 + 1  # and the header


def test_list_filtered_by_name_scans_10000(benchmark: Any, console: tuple[Any, ...]) -> None:
    _, client, _ = console
    response = benchmark(client.get, "/", params={"name": "x-17"})
    assert response.status_code == 200 and response.text.count("<tr>") == 1 + 1  # and the header


def test_execution_of_5000_operations(benchmark: Any, console: tuple[Any, ...]) -> None:
    _, client, arn = console
    response = benchmark.pedantic(client.get, args=(f"/execution?arn={quote(arn, safe='')}",),
                                  rounds=5, iterations=1, warmup_rounds=1)
    assert response.status_code == 200
    assert response.text.count('<li class="op') == 5001
