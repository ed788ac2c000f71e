from __future__ import annotations

import pytest

from durable_ext.backends import open_store
from durable_ext.backends.memory import MemoryStore
from durable_ext.errors import SpecError
from durable_ext.testing.contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


def test_open_store_by_url() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


def test_unknown_option_is_refused() -> None:
    with pytest.raises(SpecError, match="unknown option"):
        open_store("memory://?colour=red")


def test_default_backend_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_EXT_BACKEND", "memory://")
    assert isinstance(open_store(), MemoryStore)


def test_store_instance_passes_through() -> None:
    s = MemoryStore()
    assert open_store(s) is s
