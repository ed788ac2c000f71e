"""The official OpenTelemetry conformance suite (44 cases) on the local runtime.

Every case on the memory store (long-running ones on both views), a sample on the file
store; each is judged by the suite's own history matcher and its own ``validate_trace``,
reached through its extension hook and the ``durable-ext`` backend entry point (see
otel/suite.py). Cases run on the real clock, so this module takes a few minutes.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from conformance.otel import suite

CASES = suite.cases()
FILE_SAMPLE = {"otel-execution-3", "otel-execution-10", "otel-invocation-11",
               "otel-execution-14"}


def test_the_suite_has_its_44_cases_and_finds_the_backend() -> None:
    assert len({(c.suite, c.case_id) for c in CASES}) == 44
    names = {ep.name for ep in entry_points(
        group="aws_durable_execution_conformance_tests_otel.backends")}
    assert "durable-ext" in names


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_case_on_memory(case: suite.OtelCase) -> None:
    result = suite.run(case, "memory://")
    assert result.passed, "\n".join(result.errors)


@pytest.mark.parametrize("case", [c for c in CASES if c.case_id in FILE_SAMPLE],
                         ids=lambda c: c.key)
def test_case_on_file(case: suite.OtelCase) -> None:
    result = suite.run(case, "file://")
    assert result.passed, "\n".join(result.errors)


def test_a_broken_trace_is_failed_by_the_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    """The judge is live: with the Workflow spans withheld, the suite fails the case."""
    from durable_ext.tracing import LocalTraces

    real = LocalTraces.spans

    def without_workflow(self: LocalTraces, arn: str | None = None) -> list:  # type: ignore[type-arg]
        return [s for s in real(self, arn) if s.name != "Workflow"]

    monkeypatch.setattr(LocalTraces, "spans", without_workflow)
    (case,) = [c for c in CASES if c.case_id == "otel-execution-1"]
    result = suite.run(case, "memory://")
    assert not result.passed
    # the case's first assertion selects the Workflow span
    assert any("span_assertions[0].select matched no spans" in e for e in result.errors), \
        result.errors
