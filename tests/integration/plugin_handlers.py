"""A recording SDK plugin, and handlers that select it through ``DURABLE_EXECUTION_PLUGINS``.

The handlers here are decorated when this module is imported, which is when the SDK
reads ``DURABLE_EXECUTION_PLUGINS``: import it after setting the variable (the tests
import it fresh). Every hook appends a line to ``$PLUGIN_LEDGER`` (one file shared by
processes, lines written with O_APPEND) and to :data:`HOOKS` in this process.
"""

from __future__ import annotations

import os
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration
from aws_durable_execution_sdk_python.plugin import (
    DurableInstrumentationPlugin,
    InvocationEndInfo,
    InvocationStartInfo,
    OperationEndInfo,
    OperationStartInfo,
)

LEDGER_ENV = "PLUGIN_LEDGER"
HOOKS: list[str] = []


def _note(line: str) -> None:
    HOOKS.append(line)
    path = os.environ.get(LEDGER_ENV)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)


class Recorder(DurableInstrumentationPlugin):
    def on_invocation_start(self, info: InvocationStartInfo) -> None:
        _note(f"invocation-start first={info.is_first_invocation} pid={os.getpid()}")

    def on_invocation_end(self, info: InvocationEndInfo) -> None:
        _note(f"invocation-end {info.status.name}")

    def on_operation_start(self, info: OperationStartInfo) -> None:
        _note(f"operation-start {info.name}")

    def on_operation_end(self, info: OperationEndInfo) -> None:
        _note(f"operation-end {info.name} {info.status.name if info.status else None}")


class RecorderFactory:
    def create_plugin(self, info: InvocationStartInfo) -> DurableInstrumentationPlugin:
        return Recorder()


#: what the test distribution's entry point names
FACTORY = RecorderFactory()


@durable_execution
def env_selected(event: Any, ctx: DurableContext) -> int:
    a = ctx.step(lambda _: 1, name="one")
    ctx.wait(Duration.from_seconds(2), name="pause")
    return int(a + ctx.step(lambda _: 2, name="two"))
