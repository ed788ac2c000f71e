"""Checkpoint stores behind one protocol, selected by URL through entry points."""

from __future__ import annotations

import os
from typing import Any

from durable_ext.backends.store import Store
from durable_ext.spec import StoreSpec, parse_store

__all__ = ["DEFAULT_BACKEND", "Store", "open_store"]

DEFAULT_BACKEND = "file://.durable"


def open_store(url_or_spec: str | StoreSpec | Store | None = None, **kwargs: Any) -> Store:
    """Open a store by URL through the ``durable_ext.backends`` registry.

    The URL scheme is the backend name (``memory://``, ``file://PATH``, ``redis://...``).
    Without an argument, ``$DURABLE_EXT_BACKEND`` or ``file://.durable`` is used. A Store
    instance is returned as is.

    Example:
        >>> open_store("memory://").name
        'memory'

    """
    if url_or_spec is not None and not isinstance(url_or_spec, str | StoreSpec):
        return url_or_spec
    from durable_ext.registry import BACKENDS

    url = url_or_spec or os.environ.get("DURABLE_EXT_BACKEND") or DEFAULT_BACKEND
    spec = parse_store(url)
    cls = BACKENDS.load(spec.scheme)
    store: Store = cls.from_spec(spec, **kwargs)
    return store
