"""Runtime responses against botocore's Lambda service model, beyond what the suite asserts.

One case per category (plus 7-15, a callback completed without a result) on the memory
backend: every event of GetDurableExecutionHistory and the GetDurableExecution response must
have the model's required members, known member names, and the model's types and enums.
"""

from __future__ import annotations

import pytest

from conformance.cases import load_cases
from conformance.harness import run_case, runtime_driver, summarize
from conformance.known_failures import MODEL_GAP_TEXT, MODEL_GAPS
from conformance.service_model import check_output

SAMPLE = ("1-12", "2-1", "3-4", "4-4", "5-5", "6-6", "7-15", "8-14", "9-15", "10-6")


@pytest.mark.parametrize("case_id", SAMPLE)
def test_responses_fit_the_service_model(case_id: str) -> None:
    case = next(c for c in load_cases() if c.case_id == case_id)
    result = run_case(case, runtime_driver("memory://"))
    assert result.passed, summarize(result)
    assert result.history is not None
    assert result.execution is not None
    problems = check_output("GetDurableExecutionHistory", result.history)
    problems += check_output("GetDurableExecution", result.execution)

    gaps = MODEL_GAPS.get(case_id, ())
    known = [p for p in problems if any(MODEL_GAP_TEXT[g][0] in p for g in gaps)]
    unknown = [p for p in problems if p not in known]
    assert not unknown, "\n".join(unknown)
    fixed = [g for g in gaps if not any(MODEL_GAP_TEXT[g][0] in p for p in problems)]
    assert not fixed, f"{fixed} fixed for {case_id}: remove them from known_failures.MODEL_GAPS"
    if gaps:
        pytest.xfail("; ".join(f"RUNTIME_GAPS.md {g}: {MODEL_GAP_TEXT[g][1]}" for g in gaps))


def test_model_check_reports_what_does_not_fit() -> None:
    event = {
        "EventType": "StepSucceeded",
        "EventId": "2",
        "Surprise": 1,
        "StepSucceededDetails": {"Result": {"Payload": None}},
    }
    problems = check_output("GetDurableExecutionHistory", {"Events": [event]})
    assert problems == [
        "GetDurableExecutionHistory.Events[].EventId: '2' is not an integer",
        "GetDurableExecutionHistory.Events[].Surprise: not in the service model",
        "GetDurableExecutionHistory.Events[].StepSucceededDetails.RetryDetails: required, missing",
        "GetDurableExecutionHistory.Events[].StepSucceededDetails.Result.Payload: "
        "None is not a string",
    ]
