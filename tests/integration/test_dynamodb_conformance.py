"""The official conformance suite on the DynamoDB store: every case, as on the file backend.

Each case runs on a fresh table of the session's moto server (one request at a time, see
``SerialMotoServer``), through the conformance harness's own driver and judged by the
suite's matcher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conformance.cases import load_cases
from conformance.handlers import CaseHandler
from conformance.harness import Driver, RuntimeDriver, run_case, summarize
from conformance.known_failures import known_failure

from durable_ext.backends._dynamodb_schema import create_table

pytestmark = pytest.mark.integration


def _params() -> list[Any]:
    out = []
    for case in load_cases():
        reason = known_failure(case.case_id, "dynamodb")
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(case, id=f"dynamodb-{case.case_id}", marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_case(case: Any, moto_serial_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    def make(handler: CaseHandler, _workdir: Path) -> Driver:
        # a table per case: moto's transactions copy the whole table they write to
        table = moto_serial_server.unique("conf")
        create_table(moto_serial_server.client("dynamodb"), table)
        url = f"dynamodb://{table}?region=us-east-1&endpoint_url={moto_serial_server.endpoint_url}"
        return RuntimeDriver(url, handler)

    result = run_case(case, make)
    assert result.passed, summarize(result)
