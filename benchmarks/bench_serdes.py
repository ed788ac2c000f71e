"""Serializer round trips, side by side: the SDK's serializers, ours, and the floor.

Run: ``pytest benchmarks/bench_serdes.py --benchmark-json=serdes.json`` then
``python benchmarks/report.py serdes.json`` for the ratio table.
"""

from __future__ import annotations

import os
import shlex
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


#: seconds a row runs unless ``--benchmark-max-time`` says otherwise. Rows are measured one
#: after another, so a burst of load on a shared machine lands on one side of a ratio;
#: three seconds a row make the median outlast such bursts.
DEFAULT_MAX_TIME = 3.0


def _option_given(config: pytest.Config, flag: str) -> bool:
    args = [
        *config.invocation_params.args,
        *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
        *config.getini("addopts"),
    ]
    return any(a == flag or a.startswith(flag + "=") for a in map(str, args))


@pytest.fixture(autouse=True)
def _max_time(request: pytest.FixtureRequest) -> None:
    # A benchmark marker's options override the command line's, so the default is a marker
    # added only when the flag is absent (autouse fixtures are set up before ``benchmark``).
    if not _option_given(request.config, "--benchmark-max-time"):
        request.node.add_marker(pytest.mark.benchmark(max_time=DEFAULT_MAX_TIME))


@pytest.mark.parametrize(("family", "serializer"), CASES)
def test_round_trip(benchmark, family: str, serializer: str) -> None:
    value = FAMILIES[family]()
    ser, de = SERIALIZERS[serializer]
    text = ser(value)
    assert de(text) == value
    benchmark.group = family
    benchmark.extra_info.update(family=family, serializer=serializer, size=len(text))
    benchmark(lambda: de(ser(value)))
