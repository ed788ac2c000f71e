"""Serializer round trips, side by side: the SDK's serializers, ours, and the floor.

Run: ``pytest benchmarks/bench_serdes.py --benchmark-json=serdes.json`` then
``python benchmarks/report.py serdes.json`` for the ratio table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import floor
import pytest
from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, JsonSerDes, SerDesContext
from payloads import FAMILIES, JSON_FAMILIES

import durable_ext

CTX = SerDesContext(
    "0" * 64, "arn:aws:lambda:us-east-1:123456789012:function:bench:$LATEST/durable-execution/b/i"
)


def _sdk(serdes: Any) -> tuple[Callable[[Any], str], Callable[[str], Any]]:
    return (lambda v: serdes.serialize(v, CTX)), (lambda s: serdes.deserialize(s, CTX))


SERIALIZERS: dict[str, tuple[Callable[[Any], str], Callable[[str], Any]]] = {
    "sdk-json": _sdk(JsonSerDes()),
    "sdk-extended": _sdk(ExtendedTypeSerDes()),
    "msgpack": _sdk(durable_ext.serdes("msgpack")),
    "msgpack+zstd": _sdk(durable_ext.serdes("msgpack+zstd")),
    "floor": (floor.serialize, floor.deserialize),
}
CASES = [
    (family, name)
    for family in FAMILIES
    for name in SERIALIZERS
    if name != "sdk-json" or family in JSON_FAMILIES
]


# Rows are measured one after another, so a burst of load on a shared machine lands on
# one side of a ratio; three seconds a row make the median outlast such bursts.
@pytest.mark.benchmark(max_time=3.0)
@pytest.mark.parametrize(("family", "serializer"), CASES)
def test_round_trip(benchmark, family: str, serializer: str) -> None:
    value = FAMILIES[family]()
    ser, de = SERIALIZERS[serializer]
    text = ser(value)
    assert de(text) == value
    benchmark.group = family
    benchmark.extra_info.update(family=family, serializer=serializer, size=len(text))
    benchmark(lambda: de(ser(value)))
