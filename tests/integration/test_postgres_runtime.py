"""The runtime's integration scenarios (tests/integration/test_runtime.py) on PostgreSQL.

The scenario tests are imported as they are; only the ``backend`` fixture they use is
replaced, by a fresh schema on the session's real PostgreSQL server.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from runtime_scenarios import backend_scenarios
from test_runtime import rt  # noqa: F401  (the fixture the scenarios use)

pytestmark = pytest.mark.integration

globals().update(backend_scenarios())


@pytest.fixture
def backend(postgres_server: Any) -> str:
    return f"{postgres_server.url}?schema=rt{uuid.uuid4().hex[:10]}&init=true"
