"""The official conformance suite, every case on the memory and the file backend.

Each case runs its handler on a fresh ``Runtime`` with a virtual clock (in-process, except the
three cases that crash the process) and is judged by the suite's own matcher, result rule and
log validator (see harness.py); its GetDurableExecutionHistory and GetDurableExecution
responses must also fit botocore's Lambda service model.  Cases that cannot pass yet are
listed in known_failures.py and run as strict xfail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from conformance.cases import CATEGORIES, load_cases
from conformance.handlers import REGISTRY
from conformance.harness import run_case, runtime_driver, summarize
from conformance.known_failures import KNOWN_FAILURES, known_failure
from conformance.service_model import check_output

BACKENDS = {"memory": "memory://", "file": "file://"}


def _params() -> Iterator[Any]:
    for case in load_cases():
        for backend in BACKENDS:
            reason = known_failure(case.case_id, backend)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(case, backend, id=f"{backend}-{case.case_id}", marks=marks)


@pytest.mark.parametrize(("case", "backend"), list(_params()))
def test_case(case: Any, backend: str) -> None:
    result = run_case(case, runtime_driver(BACKENDS[backend]))
    assert result.passed, summarize(result)
    # Beyond what the YAML lists: every response must be one a boto3 client could receive.
    assert result.history is not None
    assert result.execution is not None
    problems = check_output("GetDurableExecutionHistory", result.history)
    problems += check_output("GetDurableExecution", result.execution)
    assert not problems, "responses outside the Lambda service model:\n" + "\n".join(problems)


def test_every_case_has_a_handler() -> None:
    ids = {case.case_id for case in load_cases()}
    assert len(ids) == 155
    assert {case.category for case in load_cases()} == set(CATEGORIES)
    assert set(REGISTRY) == ids
    assert set(KNOWN_FAILURES) <= ids


def test_crash_cases_run_out_of_process() -> None:
    crashing = {cid for cid, h in REGISTRY.items() if h.isolation == "process"}
    assert crashing == {"1-17", "1-18", "3-12"}


@pytest.mark.parametrize(
    ("case_id", "wrong_handler_of", "expected_error"),
    [
        # The unnamed step of 1-1 lacks the Name 1-2 asserts.
        ("1-2", "1-1", "Name: key missing"),
        # 4-12 waits after the callback; 4-9 expects the wait before it.
        ("4-9", "4-12", "expected 'WaitStarted'"),
        # 1-1 logs nothing; 1-7 asserts two log lines.
        ("1-7", "1-1", "logs: ExpectedLogs[0]"),
        # 6-4 starts counting at 5; 6-1 expects the state 1 first.
        ("6-1", "6-4", "Payload: expected '1', got '6'"),
    ],
)
def test_harness_rejects_a_wrong_handler(
    monkeypatch: pytest.MonkeyPatch, case_id: str, wrong_handler_of: str, expected_error: str
) -> None:
    case = next(c for c in load_cases() if c.case_id == case_id)
    wrong = dataclasses.replace(REGISTRY[case_id], handler=REGISTRY[wrong_handler_of].handler)
    monkeypatch.setitem(REGISTRY, case_id, wrong)
    result = run_case(case, runtime_driver("memory://"))
    assert not result.passed
    assert any(expected_error in error for error in result.errors), result.errors
