"""Handlers by reference: the one loader and the one naming rule of every command.

``durable-ext run``, ``serve``, ``worker``, :meth:`Runtime.register
<durable_ext.runtime.Runtime.register>` and the docs all take a handler as ``TARGET`` or
``NAME=TARGET``, where ``TARGET`` is:

* ``package.module:attr`` (dots in ``attr`` walk attributes): the current directory is
  importable, as for ``python -m``, but after the standard library and installed packages;
* ``path/to/file.py:attr``, loaded from that file (its directory becomes importable, after
  the standard library and installed packages, so it shadows none of them);
* ``package.module`` alone, meaning ``package.module:handler`` (the Lambda convention).

The function a handler is served as is ``NAME`` when given, else the module's last name
(file stem) followed by ``-attr`` unless the attribute is ``handler``, with ``_`` as
``-``: ``examples/order_workflow.py:handler`` is ``order-workflow``,
``app.handlers:process_order`` is ``handlers-process-order``.

An execution records its handler's :class:`HandlerRef`, so a later process (``durable-ext
callback succeed`` from another shell) can load it again; when it cannot, the error says
why and how to fix it. Import failures are :class:`~durable_ext.errors.HandlerLoadError`:
one line, never a traceback.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durable_ext.errors import HandlerLoadError

__all__ = [
    "DEFAULT_ATTRIBUTE",
    "HandlerRef",
    "LoadedHandler",
    "function_name_for",
    "load_handler",
    "load_handlers",
    "parse_handler_spec",
    "reference_of",
]

DEFAULT_ATTRIBUTE = "handler"
_ATTRS_HANDLER = "handler"
_ATTRS_ROOT = "handler_root"
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9-]+")


@dataclass(frozen=True, slots=True)
class HandlerRef:
    """Where a handler lives, so another process can load it.

    Attributes:
        target: ``module:attr``, or ``/absolute/file.py:attr``.
        root: The directory ``module`` is imported from (None for files and for modules
            importable anywhere, such as installed ones).

    """

    target: str
    root: str | None = None

    def __str__(self) -> str:
        return self.target

    def attributes(self) -> dict[str, str]:
        """Return the execution attributes that record this reference."""
        out = {_ATTRS_HANDLER: self.target}
        if self.root:
            out[_ATTRS_ROOT] = self.root
        return out

    @classmethod
    def from_attributes(cls, attributes: dict[str, str]) -> HandlerRef | None:
        """Return the reference an execution recorded, if any."""
        target = attributes.get(_ATTRS_HANDLER)
        return cls(target, attributes.get(_ATTRS_ROOT)) if target else None

    def load(self) -> Any:
        """Import the handler this reference names (see :func:`load_handler`)."""
        return load_handler(self.target, root=self.root)[1]


def _split(target: str) -> tuple[str, str]:
    module, sep, attr = target.rpartition(":")
    if not sep:
        module, attr = target, DEFAULT_ATTRIBUTE
    if not module or not attr:
        raise HandlerLoadError(
            f"expected MODULE:HANDLER, FILE.py:HANDLER or MODULE, got {target!r}"
        )
    return module, attr


def _is_file(module: str) -> bool:
    return module.endswith(".py") or os.sep in module or "/" in module


def _importable(directory: str) -> None:
    # Appended, not prepended: a file in a handler's directory that shares a name with the
    # standard library or an installed package never shadows it for the whole process.
    if directory not in sys.path:
        sys.path.append(directory)


def _import_file(path: Path) -> Any:
    """Import the module at ``path``, under its stem unless another module holds that name."""
    name = path.stem
    held = sys.modules.get(name)
    if held is not None:
        if _same_file(getattr(held, "__file__", None), path):
            return held
        name = f"{name}__{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
        if name in sys.modules:
            return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it, as import does (dataclasses need it)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _same_file(file: str | None, path: Path) -> bool:
    return file is not None and Path(file).resolve() == path


def load_handler(target: str, *, root: str | None = None) -> tuple[HandlerRef, Any]:
    """Import ``target``; return its reference (for other processes) and the handler.

    The current directory is importable, as for ``python -m``; ``root`` (a recorded
    reference's) is tried first.

    Raises:
        HandlerLoadError: the module or file cannot be imported, or has no such attribute.

    """
    module_name, attr = _split(target)
    if _is_file(module_name):
        path = Path(module_name).resolve()
        if not path.is_file():
            raise HandlerLoadError(f"cannot load handler {target!r}: no such file {path}")
        _importable(str(path.parent))  # for the modules next to it that it imports
        module_name, where = path.stem, str(path)
        ref = HandlerRef(f"{path}:{attr}")
    else:
        if root:
            _importable(root)
        _importable(os.getcwd())
        where = module_name
        ref = None
    try:
        module = _import_file(path) if ref is not None else importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" from {root}" if root else f" from {os.getcwd()}"
        raise HandlerLoadError(
            f"cannot import handler {target!r}{hint}: {exc}; run from the directory that "
            "holds the module, put it on PYTHONPATH, or give FILE.py:HANDLER"
        ) from None
    except Exception as exc:
        raise HandlerLoadError(
            f"importing handler {target!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise HandlerLoadError(f"{where} has no attribute {attr!r}") from None
    if ref is None:
        ref = HandlerRef(f"{module_name}:{attr}", _import_root(module, module_name))
    return ref, obj


def _import_root(module: Any, module_name: str) -> str | None:
    """Return the sys.path entry ``module`` was found in (None when it has no file)."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve().parent
    levels = module_name.count(".") + (1 if Path(file).name == "__init__.py" else 0)
    for _ in range(levels):
        path = path.parent
    return str(path)


def parse_handler_spec(spec: str) -> tuple[str | None, str]:
    """``[NAME=]TARGET`` -> ``(NAME or None, TARGET)``."""
    name, sep, target = spec.partition("=")
    if not sep:
        return None, spec
    if not name or not target:
        raise HandlerLoadError(f"expected [NAME=]MODULE:HANDLER, got {spec!r}")
    return name, target


@dataclass(frozen=True, slots=True)
class LoadedHandler:
    """A handler given on a command line: the function it is served as, where it lives."""

    name: str
    ref: HandlerRef
    handler: Any


def load_handlers(specs: list[str], *, taken: set[str] | None = None) -> list[LoadedHandler]:
    """Load ``[NAME=]TARGET`` specs, named by the one rule; two under one name is an error.

    ``taken`` holds names already in use (by an earlier list, such as ``--plain``).

    Raises:
        HandlerLoadError: a spec that does not parse or import, or a repeated name.

    """
    seen: dict[str, str] = {}
    used = set(taken or ())
    out: list[LoadedHandler] = []
    for spec in specs:
        name, target = parse_handler_spec(spec)
        name = name or function_name_for(target)
        if name in seen or name in used:
            first = seen.get(name, "an earlier handler")
            raise HandlerLoadError(
                f"two handlers are named {name!r} ({first} and {target}); give one another "
                f"name: NAME={target}"
            )
        seen[name] = target
        ref, handler = load_handler(target)
        out.append(LoadedHandler(name, ref, handler))
    return out


def function_name_for(target: str) -> str:
    """Return the function a handler at ``target`` is served as when no name is given.

    Example:
        >>> function_name_for("examples/order_workflow.py:handler")
        'order-workflow'
        >>> function_name_for("app.handlers:process_order")
        'handlers-process-order'

    """
    module, attr = _split(target)
    stem = Path(module).stem if _is_file(module) else module.rsplit(".", 1)[-1]
    name = stem if attr == DEFAULT_ATTRIBUTE else f"{stem}-{attr.replace('.', '-')}"
    name = _BAD_NAME_CHARS.sub("-", name.replace("_", "-")).strip("-")
    return name[:64] or DEFAULT_ATTRIBUTE


def reference_of(handler: Any) -> HandlerRef | None:
    """Where ``handler`` (an object or a target string) can be loaded from, if anywhere.

    A handler defined in ``__main__`` is referenced by its file; one defined in a
    function, a lambda, or an object without a module has no reference.
    """
    if isinstance(handler, str):
        return HandlerRef(handler)
    declared = getattr(handler, "path", None)  # wrappers that run a handler elsewhere
    if isinstance(declared, str) and ":" in declared:
        return HandlerRef(declared)
    module_name = getattr(handler, "__module__", None)
    qualname = getattr(handler, "__qualname__", None)
    if not module_name or not qualname or "<" in qualname:
        return None
    module = sys.modules.get(module_name)
    if module_name == "__main__":
        main_file = getattr(module, "__file__", None)
        return HandlerRef(f"{os.path.abspath(main_file)}:{qualname}") if main_file else None
    return HandlerRef(f"{module_name}:{qualname}", _import_root(module, module_name)
                      if module is not None else None)
