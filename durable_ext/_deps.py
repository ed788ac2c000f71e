"""Optional dependencies: import them on first use, with the exact install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from durable_ext.errors import MissingDependencyError

__all__ = ["install_hint", "require"]


def install_hint(extra: str) -> str:
    """Return the pip command that installs ``extra``."""
    return f"pip install 'durable-ext[{extra}]'"


def require(module: str, *, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    Example:
        >>> msgpack = require("msgpack", extra="msgpack")  # doctest: +SKIP

    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = feature or extra
        raise MissingDependencyError(
            f"{what} needs the '{module}' package, which is not installed; "
            f"run: {install_hint(extra)}",
            extra=extra,
            module=module,
        ) from exc
