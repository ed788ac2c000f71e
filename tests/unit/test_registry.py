import subprocess
import sys
import textwrap

import pytest

from durable_ext.errors import ConfigError, MissingDependencyError, UnknownPluginError
from durable_ext.registry import BACKENDS, SERIALIZERS, PluginRegistry


def test_builtin_names_are_listed_without_importing_them():
    code = textwrap.dedent(
        """
        import sys
        from durable_ext.registry import SERIALIZERS, BACKENDS
        names = SERIALIZERS.names() + BACKENDS.names()
        targets = {SERIALIZERS.info(n).target.split(":")[0] for n in SERIALIZERS.names()}
        targets |= {BACKENDS.info(n).target.split(":")[0] for n in BACKENDS.names()}
        loaded = sorted(targets & set(sys.modules))
        print(sorted(names)); print(loaded)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, loaded = out.stdout.splitlines()
    for name in ("msgpack", "zstd", "kms", "s3", "pickle", "memory", "file", "redis", "dynamodb",
                 "postgres", "postgresql"):
        assert repr(name) in names
    assert loaded == "[]"


def test_unknown_name_suggests_close_matches_and_lists_all():
    with pytest.raises(UnknownPluginError) as info:
        SERIALIZERS.load("msgpak")
    msg = str(info.value)
    assert "'msgpack'" in msg and "Did you mean" in msg and "Available:" in msg and "zstd" in msg
    assert info.value.group == "durable_ext.serializers"
    with pytest.raises(UnknownPluginError, match="backend"):
        BACKENDS.info("cassandra")


def test_register_is_idempotent_and_refuses_silent_replacement():
    reg = PluginRegistry("demo.things", {"a": ("json:dumps", None)})
    reg.register("a", "json:dumps")  # same target: no-op
    reg.register("b", "json:loads")
    assert reg.load("b")("[1]") == [1]
    with pytest.raises(ConfigError, match="claimed twice"):
        reg.register("a", "json:loads")
    with pytest.raises(ConfigError, match="module:Object"):
        reg.register("c", "json.loads")


def test_loading_caches_the_object():
    assert SERIALIZERS.load("zlib") is SERIALIZERS.load("zlib")


def test_missing_optional_library_names_the_exact_extra():
    reg = PluginRegistry(
        "demo.things", {"x": ("durable_ext.serializers.msgpack_format:MsgpackFormat", "msgpack")}
    )
    code = textwrap.dedent(
        """
        import sys
        sys.modules["msgpack"] = None
        from durable_ext.registry import SERIALIZERS
        try:
            SERIALIZERS.load("msgpack")
        except ImportError as exc:
            print(type(exc).__name__, exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("MissingDependencyError")
    assert "pip install 'durable-ext[msgpack]'" in out.stdout
    assert issubclass(MissingDependencyError, ImportError)
    assert reg.info("x").extra == "msgpack"
