"""A separately installed distribution that declares entry points is found by name."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN_MODULE = '''
from typing import Any, ClassVar


class ReverseCodec:
    """A codec from another distribution: reverses the bytes."""

    name: ClassVar[str] = "acme-reverse"
    role: ClassVar[str] = "codec"
    wire: ClassVar[bytes] = b"acme-reverse"
    version: ClassVar[int] = 1
    # acts on nothing outside the payload: pipelines without it may decode its frames
    self_contained: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, arg, /, **options: Any) -> "ReverseCodec":
        return cls()

    def encode(self, data: bytes, ctx) -> bytes:
        return data[::-1]

    def decode(self, body: bytes, version: int, ctx) -> bytes:
        return bytes(body)[::-1]


class VaultCodec(ReverseCodec):
    """A codec with outside effects (it would call a key service): never self-contained."""

    name: ClassVar[str] = "acme-vault"
    wire: ClassVar[bytes] = b"acme-vault"
    self_contained: ClassVar[bool] = False
'''


def install_dist(tmp_path: Path, name: str, entry_points: str) -> Path:
    src = tmp_path / f"src-{name}"
    pkg = src / name.replace("-", "_")
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(PLUGIN_MODULE)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name}"
        version = "1.0"
        {entry_points}
        """)
    )
    site = tmp_path / f"site-{name}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return site


def run_with(site: Path, code: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def acme_site(tmp_path_factory):
    return install_dist(
        tmp_path_factory.mktemp("acme"),
        "acme-durable",
        textwrap.dedent("""
        [project.entry-points."durable_ext.serializers"]
        acme-reverse = "acme_durable:ReverseCodec"
        acme-vault = "acme_durable:VaultCodec"
        """),
    )


def test_installed_distribution_is_found_by_name_and_composes(acme_site):
    out = run_with(
        acme_site,
        """
        import durable_ext
        from durable_ext.registry import SERIALIZERS
        from aws_durable_execution_sdk_python.serdes import SerDesContext
        assert "acme-reverse" in SERIALIZERS.names()
        assert SERIALIZERS.info("acme-reverse").distribution == "acme-durable"
        s = durable_ext.serdes("msgpack+acme-reverse")
        ctx = SerDesContext("op", "arn")
        text = s.serialize({"k": (1, 2)}, ctx)
        # a pipeline without the stage still reads the payload: the frame names the stage
        assert durable_ext.serdes("msgpack").deserialize(text, ctx) == {"k": (1, 2)}
        print(repr(s))
    """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Pipeline('msgpack+acme-reverse')"


def test_a_stage_with_outside_effects_is_decoded_only_where_configured(acme_site):
    out = run_with(
        acme_site,
        """
        import durable_ext
        from aws_durable_execution_sdk_python.serdes import SerDesContext
        ctx = SerDesContext("op", "arn")
        text = durable_ext.serdes("msgpack+acme-vault").serialize({"k": 1}, ctx)
        assert durable_ext.serdes("msgpack+acme-vault").deserialize(text, ctx) == {"k": 1}
        opted_in = durable_ext.serdes("msgpack", options={"acme-vault": {}})
        assert opted_in.deserialize(text, ctx) == {"k": 1}
        try:
            durable_ext.serdes("msgpack").deserialize(text, ctx)
        except Exception as exc:
            print(type(exc).__name__, exc)
    """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("DisallowedContentError")
    assert "'acme-vault', which this pipeline is not configured for" in out.stdout


def test_without_the_distribution_the_name_is_unknown():
    out = run_with(
        Path("/nonexistent"),
        """
        import durable_ext
        try:
            durable_ext.serdes("msgpack+acme-reverse")
        except Exception as exc:
            print(type(exc).__name__, exc)
    """,
    )
    assert out.stdout.startswith("UnknownPluginError")
    assert "Available:" in out.stdout


def test_a_distribution_shadowing_a_builtin_is_refused(tmp_path):
    site = install_dist(
        tmp_path,
        "evil-durable",
        textwrap.dedent("""
        [project.entry-points."durable_ext.serializers"]
        zstd = "evil_durable:ReverseCodec"
        """),
    )
    out = run_with(
        site,
        """
        from durable_ext.registry import SERIALIZERS
        try:
            SERIALIZERS.names()
        except Exception as exc:
            print(type(exc).__name__, exc)
    """,
    )
    assert out.stdout.startswith("ConfigError")
    assert "evil-durable" in out.stdout and "durable-ext" in out.stdout
