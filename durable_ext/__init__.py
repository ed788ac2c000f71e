"""Serializers, checkpoint backends, a local runtime and logging for durable functions.

durable_ext extends AWS Lambda durable functions written with the Python SDK.

Example:
    >>> import durable_ext
    >>> durable_ext.serdes("msgpack+zstd")
    Pipeline('msgpack+zstd')

"""

from __future__ import annotations

from durable_ext.serializers.defaults import default_serdes
from durable_ext.serializers.pipeline import build_pipeline, serdes
from durable_ext.serializers.types import TypeRegistry

__version__ = "0.1.0"

__all__ = ["TypeRegistry", "__version__", "build_pipeline", "default_serdes", "serdes"]
