"""Field-level encryption against whole-payload encryption, side by side in one run.

Run::

    .venv/bin/pytest benchmarks/bench_fields.py --benchmark-json=fields.json
    .venv/bin/python benchmarks/bench_fields.py fields.json   # the table of benchmarks/README.md

The 1,000-order payload of :mod:`payloads` (UUIDs, datetimes, Decimals, tuples) is
serialized and deserialized through, with one moto KMS key (data key cached, so no
request is timed):

* ``msgpack``: no encryption, for reference;
* ``kms``: ``msgpack+kms:KEY``, the whole payload encrypted;
* ``fields-3x1000``: ``msgpack+fields:kms=KEY;paths=[*].id,[*].amount,[*].sku``: three
  fields of every order (3,000 values, of three types) encrypted, the rest plain;
* ``fields-3``: ``msgpack+fields:kms=KEY;paths=[0].sku,[500].amount,[999].id``: three
  fields of the payload.

Sizes are the checkpoint string's length in characters. ``test_interleaved`` times a
spec and ``kms`` in turns (each round both, the order alternating), so their ratio is
taken under the same load: on a shared machine that is the figure to read.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from aws_durable_execution_sdk_python.serdes import SerDesContext
from payloads import orders
from servers import moto_server  # noqa: F401 - the fixture

import durable_ext

CTX = SerDesContext(
    "0" * 64, "arn:aws:lambda:us-east-1:123456789012:function:bench:$LATEST/durable-execution/b/i"
)
SPECS = {
    "msgpack": "msgpack",
    "kms": "msgpack+kms:{key}",
    "fields-3x1000": "msgpack+fields:kms={key};paths=[*].id,[*].amount,[*].sku",
    "fields-3": "msgpack+fields:kms={key};paths=[0].sku,[500].amount,[999].id",
}
VALUE = orders(1000)


@pytest.fixture(scope="module")
def serdes(moto_server: Any) -> dict[str, Any]:  # noqa: F811
    kms = moto_server.client("kms")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    out = {}
    for name, spec in SPECS.items():
        stage = "fields" if "fields" in spec else "kms"
        options = {stage: {"client": kms}} if "{key}" in spec else None
        out[name] = durable_ext.serdes(spec.format(key=key), options=options)
    return out


@pytest.mark.parametrize("op", ["encode", "decode"])
@pytest.mark.parametrize("impl", list(SPECS))
def test_orders(benchmark: Any, serdes: dict[str, Any], impl: str, op: str) -> None:
    s = serdes[impl]
    text = s.serialize(VALUE, CTX)
    assert s.deserialize(text, CTX) == VALUE
    benchmark.group = f"fields orders_1000 {op}"
    benchmark.extra_info.update(kind="fields", impl=impl, op=op, chars=len(text))
    if op == "encode":
        benchmark(s.serialize, VALUE, CTX)
    else:
        benchmark(s.deserialize, text, CTX)


@pytest.mark.parametrize("op", ["encode", "decode"])
@pytest.mark.parametrize("impl", ["fields-3x1000", "fields-3"])
def test_interleaved(benchmark: Any, serdes: dict[str, Any], impl: str, op: str) -> None:
    """``impl`` and ``kms`` timed in turns, each round both: ratios under the same load."""
    pair = {name: serdes[name] for name in ("kms", impl)}
    texts = {name: s.serialize(VALUE, CTX) for name, s in pair.items()}
    calls = {name: ((lambda s=s: s.serialize(VALUE, CTX)) if op == "encode"
                    else (lambda s=s, t=texts[name]: s.deserialize(t, CTX)))
             for name, s in pair.items()}
    times: dict[str, list[float]] = {name: [] for name in pair}
    turn = [0]

    def one_round() -> None:
        order = ("kms", impl) if turn[0] % 2 == 0 else (impl, "kms")
        turn[0] += 1
        for name in order:
            t0 = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - t0)

    benchmark.group = f"fields interleaved {op}"
    benchmark.pedantic(one_round, rounds=150, iterations=1, warmup_rounds=5)
    ratios = sorted(f / k for f, k in zip(times[impl], times["kms"], strict=True))
    n = len(ratios)
    benchmark.extra_info.update(
        kind="fields-interleaved", impl=impl, op=op, rounds=n,
        ratio_p25=ratios[n // 4], ratio_median=ratios[n // 2], ratio_p75=ratios[3 * n // 4],
        kms_min=min(times["kms"]), impl_min=min(times[impl]),
        chars=len(texts[impl]), kms_chars=len(texts["kms"]))


def report(path: str) -> None:
    """Print the table of benchmarks/README.md from a pytest-benchmark JSON file.

    Times are the minimum and the median of the rounds; ratios are against ``kms`` for
    the same statistic. On a shared machine the minimum is the figure least disturbed by
    other load, so the goal is read on it.
    """
    with open(path) as fh:
        rows = [(b["extra_info"], b["stats"]) for b in json.load(fh)["benchmarks"]
                if b["extra_info"].get("kind") == "fields"]
    by = {(i["impl"], i["op"]): (s["min"], s["median"], i["chars"]) for i, s in rows}
    print("| spec | encode min | vs kms | encode median | vs kms | decode min | vs kms "
          "| decode median | vs kms | chars | vs kms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for impl in SPECS:
        if (impl, "encode") not in by or ("kms", "encode") not in by:
            continue
        cells = []
        for op in ("encode", "decode"):
            lo, med, _ = by[(impl, op)]
            klo, kmed, _ = by[("kms", op)]
            cells += [f"{lo * 1e3:.2f} ms", f"{lo / klo:.2f}x",
                      f"{med * 1e3:.2f} ms", f"{med / kmed:.2f}x"]
        chars, kchars = by[(impl, "encode")][2], by[("kms", "encode")][2]
        print(f"| {impl} | " + " | ".join(cells) + f" | {chars:,} | {chars / kchars:.2f}x |")


def report_interleaved(path: str) -> None:
    """Print the interleaved table: per-round ratios of each spec to ``kms``."""
    with open(path) as fh:
        rows = [b["extra_info"] for b in json.load(fh)["benchmarks"]
                if b["extra_info"].get("kind") == "fields-interleaved"]
    print("| spec | op | rounds | ratio to kms: p25 | median | p75 | min vs min | chars vs kms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for i in rows:
        print(f"| {i['impl']} | {i['op']} | {i['rounds']} | {i['ratio_p25']:.2f}x | "
              f"{i['ratio_median']:.2f}x | {i['ratio_p75']:.2f}x | "
              f"{i['impl_min'] / i['kms_min']:.2f}x | {i['chars'] / i['kms_chars']:.2f}x |")


if __name__ == "__main__":
    report(sys.argv[1])
    print()
    report_interleaved(sys.argv[1])
