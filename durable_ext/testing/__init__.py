"""Test helpers for users of durable_ext: pytest fixtures, a store contract suite, a replayer.

:func:`replay` runs a recorded execution against today's handler code (see
:mod:`durable_ext.testing.replayer`); the names load on first use, so the pytest plugin
that imports this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BatchReport", "Divergence", "Recording", "ReplayResult", "replay", "replay_many"]

_LAZY = {
    "BatchReport": "durable_ext.testing.replayer",
    "Divergence": "durable_ext.testing.replayer",
    "ReplayResult": "durable_ext.testing.replayer",
    "replay": "durable_ext.testing.replayer",
    "replay_many": "durable_ext.testing.replayer",
    "Recording": "durable_ext.testing.recording",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
