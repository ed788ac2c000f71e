import subprocess
import sys
import textwrap

import durable_ext


def test_public_names_are_pinned():
    assert sorted(durable_ext.__all__) == durable_ext.__all__
    assert set(durable_ext.__all__) >= {
        "serdes",
        "build_pipeline",
        "default_serdes",
        "TypeRegistry",
    }
    for name in durable_ext.__all__:
        assert getattr(durable_ext, name) is not None


def test_import_loads_no_optional_library():
    code = textwrap.dedent(
        """
        import sys
        import durable_ext
        heavy = [m for m in ("msgpack", "zstandard", "redis", "cloudpickle", "cryptography",
                             "pydantic", "rich", "yaml") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_works_without_any_extra_installed():
    code = textwrap.dedent(
        """
        import sys
        for m in ("msgpack", "zstandard", "redis", "cloudpickle", "cryptography"):
            sys.modules[m] = None  # as if not installed
        import durable_ext
        from durable_ext.errors import MissingDependencyError
        try:
            durable_ext.serdes("msgpack")
        except MissingDependencyError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'durable-ext[msgpack]'" in out.stdout
