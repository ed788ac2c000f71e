"""Instructions per round trip of one payload family, counted under callgrind.

Wall-clock ratios on a shared machine move with its load; instruction counts do not. A
serializer's count per round trip is the difference of two callgrind runs of this file,
with ``n`` round trips and with none, divided by ``n``::

    python benchmarks/instructions.py count msgpack small_mixed 400

prints that figure (it runs valgrind twice). ``run SERIALIZER FAMILY N`` is what runs under
valgrind: one warm-up round trip, then ``N``. Serializers: ``sdk-extended``, ``floor``, or
any durable_ext spec string (``msgpack``, ``msgpack+zstd``). durable_ext is imported from
``PYTHONPATH`` when set, so two checkouts are compared by running both::

    PYTHONPATH=/other/checkout python benchmarks/instructions.py count msgpack orders_1000 10
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import floor
from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, SerDesContext
from payloads import FAMILIES

import durable_ext

CTX = SerDesContext("op", "arn")
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def round_trip(serializer: str, value: Any) -> Callable[[], Any]:
    """Return a function doing one serialize + deserialize of ``value``."""
    if serializer == "floor":
        return lambda: floor.deserialize(floor.serialize(value))
    serdes: Any = (
        ExtendedTypeSerDes() if serializer == "sdk-extended" else durable_ext.serdes(serializer)
    )
    return lambda: serdes.deserialize(serdes.serialize(value, CTX), CTX)


def run(serializer: str, family: str, n: int) -> None:
    """Warm up once, then run ``n`` round trips."""
    once = round_trip(serializer, FAMILIES[family]())
    once()
    for _ in range(n):
        once()


def _refs(serializer: str, family: str, n: int) -> int:
    # A fixed hash seed keeps dict and set layouts, and so the counts, the same run to run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(Path(__file__)),
            "run",
            serializer,
            family,
            str(n),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr}")
    return int(found.group(1))


def count(serializer: str, family: str, n: int) -> float:
    """Instructions per round trip: ``(refs(n) - refs(0)) / n``."""
    return (_refs(serializer, family, n) - _refs(serializer, family, 0)) / n


def main(argv: list[str]) -> None:
    if len(argv) != 4 or argv[0] not in ("run", "count"):
        raise SystemExit(f"usage: {Path(__file__).name} run|count SERIALIZER FAMILY N")
    command, serializer, family, n = argv
    if command == "run":
        run(serializer, family, int(n))
    else:
        print(f"{family} {serializer}: {count(serializer, family, int(n)):,.0f} instructions")


if __name__ == "__main__":
    main(sys.argv[1:])
