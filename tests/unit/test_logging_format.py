"""The JSON formatter: one parseable line per record, durable fields first-class."""

from __future__ import annotations

import json
import logging
import sys

from durable_ext.log_format import JsonFormatter


def record(msg: object = "hello %s", args: tuple[object, ...] | None = ("you",), **extra: object
           ) -> logging.LogRecord:
    rec = logging.LogRecord("app.orders", logging.WARNING, "/src/orders.py", 12, msg, args, None,
                            func="charge")
    rec.__dict__.update(extra)
    return rec


def test_basic_shape() -> None:
    out = json.loads(JsonFormatter().format(record()))
    assert out["message"] == "hello you" and out["level"] == "WARNING"
    assert out["logger"] == "app.orders" and out["location"] == "orders.charge:12"
    stamp = out["timestamp"]
    assert stamp.endswith("Z") and len(stamp) == len("2025-01-01T00:00:00.000Z")
    assert "executionArn" not in out and "exception" not in out


def test_durable_fields_request_id_and_extras() -> None:
    rec = record(executionArn="arn:e", operationId="op", operationName="charge", attempt=2,
                 replayed=False, aws_request_id="req-1", amount=3, when=object(),
                 _durable_ext=None)
    out = json.loads(JsonFormatter(static={"service": "svc"}, drop=["when"]).format(rec))
    assert {k: out[k] for k in ("executionArn", "operationId", "operationName", "attempt",
                                "replayed", "requestId", "amount", "service")} == {
        "executionArn": "arn:e", "operationId": "op", "operationName": "charge", "attempt": 2,
        "replayed": False, "requestId": "req-1", "amount": 3, "service": "svc"}
    assert "when" not in out and "_durable_ext" not in out and "aws_request_id" not in out
    # keys Logs Insights sorts on come first
    assert list(out)[:4] == ["timestamp", "level", "logger", "message"]


def test_values_json_cannot_hold_are_written_as_text() -> None:
    out = json.loads(JsonFormatter().format(record(payload=b"raw")))
    assert out["payload"] == "b'raw'"


def test_exception_and_stack() -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        rec = record(msg="failed", args=None)
        rec.exc_info = sys.exc_info()
    rec.stack_info = "Stack (most recent call last):\n  File x"
    out = json.loads(JsonFormatter().format(rec))
    assert out["exceptionType"] == "ValueError"
    assert "ValueError: bad value" in out["exception"] and "Traceback" in out["exception"]
    assert out["stack"].startswith("Stack")


def test_bad_template_is_not_lost() -> None:
    out = json.loads(JsonFormatter().format(record(msg="%d items", args=("many",))))
    assert out["message"].startswith("%d items (format failed: TypeError")
    assert "'many'" in out["message"]


def test_one_line_even_with_newlines() -> None:
    line = JsonFormatter().format(record(msg="a\nb", args=None))
    assert "\n" not in line and json.loads(line)["message"] == "a\nb"


LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def test_one_line_for_every_character_a_line_splitter_breaks_at() -> None:
    for ch in LINE_BREAKS:
        # in the message, in an extra field's value and name, and in an exception
        try:
            raise ValueError(f"bad{ch}value")
        except ValueError:
            rec = record(msg=f"a{ch}b %s", args=(f"c{ch}d",), note=f"e{ch}f",
                         **{f"key{ch}": 1})
            rec.exc_info = sys.exc_info()
        line = JsonFormatter(static={"service": f"s{ch}"}).format(rec)
        assert line.splitlines() == [line], repr(ch)
        out = json.loads(line)
        assert out["message"] == f"a{ch}b c{ch}d" and out["note"] == f"e{ch}f"
        assert out[f"key{ch}"] == 1 and out["service"] == f"s{ch}"
        assert f"bad{ch}value" in out["exception"]


def test_other_text_is_written_as_is() -> None:
    line = JsonFormatter().format(record(msg="naïve café ✓ 日本 \u2027 \u202a", args=None))
    assert "naïve café ✓ 日本 \u2027 \u202a" in line  # not escaped: Logs Insights shows it
