"""Per-checkpoint cost as an execution grows: our stores vs the testing SDK's stores.

One checkpoint = a STEP START + SUCCEED pair with a 200-byte payload (two updates), taken
on an execution that already holds ``n`` operations, through each side's full checkpoint
path (token check, validation, apply, delta, persist):

* ``memory`` / ``file`` / ``file-nofsync``: :class:`durable_ext.engine.Engine` on
  MemoryStore / FileStore (fsync on every commit, the default) / FileStore with
  ``?fsync=false`` (the testing SDK's stores never fsync, so this is the like-for-like row);
* ``sdk-memory`` / ``sdk-filesystem``: the testing SDK's ``CheckpointProcessor`` on its
  ``InMemoryExecutionStore`` / ``FileSystemExecutionStore``.

Run: ``pytest benchmarks/bench_checkpoint.py --benchmark-json=checkpoint.json`` then
``python benchmarks/report_runtime.py checkpoint.json``.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_durable_execution_sdk_python.lambda_service import (
    OperationAction,
    OperationType,
    OperationUpdate,
)
from checkpoints import PAYLOAD, PRELOAD_BATCH, prepare

from durable_ext.backends.file import FileStore
from durable_ext.backends.memory import MemoryStore

SIZES = [10, 1_000, 2_000, 10_000]
# The testing SDK's filesystem store rewrites the whole execution per checkpoint (about a
# second at 10,000 operations), so it gets fewer rounds.
ROUNDS = {"memory": 200, "file": 200, "file-nofsync": 200, "sdk-memory": 60, "sdk-filesystem": 8}
OURS = ("memory", "file", "file-nofsync")


def _ours(kind: str, n: int, tmp: Path) -> Callable[[], None]:
    store = MemoryStore() if kind == "memory" else FileStore(tmp / "store", fsync=kind == "file")
    return prepare(store, n)


def _sdk_update(op_id: str, action: OperationAction, payload: str | None = None) -> OperationUpdate:
    return OperationUpdate(
        operation_id=op_id,
        operation_type=OperationType.STEP,
        action=action,
        sub_type="Step",
        name="s",
        payload=payload,
    )


def _theirs(kind: str, n: int, tmp: Path) -> Callable[[], None]:
    from aws_durable_execution_sdk_python_testing.checkpoint.processor import CheckpointProcessor
    from aws_durable_execution_sdk_python_testing.execution import Execution
    from aws_durable_execution_sdk_python_testing.model import StartDurableExecutionInput
    from aws_durable_execution_sdk_python_testing.stores.filesystem import FileSystemExecutionStore
    from aws_durable_execution_sdk_python_testing.stores.memory import InMemoryExecutionStore

    store: Any = (
        InMemoryExecutionStore()
        if kind == "sdk-memory"
        else FileSystemExecutionStore.create(tmp / "sdk-store")
    )
    execution = Execution.new(
        StartDurableExecutionInput(
            account_id="123456789012",
            function_name="bench",
            function_qualifier="$LATEST",
            execution_name="bench",
            execution_timeout_seconds=900,
            execution_retention_period_days=1,
            invocation_id="inv-1",
            input="{}",
        )
    )
    execution.start()
    execution.begin_new_invocation()
    store.save(execution)
    processor = CheckpointProcessor(store, scheduler=None)  # type: ignore[arg-type]
    token = execution.get_new_checkpoint_token()
    for start in range(0, n, PRELOAD_BATCH):
        batch = [
            _sdk_update(f"p{i}", OperationAction.SUCCEED, PAYLOAD)
            for i in range(start, min(n, start + PRELOAD_BATCH))
        ]
        token = processor.process_checkpoint(token, batch, None).checkpoint_token
    counter = itertools.count()

    def one() -> None:
        nonlocal token
        op = f"b{next(counter)}"
        token = processor.process_checkpoint(
            token,
            [
                _sdk_update(op, OperationAction.START),
                _sdk_update(op, OperationAction.SUCCEED, PAYLOAD),
            ],
            None,
        ).checkpoint_token

    return one


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-cp-") as d:
        yield Path(d)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("store", [*OURS, "sdk-memory", "sdk-filesystem"])
def test_checkpoint(benchmark: Any, store: str, n: int, workdir: Path) -> None:
    one = (_ours if store in OURS else _theirs)(store, n, workdir)
    benchmark.group = f"checkpoint n={n}"
    benchmark.extra_info.update(suite="checkpoint", store=store, n=n)
    benchmark.pedantic(one, rounds=ROUNDS[store], iterations=1, warmup_rounds=1)
