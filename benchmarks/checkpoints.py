"""The checkpoint workload shared by the checkpoint and store benchmarks.

One checkpoint = a STEP START + SUCCEED pair with a 200-byte payload (two updates),
taken through the engine on an execution preloaded with ``n`` operations.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from durable_ext.backends.store import Store
from durable_ext.engine import Engine

PAYLOAD = '"' + "x" * 198 + '"'
PRELOAD_BATCH = 250


def updates(op_id: str) -> list[dict[str, Any]]:
    """The two updates of one measured checkpoint."""
    step = {"Id": op_id, "Type": "STEP", "SubType": "Step", "Name": "s"}
    return [{**step, "Action": "START"}, {**step, "Action": "SUCCEED", "Payload": PAYLOAD}]


def prepare(store: Store, n: int) -> Callable[[], None]:
    """Start an execution on ``store`` holding ``n`` operations; return one checkpoint."""
    engine = Engine(store)
    arn, _ = engine.start("bench", "{}")
    inv = engine.begin_invocation(arn)
    assert inv is not None
    token: str = inv.token
    for start in range(0, n, PRELOAD_BATCH):
        batch = [
            {
                "Id": f"p{i}",
                "Type": "STEP",
                "Action": "SUCCEED",
                "SubType": "Step",
                "Payload": PAYLOAD,
            }
            for i in range(start, min(n, start + PRELOAD_BATCH))
        ]
        token = engine.checkpoint(arn, token, batch).token or ""
    assert len(store.operations(arn)) == n + 1
    counter = itertools.count()

    def one() -> None:
        nonlocal token
        token = engine.checkpoint(arn, token, updates(f"b{next(counter)}")).token or ""

    return one
