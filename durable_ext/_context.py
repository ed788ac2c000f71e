"""The base of the context wrappers that extend a ``DurableContext`` without patching it."""

from __future__ import annotations

from typing import Any

__all__ = ["ContextProxy"]


class ContextProxy:
    """Stands in for a ``DurableContext``: overrides what it must, delegates the rest.

    Subclasses wrap the operations they change and re-wrap every context they hand to
    user code (children, map items, parallel branches), so the change reaches the whole
    tree. A proxy is not an ``isinstance`` of ``DurableContext``.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def wrapped(self) -> Any:
        """The SDK context underneath."""
        return self._inner
