"""Where in the user's code something happened: the innermost frame that is theirs.

The SDK, durable_ext and the standard library sit between a handler's line
(``context.step(...)``, ``random.random()``) and the place the replayer notices it, so
reports walk the stack outwards and name the first frame outside those.
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
import sysconfig
from dataclasses import dataclass
from types import FrameType

import aws_durable_execution_sdk_python

import durable_ext

__all__ = ["Location", "is_user_file", "location_of", "user_location"]

_MAX_DEPTH = 200


def _directory(path: str) -> str:
    return os.path.normcase(os.path.realpath(path)) + os.sep


_PACKAGE_DIRS = (
    _directory(os.path.dirname(aws_durable_execution_sdk_python.__file__)),
    _directory(os.path.dirname(durable_ext.__file__)),
)
_PATHS = sysconfig.get_paths()
_SITE_DIRS = tuple({_directory(_PATHS[k]) for k in ("purelib", "platlib") if _PATHS.get(k)})
_STDLIB_DIRS = tuple({_directory(_PATHS[k]) for k in ("stdlib", "platstdlib") if _PATHS.get(k)})


@dataclass(frozen=True, slots=True)
class Location:
    """A line of source: file, line number, function and the line's text."""

    file: str
    line: int
    function: str
    code: str = ""

    def __str__(self) -> str:
        where = f"{_short(self.file)}:{self.line} in {self.function}"
        return f"{where}: {self.code}" if self.code else where

    def to_dict(self) -> dict[str, object]:
        """Return the location as JSON-able fields."""
        return {"file": self.file, "line": self.line, "function": self.function,
                "code": self.code}


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if rel.startswith(".." + os.sep) else rel


@functools.lru_cache(maxsize=4096)
def _kind(filename: str) -> str:
    """``library`` (SDK, durable_ext, stdlib), ``site`` (installed packages) or ``user``."""
    if filename.startswith("<"):
        return "library"
    path = os.path.normcase(os.path.realpath(filename))
    if path.startswith(_PACKAGE_DIRS):
        return "library"
    # site-packages usually lives under the stdlib directory: test it first
    if path.startswith(_SITE_DIRS):
        return "site"
    return "library" if path.startswith(_STDLIB_DIRS) else "user"


def is_user_file(filename: str) -> bool:
    """Whether ``filename`` is the user's code (not the SDK, durable_ext or the stdlib)."""
    return _kind(filename) == "user"


def location_of(frame: FrameType) -> Location:
    """Return the location ``frame`` is executing."""
    code = frame.f_code
    text = linecache.getline(code.co_filename, frame.f_lineno).strip()
    return Location(code.co_filename, frame.f_lineno, code.co_name, text)


def user_location(frame: FrameType | None = None) -> Location | None:
    """Return the innermost user frame at or outside ``frame`` (default: the caller's).

    Installed packages count only when no frame of the user's own tree is found.
    """
    f: FrameType | None = frame if frame is not None else sys._getframe(1)
    fallback: FrameType | None = None
    for _ in range(_MAX_DEPTH):
        if f is None:
            break
        kind = _kind(f.f_code.co_filename)
        if kind == "user":
            return location_of(f)
        if kind == "site" and fallback is None:
            fallback = f
        f = f.f_back
    return location_of(fallback) if fallback is not None else None
