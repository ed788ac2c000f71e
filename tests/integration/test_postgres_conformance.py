"""The official conformance suite on the PostgreSQL store: every case, as on the file backend.

Each case runs on a fresh schema of the session's real PostgreSQL server, through the
conformance harness's own driver and judged by the suite's matcher.
"""

from __future__ import annotations

import uuid
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


@pytest.mark.parametrize("case", _params())
def test_case(case: Any, postgres_server: Any) -> None:
    def make(handler: CaseHandler, _workdir: Path) -> Driver:
        schema = f"c{uuid.uuid4().hex[:12]}"
        return RuntimeDriver(f"{postgres_server.url}?schema={schema}&init=true", handler)

    result = run_case(case, make)
    assert result.passed, summarize(result)
