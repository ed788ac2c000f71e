"""The runtime's integration scenarios (tests/integration/test_runtime.py) on the DynamoDB store.

The scenario tests are imported as they are; only the ``backend`` fixture they use is
replaced, by a fresh table on the session's moto server.
"""

from __future__ import annotations

from typing import Any

import pytest
from runtime_scenarios import backend_scenarios
from test_runtime import rt  # noqa: F401  (the fixture the scenarios use)

from durable_ext.backends._dynamodb_schema import create_table

pytestmark = pytest.mark.integration

globals().update(backend_scenarios())


@pytest.fixture
def backend(moto_serial_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    table = moto_serial_server.unique("rt")
    create_table(moto_serial_server.client("dynamodb"), table)
    return f"dynamodb://{table}?region=us-east-1&endpoint_url={moto_serial_server.endpoint_url}"
