"""The service-model check used by test_conformance.py reports what a boto3 client could
not receive from the real service."""

from __future__ import annotations

import datetime

from conformance.service_model import check_output


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


def test_model_check_accepts_a_service_shaped_response() -> None:
    response = {
        "DurableExecutionArn": "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST/"
        "durable-execution/n/i",
        "DurableExecutionName": "n",
        "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "StartTimestamp": datetime.datetime.now(datetime.UTC),
        "Status": "SUCCEEDED",
        "Result": "1",
    }
    assert check_output("GetDurableExecution", response) == []
