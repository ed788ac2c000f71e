"""Round trips of one payload family, for instruction counts under callgrind.

Wall-clock ratios on a shared machine move with its load; instruction counts do not.
Count a serializer's instructions per round trip as the difference of two runs::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/instructions.py msgpack small_mixed 400
    # ... and the same with 0 round trips; (refs(400) - refs(0)) / 400

Serializers: ``msgpack``, ``sdk-extended``, ``floor``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import floor
from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, SerDesContext
from payloads import FAMILIES

import durable_ext

CTX = SerDesContext("op", "arn")


def round_trip(serializer: str, value: Any) -> Callable[[], Any]:
    """Return a function doing one serialize + deserialize of ``value``."""
    if serializer == "floor":
        return lambda: floor.deserialize(floor.serialize(value))
    serdes: Any = durable_ext.serdes("msgpack") if serializer == "msgpack" else ExtendedTypeSerDes()
    return lambda: serdes.deserialize(serdes.serialize(value, CTX), CTX)


def main(serializer: str, family: str, count: str) -> None:
    """Warm up once, then run ``count`` round trips."""
    once = round_trip(serializer, FAMILIES[family]())
    once()
    for _ in range(int(count)):
        once()


if __name__ == "__main__":
    main(*sys.argv[1:4])
