"""Plugin registries for serializers and checkpoint backends.

A registry maps a short name (``"msgpack"``, ``"redis"``) to a ``"module:Object"``
target. Nothing is imported until a name is asked for: built-in targets are strings,
and entry points of installed distributions are read once, on the first name that is
not built in, and only the requested one is loaded. This keeps ``import durable_ext``
free of every optional library.

Third-party packages plug in by declaring an entry point::

    [project.entry-points."durable_ext.serializers"]
    acme = "acme_ext.codec:AcmeCodec"
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from durable_ext._deps import install_hint
from durable_ext.errors import ConfigError, MissingDependencyError, UnknownPluginError

__all__ = ["BACKENDS", "SERIALIZERS", "PluginInfo", "PluginRegistry"]

_OWN_DISTRIBUTION = "durable-ext"


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginInfo:
    """Where a plugin lives and which extra provides its dependencies."""

    name: str
    target: str
    extra: str | None = None
    distribution: str | None = None


class PluginRegistry:
    """Name -> plugin object, resolved lazily from built-ins and entry points.

    Example:
        >>> reg = PluginRegistry("durable_ext.serializers", {})
        >>> reg.register("upper", "str:upper")
        >>> reg.load("upper")("ab")
        'AB'

    """

    def __init__(self, group: str, builtins: Mapping[str, tuple[str, str | None]]) -> None:
        self.group = group
        self._infos: dict[str, PluginInfo] = {
            name: PluginInfo(name=name, target=target, extra=extra, distribution=_OWN_DISTRIBUTION)
            for name, (target, extra) in builtins.items()
        }
        self._loaded: dict[str, Any] = {}
        self._scanned = False
        self._lock = threading.RLock()

    def register(self, name: str, target: str, *, extra: str | None = None) -> None:
        """Register ``name`` -> ``"module:Object"``; re-registering the same target is a no-op."""
        if ":" not in target:
            raise ConfigError(f"plugin target must look like 'module:Object', got {target!r}")
        with self._lock:
            self._add(PluginInfo(name=name, target=target, extra=extra))

    def names(self) -> list[str]:
        """All known names, built-in and installed, without importing any plugin."""
        with self._lock:
            self._scan_entry_points()
            return sorted(self._infos)

    def info(self, name: str) -> PluginInfo:
        """Return where ``name`` lives, or raise :class:`UnknownPluginError`."""
        with self._lock:
            if name not in self._infos:
                self._scan_entry_points()
            try:
                return self._infos[name]
            except KeyError:
                raise self._unknown(name) from None

    def load(self, name: str) -> Any:
        """Import and return the plugin object registered as ``name``."""
        cached = self._loaded.get(name)
        if cached is not None:
            return cached
        info = self.info(name)
        module_name, _, attr = info.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except MissingDependencyError:
            raise
        except ImportError as exc:
            if info.extra is None or (exc.name or "").startswith(module_name):
                raise
            raise MissingDependencyError(
                f"{self._kind} {name!r} needs the '{exc.name}' package, which is not installed; "
                f"run: {install_hint(info.extra)}",
                extra=info.extra,
                module=exc.name or "",
            ) from exc
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
        with self._lock:
            self._loaded[name] = obj
        return obj

    @property
    def _kind(self) -> str:
        return self.group.rpartition(".")[2].rstrip("s")

    def _add(self, info: PluginInfo) -> None:
        existing = self._infos.get(info.name)
        if existing is None:
            self._infos[info.name] = info
            return
        if existing.target == info.target:
            return
        raise ConfigError(
            f"{self._kind} name {info.name!r} is claimed twice: {existing.target!r} "
            f"(from {existing.distribution or 'register()'}) and {info.target!r} "
            f"(from {info.distribution or 'register()'}); uninstall one of them"
        )

    def _scan_entry_points(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for ep in metadata.entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else None
            if dist == _OWN_DISTRIBUTION and ep.name in self._infos:
                continue
            extra = ep.extras[0] if ep.extras else None
            self._add(PluginInfo(name=ep.name, target=ep.value, extra=extra, distribution=dist))

    def _unknown(self, name: str) -> UnknownPluginError:
        known = sorted(self._infos)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return UnknownPluginError(
            f"unknown {self._kind} {name!r} in entry-point group {self.group!r}.{hint} "
            f"Available: {', '.join(known)}.",
            group=self.group,
            name=name,
            known=known,
        )


SERIALIZERS = PluginRegistry(
    "durable_ext.serializers",
    {
        "msgpack": ("durable_ext.serializers.msgpack_format:MsgpackFormat", "msgpack"),
        "json": ("durable_ext.serializers.json_format:JsonFormat", None),
        "zstd": ("durable_ext.serializers.compression:ZstdCodec", "zstd"),
        "zlib": ("durable_ext.serializers.compression:ZlibCodec", None),
        "kms": ("durable_ext.serializers.kms:KmsCodec", "kms"),
        "localkey": ("durable_ext.serializers.kms:LocalKeyCodec", "kms"),
        "fields": ("durable_ext.serializers.fields:FieldsStage", "msgpack"),
        "s3": ("durable_ext.serializers.s3:S3Offload", "s3"),
        "pickle": ("durable_ext.serializers.pickle_format:PickleFormat", "pickle"),
        "model": ("durable_ext.serializers.model_format:ModelFormat", "models"),
    },
)

BACKENDS = PluginRegistry(
    "durable_ext.backends",
    {
        "memory": ("durable_ext.backends.memory:MemoryStore", None),
        "file": ("durable_ext.backends.file:FileStore", None),
        "redis": ("durable_ext.backends.redis:RedisStore", "redis"),
        "rediss": ("durable_ext.backends.redis:RedisStore", "redis"),
        "dynamodb": ("durable_ext.backends.dynamodb:DynamoDBStore", "dynamodb"),
        "postgres": ("durable_ext.backends.postgres:PostgresStore", "postgres"),
        "postgresql": ("durable_ext.backends.postgres:PostgresStore", "postgres"),
    },
)
