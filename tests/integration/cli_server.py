"""``durable-ext serve`` as a subprocess of a test: started, waited for, stopped."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servers import free_port

CLI = [sys.executable, "-m", "durable_ext.cli"]
READY_SECONDS = 30


def health(port: int) -> dict[str, Any]:
    """The server's health answer (an OSError while it is not up)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_durable_ext/health", timeout=2) as r:
        body: dict[str, Any] = json.loads(r.read())
        return body


@dataclass
class Served:
    """A running ``durable-ext serve``: its port and its process."""

    port: int
    proc: subprocess.Popen[str]


@contextlib.contextmanager
def serving(args: list[str], cwd: Path) -> Iterator[Served]:
    """Run ``durable-ext serve ARGS --port P`` from ``cwd`` until it answers.

    The environment loses PYTHONPATH and DURABLE_EXT_BACKEND, as on a user's shell.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DURABLE_EXT_BACKEND")}
    proc = subprocess.Popen([*CLI, "serve", *args, "--port", str(port)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                health(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.1)
        yield Served(port, proc)
    finally:
        proc.terminate()
        proc.wait(10)
