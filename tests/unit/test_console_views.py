"""The console's views: query parsing, payload display, list and execution pages' data."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration, StepConfig

import durable_ext
from durable_ext.console.views import (
    ListQuery,
    execution_view,
    list_view,
    operation_detail,
    payload_view,
    seconds_text,
)
from durable_ext.errors import InvalidParameterValueError, NotFoundError
from durable_ext.runtime import Runtime, VirtualClock
from durable_ext.serializers.base import SerDesContext
from durable_ext.serializers.readable import Decoder

PACKED = durable_ext.serdes("msgpack+zstd")


def parse(**params: Any) -> ListQuery:
    def get(key: str) -> str | None:
        value = params.get(key)
        return value[0] if isinstance(value, list) else value

    def get_all(key: str) -> list[str]:
        value = params.get(key)
        return value if isinstance(value, list) else ([value] if value else [])

    return ListQuery.parse(get, get_all)


def test_list_queries_parse_round_trip_and_refuse_what_no_form_sends() -> None:
    q = parse(status=["RUNNING", "FAILED"], name="o-1", after="2026-12-03T10:00", size="100")
    assert q.statuses == ("RUNNING", "FAILED") and q.name == "o-1" and q.page_size == 100
    assert q.started_after == dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC).timestamp()
    assert q.params(marker="m") == [("status", "RUNNING"), ("status", "FAILED"), ("name", "o-1"),
                                    ("after", "2026-12-03T10:00"), ("size", "100"),
                                    ("marker", "m")]
    assert q.filtered and not parse().filtered
    for bad in ({"status": "SLEEPING"}, {"size": "7"}, {"size": "-1"},
                {"after": "yesterday"}, {"name": "x" * 300}):
        with pytest.raises(InvalidParameterValueError):
            parse(**bad)


def test_durations_read_like_durations() -> None:
    assert [seconds_text(s) for s in (0.0123, 4.56, 185, 7300, 3 * 86400)] == [
        "12 ms", "4.6 s", "3 min 5 s", "2 h 1 min", "3 d 0 h"]


def test_payloads_show_decoded_values_or_what_they_are_when_closed() -> None:
    ctx = SerDesContext("op", "arn")
    shown = payload_view(Decoder(), PACKED.serialize({"a": list(range(400))}, ctx))
    assert shown is not None and shown.undecoded is None
    assert shown.encoding == "msgpack+zstd" and '"a": [' in shown.text and shown.cut is False
    key = {"localkey": {"key": b"k" * 32}}
    sealed = durable_ext.serdes("msgpack+localkey", options=key).serialize([1, 2], ctx)
    closed = payload_view(Decoder(), sealed)
    assert closed is not None and closed.undecoded is not None
    assert closed.undecoded.get("Encrypted") is True and "localkey" in closed.encoding
    assert closed.chars == len(sealed) and "Reason" in closed.undecoded
    long = payload_view(Decoder(), '"' + "x" * 10_000 + '"')
    assert long is not None and long.cut and len(long.text) == 4000
    assert payload_view(Decoder(), None) is None


@durable_execution
def waits_for_approval(event: Any, ctx: DurableContext) -> str:
    ctx.step(lambda _: {"big": "y" * 2000}, name="load", config=StepConfig(serdes=PACKED))
    ctx.create_callback(name="ok", config=CallbackConfig(timeout=Duration.from_hours(1))).result()
    return "done"


def test_views_of_a_runtime_list_and_lay_out_its_executions() -> None:
    with Runtime("memory://", clock=VirtualClock()) as rt:
        rt.register("approve", waits_for_approval)
        arn = rt.start("approve", {"n": 1}, name="first")
        rt.run_until_idle()
        page = list_view(rt, ListQuery())
        assert [(r.name, r.function, r.status) for r in page.rows] == [
            ("first", "approve", "RUNNING")]
        assert list_view(rt, ListQuery(statuses=("SUCCEEDED",))).rows == ()
        view = execution_view(rt, arn, Decoder())
        assert [o.row.name for o in view.operations] == ["load", "ok"]
        load = operation_detail(rt, arn, view.operations[0].row.id, Decoder())
        assert load.result is not None and load.result.encoding == "msgpack+zstd"
        assert '"big": "yyy' in load.result.text
        with pytest.raises(NotFoundError):
            operation_detail(rt, arn, "no-such-operation", Decoder())
        assert [o.row.name for o in view.waiting_callbacks] == ["ok"]
        assert view.cost.operations >= 3 and view.event_count >= 4
        assert view.input is not None and '"n": 1' in view.input.text
        assert view.rerun_function == "approve" and not view.ended
