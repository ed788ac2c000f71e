"""`durable-ext bench`: the user's sample, every spec measured, ratios to the SDK."""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, SerDesContext

from durable_ext import bench

FAST = ["--budget", "0.005"]


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = bench.main([*argv, "--json", *FAST])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "orders.json"
    path.write_text(json.dumps({"orders": [{"id": i, "sku": f"s-{i}", "qty": i % 4}
                                           for i in range(200)]}))
    return path


def test_table_lists_baselines_and_default_specs(sample: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main([str(sample), *FAST]) == 0
    out = capsys.readouterr().out
    for spec in ("sdk-extended", "sdk-json", *bench.DEFAULT_SPECS):
        assert f"│ {spec} " in out, spec
    assert "1.00x" in out and "ratios are to the SDK's default" in out


def test_json_results_match_an_independent_measurement(sample: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json([str(sample), "--spec", "msgpack", "--spec", "msgpack+zlib:9"], capsys)
    assert code == 0
    rows = {r["spec"]: r for r in doc["results"]}
    assert doc["baseline"] == "sdk-extended" and next(iter(rows)) == "sdk-extended"
    value = json.loads(sample.read_text())
    sdk_text = ExtendedTypeSerDes().serialize(value, SerDesContext("op", "arn"))
    assert rows["sdk-extended"]["size"] == len(sdk_text)
    assert set(rows) == {"sdk-extended", "sdk-json", "msgpack", "msgpack+zlib:9"}
    for row in rows.values():
        assert row["error"] is None and row["round_trip"] is True
        assert row["serialize_s"] > 0 and row["deserialize_s"] > 0
        assert row["size_ratio"] == pytest.approx(row["size"] / len(sdk_text))
    # this sample compresses well: zlib is smaller than plain msgpack
    assert rows["msgpack+zlib:9"]["size"] < rows["msgpack"]["size"]


def test_expression_with_rich_types(capsys: pytest.CaptureFixture[str]) -> None:
    expr = ("[{'id': UUID(int=i), 'at': datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC), "
            "'amount': Decimal('1.50')} for i in range(50)]")
    code, doc = run_json(["--expr", expr, "--spec", "msgpack"], capsys)
    assert code == 0
    specs = [r["spec"] for r in doc["results"]]
    assert specs == ["sdk-extended", "msgpack"]  # sdk-json cannot carry these types
    assert all(r["round_trip"] for r in doc["results"])


def test_pickle_sample_and_a_value_the_sdk_cannot_carry(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sample.pkl"
    path.write_bytes(pickle.dumps({"tags": {"a", "b"}}))
    code, doc = run_json([str(path), "--spec", "msgpack"], capsys)
    rows = {r["spec"]: r for r in doc["results"]}
    assert "cannot serialize this value" in rows["sdk-extended"]["error"]
    assert rows["msgpack"]["round_trip"] is True and rows["msgpack"]["size_ratio"] is None
    assert code == 0  # the baseline failing is a finding, not a failed request

    other = tmp_path / "sample.bin"
    other.write_bytes(path.read_bytes())
    code, doc = run_json([str(other), "--as", "pickle", "--spec", "msgpack"], capsys)
    assert doc["results"][1]["round_trip"] is True


def test_oversized_payload_is_flagged(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--expr", "'x' * 300_000", "--spec", "msgpack+zlib", *FAST]) == 0
    out = capsys.readouterr().out
    assert "needs a spec ending in an offload" in out
    line = next(x for x in out.splitlines() if "│ msgpack+zlib " in x)
    assert "│ yes  │" in line
    sdk_line = next(x for x in out.splitlines() if "│ sdk-extended " in x)
    assert "│ no   │" in sdk_line


def test_a_spec_that_cannot_run_is_reported_with_its_reason(
        sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main([str(sample), "--spec", "msgpak", "--spec", "msgpack", *FAST]) == 1
    out = capsys.readouterr().out
    assert "failed [1]" in out
    assert "[1] msgpak: cannot build: unknown serializer 'msgpak'" in out
    assert "Did you mean 'msgpack'" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["missing.json"], "sample file not found: missing.json"),
    ([], "give exactly one sample"),
    (["x.json", "--expr", "1"], "give exactly one sample"),
    (["--expr", "1/0"], "--expr failed: ZeroDivisionError"),
    (["--expr", "1", "--budget", "0"], "--budget must be > 0"),
])
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_json_says_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"a": 1,\n  oops}')
    assert bench.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON at line 2 column 3" in err and str(path) in err


def test_register_adds_the_subcommand(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="durable-ext")
    sub = parser.add_subparsers(dest="command", required=True)
    bench.register(sub)
    args = parser.parse_args(["bench", str(sample), "--spec", "json", "--json", *FAST])
    assert args.command == "bench"
    assert args.func(args) == 0
    assert [r["spec"] for r in json.loads(capsys.readouterr().out)["results"]][-1] == "json"


def test_plain_text_table_without_rich(sample: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    monkeypatch.setitem(sys.modules, "rich.table", None)
    assert bench.main([str(sample), "--spec", "msgpack", *FAST]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["spec", "size"]
    assert lines[2].startswith("sdk-extended") and "1.00x" in lines[2]
    assert "│" not in "".join(lines)


def test_round_trip_that_changes_the_value_is_reported() -> None:
    row = bench.measure((1, 2), "sdk-json", budget_s=0.001)
    assert row.round_trip is False and row.error is None  # JSON turns the tuple into a list


def test_missing_library_skips_a_default_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    from durable_ext.registry import SERIALIZERS

    monkeypatch.setitem(sys.modules, "msgpack", None)
    monkeypatch.delitem(sys.modules, "durable_ext.serializers.msgpack_format", raising=False)
    monkeypatch.setattr(SERIALIZERS, "_loaded", {})
    monkeypatch.setattr(bench, "DEFAULT_SPECS", ("json", "msgpack+zlib"))
    rows, notes = bench.run_bench({"a": 1}, budget_s=0.001)
    assert [r.spec for r in rows] == ["sdk-extended", "sdk-json", "json"]
    assert notes == ["skipped 'msgpack+zlib': its library is not installed"]


def test_sdk_serializers_can_be_named_and_are_measured_once(
        sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json([str(sample), "--spec", "sdk-json", "--spec", "msgpack"], capsys)
    assert code == 0
    assert [r["spec"] for r in doc["results"]] == ["sdk-extended", "sdk-json", "msgpack"]


def test_through_the_durable_ext_command(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from durable_ext import cli

    assert cli.main(["bench", str(sample), "--spec", "msgpack", "--json", *FAST]) == 0
    assert [r["spec"] for r in json.loads(capsys.readouterr().out)["results"]] == [
        "sdk-extended", "sdk-json", "msgpack"]
    assert cli.main(["bench", "no-such-file.json"]) == 2
