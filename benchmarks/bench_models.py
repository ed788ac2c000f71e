"""Pydantic model round trips: the model format against the usual alternatives, in one run.

Run next to the msgpack benchmarks, in one run (CPU time: on a shared machine
wall-clock time mostly measures the neighbours)::

    .venv/bin/pytest benchmarks/bench_serdes.py benchmarks/bench_models.py \
        --benchmark-timer=time.process_time --benchmark-max-time=2 \
        --benchmark-json=models.json
    .venv/bin/python benchmarks/bench_models.py models.json   # the ratio table

Each case turns the same pydantic value into a checkpoint string and back into the
same pydantic value (equality is checked once, outside the timing). Cases:

* ``model``, ``model+zstd``: this package's model format (validated on decode);
* ``model-json``: the model format with the classes registered ``json=True`` (the
  field data is pydantic's own JSON inside the tagged msgpack extension);
* ``pydantic-json``: ``model_dump_json`` / ``model_validate_json``, pydantic's own Rust
  JSON path, the fastest thing a user could write by hand;
* ``sdk-default``: the SDK's default ``ExtendedTypeSerDes`` on ``model_dump()``, then
  ``model_validate`` (what a step returning a model needs without this package);
* ``msgpack-dump``: this package's msgpack format on ``model_dump()``, then
  ``model_validate`` (the same by hand, without the model format);
* ``pickle-signed``: the signed pickle format (no validation on decode).

Payloads: ``one`` (a single order) and ``batch`` (a model holding 1,000 orders, a
typical large step result): the records of ``bench_serdes.py``'s ``orders_1000``
family as models, so its plain-dict ``msgpack`` row is the same data without models.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

import payloads
import pytest
from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, SerDesContext
from pydantic import BaseModel

import durable_ext
from durable_ext.serializers.model_format import ModelRegistry

CTX = SerDesContext("op-bench", "arn:aws:lambda:us-east-1:1:function:f/durable-execution/e/i")


class Order(BaseModel):
    id: uuid.UUID
    placed_at: dt.datetime
    amount: Decimal
    sku: str
    qty: int
    status: Literal["new", "paid", "shipped"]  # the SDK's JSON has no Enum support
    dims: tuple[int, int]
    note: str | None = None


class Batch(BaseModel):
    orders: list[Order]


def make_orders(n: int) -> list[Order]:
    # The same records as bench_serdes.py's orders_1000 family, as models.
    return [Order(**record) for record in payloads.orders(n)]


PAYLOADS: dict[str, BaseModel] = {"one": make_orders(1)[0],
                                  "batch": Batch(orders=make_orders(1000))}
MODELS = ModelRegistry([Order, Batch])
JSON_MODELS = ModelRegistry()
JSON_MODELS.register(Order, json=True)
JSON_MODELS.register(Batch, json=True)
PIPELINES = {
    "model": durable_ext.serdes("model", types=MODELS),
    "model+zstd": durable_ext.serdes("model+zstd", types=MODELS),
    "model-json": durable_ext.serdes("model", types=JSON_MODELS),
    "msgpack": durable_ext.serdes("msgpack"),
    "pickle": durable_ext.serdes("pickle", options={"pickle": {"key": b"b" * 32}}),
}
SDK = ExtendedTypeSerDes()  # type: ignore[var-annotated]

RoundTrip = Callable[[BaseModel], tuple[str, BaseModel]]


def via_pipeline(name: str) -> RoundTrip:
    p = PIPELINES[name]

    def rt(value: BaseModel) -> tuple[str, BaseModel]:
        text = p.serialize(value, CTX)
        return text, p.deserialize(text, CTX)

    return rt


def via_pydantic_json(value: BaseModel) -> tuple[str, BaseModel]:
    text = value.model_dump_json()
    return text, type(value).model_validate_json(text)


def via_sdk_default(value: BaseModel) -> tuple[str, BaseModel]:
    text = SDK.serialize(value.model_dump(), CTX)
    return text, type(value).model_validate(SDK.deserialize(text, CTX))


def via_msgpack_dump(value: BaseModel) -> tuple[str, BaseModel]:
    p = PIPELINES["msgpack"]
    text = p.serialize(value.model_dump(), CTX)
    return text, type(value).model_validate(p.deserialize(text, CTX))


CASES: dict[str, RoundTrip] = {
    "model": via_pipeline("model"),
    "model+zstd": via_pipeline("model+zstd"),
    "model-json": via_pipeline("model-json"),
    "pydantic-json": via_pydantic_json,
    "sdk-default": via_sdk_default,
    "msgpack-dump": via_msgpack_dump,
    "pickle-signed": via_pipeline("pickle"),
}


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("case", list(CASES))
def test_round_trip(benchmark: Any, case: str, payload: str) -> None:
    value = PAYLOADS[payload]
    rt = CASES[case]
    text, back = rt(value)
    assert back == value and type(back) is type(value)
    benchmark.group = f"model round trip: {payload}"
    benchmark.extra_info["chars"] = len(text)
    benchmark(rt, value)


def ratio_table(path: str) -> str:
    """Render the Markdown ratio table of a benchmark JSON file.

    Ratios compare medians, as ``report.py`` does. Rows of ``bench_serdes.py`` in the
    same file add its plain-dict ``msgpack`` and ``sdk-extended`` round trips of the
    same 1,000 orders, for reference.
    """
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    rows: dict[str, dict[str, tuple[float, float, int]]] = {}
    for b in data["benchmarks"]:
        params, info, stats = b.get("params") or {}, b["extra_info"], b["stats"]
        timing = (stats["min"], stats["median"])
        if "case" in params:
            rows.setdefault(params["payload"], {})[params["case"]] = (*timing, info["chars"])
        elif info.get("family") == "orders_1000" and info.get("serializer") in DICT_REFERENCE:
            name = f"{info['serializer']} (dicts)"
            rows.setdefault("batch", {})[name] = (*timing, info["size"])
    out = ["| payload | case | min | median | checkpoint chars | time vs pydantic-json "
           "| speed-up vs sdk-default |", "|---|---|---:|---:|---:|---:|---:|"]
    for payload in sorted(rows):
        cases = rows[payload]
        json_t, sdk_t = cases["pydantic-json"][1], cases["sdk-default"][1]
        for case, (fastest, median, chars) in cases.items():
            out.append(f"| {payload} | {case} | {_fmt(fastest)} | {_fmt(median)} | {chars:,} "
                       f"| {median / json_t:.2f}x | {sdk_t / median:.1f}x |")
    return "\n".join(out)


DICT_REFERENCE = ("msgpack", "sdk-extended")


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} us"


if __name__ == "__main__":
    print(ratio_table(sys.argv[1]))
