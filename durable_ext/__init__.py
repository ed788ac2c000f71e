"""Serializers, checkpoint backends, a local runtime and logging for durable functions.

durable_ext extends AWS Lambda durable functions written with the Python SDK.

Example:
    >>> import durable_ext
    >>> durable_ext.serdes("msgpack+zstd")
    Pipeline('msgpack+zstd')

"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from durable_ext.serializers.defaults import default_serdes
from durable_ext.serializers.pipeline import build_pipeline, serdes
from durable_ext.serializers.types import TypeRegistry

if TYPE_CHECKING:
    from durable_ext.backends import open_store
    from durable_ext.logging import replay_aware
    from durable_ext.runtime import Runtime, VirtualClock

__version__ = "0.1.0"

__all__ = [
    "Runtime",
    "TypeRegistry",
    "VirtualClock",
    "__version__",
    "build_pipeline",
    "default_serdes",
    "open_store",
    "replay_aware",
    "serdes",
]

# The runtime and logging layers are imported on first use, so that a handler that only
# wants a serializer pays for nothing else at cold start.
_LAZY = {
    "Runtime": "durable_ext.runtime",
    "VirtualClock": "durable_ext.runtime",
    "open_store": "durable_ext.backends",
    "replay_aware": "durable_ext.logging",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'durable_ext' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
