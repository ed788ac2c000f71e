"""Function versions and aliases: which code an execution runs, on every process.

A function is registered per version (``orders:1``, ``orders:2``; plain ``orders`` is
``orders:$LATEST``), and aliases name versions (``orders:live -> 2``). Starting an
execution resolves the qualifier once and records the version in the execution's ARN
(``...:function:orders:2/durable-execution/...``), which is also its ``Version`` and the
``ExecutedVersion`` of a chained invoke. Every later invocation of it, on any runtime or
worker, runs that version: a process claims an execution's work only when it serves the
function at that version, so an execution whose version nobody serves waits.

An unqualified name resolves to ``$LATEST`` when this process serves it, else to the
highest version it serves (a fleet that deploys numbered versions needs no alias for
"the newest"). Aliases are this process's configuration: whoever starts an execution
resolves it, and the recorded version is what counts afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Generic, TypeVar

from durable_ext.engine.arns import LATEST, is_version, split_qualifier, version_of
from durable_ext.errors import ConfigError

__all__ = [
    "LATEST",
    "FunctionTable",
    "is_version",
    "parse_alias_spec",
    "split_qualifier",
    "version_of",
]

_ALIAS = re.compile(r"(?!^[0-9]+$)[a-zA-Z0-9_-]{1,128}")

F = TypeVar("F")


def parse_alias_spec(spec: str) -> tuple[str, str, str]:
    """``FUNCTION:ALIAS=VERSION`` (a command line's ``--alias``) -> its three parts."""
    target, sep, version = spec.partition("=")
    name, _, alias = target.partition(":")
    if not (sep and name and alias and version):
        raise ConfigError(f"expected --alias FUNCTION:ALIAS=VERSION, got {spec!r}")
    return name, alias, version


class FunctionTable(Generic[F]):
    """Registered functions by name and version, and aliases of versions."""

    def __init__(self) -> None:
        self._versions: dict[str, dict[str, F]] = {}
        self._aliases: dict[str, dict[str, str]] = {}

    def add(self, name: str, version: str, fn: F) -> None:
        """Serve ``fn`` as ``name`` at ``version``."""
        if not is_version(version):
            raise ConfigError(
                f"{name}:{version}: register a version ($LATEST or a number); point an alias "
                "at it with alias()"
            )
        self._versions.setdefault(name, {})[version] = fn

    def alias(self, name: str, alias: str, version: str) -> None:
        """Point ``name:alias`` at ``version`` (it need not be served here)."""
        if not _ALIAS.fullmatch(alias) or alias == LATEST:
            raise ConfigError(f"invalid alias {alias!r}: 1-128 of [a-zA-Z0-9_-], not a number")
        if not is_version(version):
            raise ConfigError(f"alias {name}:{alias} must point at a version, got {version!r}")
        self._aliases.setdefault(name, {})[alias] = version

    def get(self, name: str, version: str) -> F | None:
        """Return the function served as ``name`` at ``version``, if any."""
        return self._versions.get(name, {}).get(version)

    def versions(self, name: str) -> list[str]:
        """Versions of ``name`` served here (``$LATEST`` first, then by number)."""
        found = self._versions.get(name, {})
        return sorted(found, key=lambda v: -1 if v == LATEST else int(v))

    def any(self, name: str) -> F | None:
        """One version of ``name`` served here (the newest), for what all versions share."""
        served = self.versions(name)
        return self._versions[name][served[-1]] if served else None

    def resolve(self, name: str, qualifier: str | None) -> str | None:
        """Return the version ``name[:qualifier]`` means here (None: an unknown alias)."""
        if qualifier is None:
            served = self.versions(name)
            if not served or LATEST in served:
                return LATEST
            return served[-1]
        if is_version(qualifier):
            return qualifier
        return self._aliases.get(name, {}).get(qualifier)

    def __iter__(self) -> Iterator[str]:
        return iter(self._versions)
