"""The official conformance suite on the PostgreSQL store: every case, as on the file backend.

Each case runs on an empty store on the session's real PostgreSQL server (one schema,
created once and emptied before every case, which costs a few milliseconds where creating
a schema per case would cost tens), through the conformance harness's own driver and
judged by the suite's matcher.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance.cases import load_cases
from conformance.handlers import CaseHandler
from conformance.harness import Driver, RuntimeDriver, run_case, summarize
from conformance.known_failures import known_failure

pytestmark = pytest.mark.integration


def _params() -> list[Any]:
    out = []
    for case in load_cases():
        reason = known_failure(case.case_id, "postgres")
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(case, id=f"postgres-{case.case_id}", marks=marks))
    return out


@pytest.fixture(scope="module")
def conformance_store(postgres_server: Any) -> Iterator[Any]:
    """A store whose schema is made once for the module; its tables are emptied per case."""
    from durable_ext.backends import open_store

    store: Any = open_store(f"{postgres_server.url}?schema=c{uuid.uuid4().hex[:12]}&init=true")
    store.secret()  # creates the schema
    yield store
    store.close()


@pytest.fixture
def empty_url(conformance_store: Any) -> str:
    s = conformance_store.schema
    tables = ("executions", "operations", "events", "due")
    # DELETE, not TRUNCATE: a few rows each, and no new files for the server to make
    emptying = ";".join(f'DELETE FROM "{s}".{t}' for t in tables).encode()
    conformance_store._run("emptying the store", lambda conn: conn.execute(emptying, prepare=False))
    assert conformance_store.list_executions().headers == []
    url: str = conformance_store.options.display
    return url


@pytest.mark.parametrize("case", _params())
def test_case(case: Any, empty_url: str) -> None:
    def make(handler: CaseHandler, _workdir: Path) -> Driver:
        return RuntimeDriver(empty_url, handler)

    result = run_case(case, make)
    assert result.passed, summarize(result)
