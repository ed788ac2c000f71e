"""Handlers loaded from files and modules leave the rest of the process's imports alone."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from durable_ext.runtime.handlers import load_handler


def _write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def clean_path():
    before, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = before
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def test_a_file_next_to_a_handler_does_not_shadow_the_standard_library(
    tmp_path: Path, clean_path: None
) -> None:
    sys.modules.pop("colorsys", None)
    _write(tmp_path / "app" / "colorsys.py", "raise RuntimeError('shadowed')\n")
    _write(tmp_path / "app" / "flow.py", """
        import helper
        def handler(event, context):
            return helper.VALUE
    """)
    _write(tmp_path / "app" / "helper.py", "VALUE = 7\n")
    _ref, handler = load_handler(f"{tmp_path / 'app' / 'flow.py'}:handler")
    assert handler(None, None) == 7  # its neighbours are importable
    import colorsys

    assert colorsys.__file__ is not None and str(tmp_path) not in colorsys.__file__


def test_two_handler_files_of_one_name_each_load_their_own(
    tmp_path: Path, clean_path: None
) -> None:
    a = _write(tmp_path / "a" / "handler.py", "def handler(e, c):\n    return 'a'\n")
    b = _write(tmp_path / "b" / "handler.py", "def handler(e, c):\n    return 'b'\n")
    _, first = load_handler(f"{a}:handler")
    _, second = load_handler(f"{b}:handler")
    _, again = load_handler(f"{a}:handler")
    assert (first(None, None), second(None, None), again(None, None)) == ("a", "b", "a")
    assert again is first


def test_a_module_target_still_imports_from_the_current_directory(
    tmp_path: Path, clean_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "shop" / "__init__.py", "")
    _write(tmp_path / "shop" / "orders.py", "def process(e, c):\n    return 'ok'\n")
    monkeypatch.chdir(tmp_path)
    ref, handler = load_handler("shop.orders:process")
    assert handler(None, None) == "ok"
    assert ref.root == str(tmp_path.resolve())
    stdlib = os.path.dirname(os.__file__)
    assert sys.path.index(str(tmp_path)) > sys.path.index(stdlib)  # after, never before
