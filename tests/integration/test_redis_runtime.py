"""The runtime's integration scenarios (tests/integration/test_runtime.py) on the Redis store.

The scenario tests are imported as they are; only the ``backend`` fixture they use is
replaced, by a fresh key prefix on the session's real redis-server.
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
def backend(redis_server: Any) -> str:
    return f"{redis_server.url}?prefix=rt{uuid.uuid4().hex[:8]}:"
