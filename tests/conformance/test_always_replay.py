"""Every conformance case keeps its verdict when its handler runs under always-replay.

Always-replay cuts each invocation after every operation and runs the handler again from
the top; the suite's matcher must still accept every history and result (callbacks, maps,
parallels, retries, chained invokes...), and a replay must never diverge. Two deliberate
differences: case 3-11 counts the lines its child body writes on every run, and runs
are more under always-replay; the local log sink (``conformance/logsink.py``, test code)
stamps its lines with the time and finds its directory in the environment outside steps,
which is what always-replay reports, and only that.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conformance import harness
from conformance.cases import load_cases
from conformance.handlers import REGISTRY
from durable_ext.testing.session import TestSession, wrap_handler

LOGS_COUNTED_PER_RUN = {"3-11"}
_LEAF_STARTS = {"StepStarted", "WaitStarted", "CallbackStarted", "ChainedInvokeStarted"}


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[TestSession]]:
    made: list[TestSession] = []
    resolve = harness._resolve

    def under_always_replay(path: str) -> Any:
        session = TestSession(always_replay=True)
        made.append(session)
        return wrap_handler(resolve(path), session)

    monkeypatch.setattr(harness, "_resolve", under_always_replay)
    yield made


CASES = [c for c in load_cases() if REGISTRY[c.case_id].isolation == "thread"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.case_id)
def test_case_under_always_replay(case: Any, sessions: list[TestSession]) -> None:
    result = harness.run_case(case, harness.runtime_driver("memory://"))
    if case.case_id in LOGS_COUNTED_PER_RUN:
        assert not result.passed
        assert all(e.startswith("logs: ") for e in result.errors), result.errors
    else:
        assert result.passed, harness.summarize(result)
    # one run per operation at least: each run may start one step, wait, callback or invoke
    assert result.history is not None
    leaves = [e for e in result.history["Events"] if e["EventType"] in _LEAF_STARTS]
    assert sessions[0].runs >= len(leaves), (sessions[0].runs, len(leaves))
    mismatches = [f for s in sessions for f in s.findings]
    assert not mismatches, mismatches
    places = {c.location.file.rsplit("/", 1)[-1] for s in sessions for c in s.culprits}
    assert places <= {"logsink.py"}, places
