"""Official conformance cases judged through the suite's own boto3 path against the HTTP API.

What the suite does against AWS, with a boto3 ``lambda`` client pointed at our server:
the execution is started with ``Invoke`` and its ARN read from the
``X-Amz-Durable-Execution-Arn`` header; synchronous cases fetch the history with the
suite's ``get_execution_history`` and check it with ``EventHistoryMatcher`` and
``_validate_execution_result``; asynchronous cases run under the suite's
``PollingValidator``, which polls history and sends callbacks through the same client.
Time is virtual: the validator's sleeps advance the server's clock (the test drives the
runtime, so nothing races it). Cases whose handler crashes its process run in worker
processes that checkpoint over HTTP.

Every case runs here too (about 45 s); ``DURABLE_EXT_HTTP_CONFORMANCE=sample`` keeps two
cases per category plus the crash cases, for a quick check of the HTTP path.
"""

from __future__ import annotations

import contextlib
import json
import os

import boto3
import pytest
from botocore.config import Config

pytest.importorskip("aws_durable_execution_conformance_tests",
                    reason="the official conformance suite is not installed "
                           "(tests/conformance/test_suite_installed.py says how)")

from aws_durable_execution_conformance_tests import validate
from aws_durable_execution_conformance_tests.callback import CallbackAction
from aws_durable_execution_conformance_tests.history import EventHistoryMatcher
from aws_durable_execution_conformance_tests.validate import (
    AsyncValidationConfig,
    PollingValidator,
    _validate_execution_result,
)
from aws_durable_execution_conformance_tests.variables import PlaceholderContext
from conformance import harness
from conformance.cases import CATEGORIES, Case, load_cases
from conformance.handlers import REGISTRY

from durable_ext.http import LocalService, ServerThread

pytestmark = pytest.mark.integration

#: with DURABLE_EXT_HTTP_CONFORMANCE=sample, only this many cases per category (plus the
#: crash cases) are judged through HTTP; by default every case is
PER_CATEGORY = 2


def _sample() -> list[Case]:
    cases = load_cases()
    if os.environ.get("DURABLE_EXT_HTTP_CONFORMANCE") != "sample":
        return cases
    picked = [c for cat in CATEGORIES
              for c in [x for x in cases if x.category == cat][:PER_CATEGORY]]
    picked += [c for c in cases if REGISTRY[c.case_id].isolation == "process"
               and c not in picked]
    return picked


class _Clock:
    """What the harness's virtual-time switch needs: ``advance`` runs the server's timers."""

    def __init__(self, service: LocalService) -> None:
        self.service = service

    def advance(self, seconds: float) -> None:
        self.service.runtime.run_until_idle(max_advance=seconds)


def _service(case: Case) -> LocalService:
    handler = REGISTRY[case.case_id]
    svc = LocalService("memory://", virtual_time=True)
    if handler.isolation == "process":
        svc.register(handler.function_name, handler.handler, isolation="http")
    else:
        svc.register(handler.function_name, harness._resolve(handler.handler))
    for tgt in handler.targets:
        svc.register(tgt.function_name, harness._resolve(tgt.handler), durable=tgt.durable)
    return svc


@pytest.mark.parametrize("case", _sample(), ids=lambda c: c.case_id)
def test_case_through_boto3_and_the_http_api(case: Case) -> None:
    harness.ensure_session()
    context = PlaceholderContext()
    context.resolve_variables(case.data.get("Variables"))
    payload = json.dumps(context.substitute(case.data.get("Input")))
    handler = REGISTRY[case.case_id]
    service = _service(case)
    with ServerThread(service, drive=False) as server:
        client = boto3.client(
            "lambda", endpoint_url=server.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}, read_timeout=120))
        res = client.invoke(FunctionName=handler.function_name, InvocationType="Event",
                            Qualifier="$LATEST", Payload=payload.encode())
        arn = res["ResponseMetadata"]["HTTPHeaders"]["x-amz-durable-execution-arn"]
        assert arn == res["DurableExecutionArn"]
        if case.is_async:
            validator = PollingValidator(
                lambda_client=client,
                config=AsyncValidationConfig.from_dict(case.data.get("AsyncConfig", {})),
                context=context)
            actions = [CallbackAction.from_dict(a) for a in case.data.get("CallbackActions", [])]
            with harness._virtual_time(_Clock(service)), \
                    contextlib.redirect_stdout(harness._Discard()):
                outcome = validator.validate(
                    execution_arn=arn,
                    expected_events=case.data.get("ExpectedExecutionHistory", []),
                    expected_result=case.data.get("ExpectedResult"),
                    callback_actions=actions)
            errors = list(outcome.errors)
        else:
            service.runtime.run_until_idle()
            history = validate.get_execution_history(arn, client)
            assert history is not None, "GetDurableExecutionHistory failed"
            match = EventHistoryMatcher(context=context).match(
                case.data.get("ExpectedExecutionHistory") or [], history.get("Events", []))
            errors = list(match.errors)
            expected_result = case.data.get("ExpectedResult")
            if not errors and expected_result:
                errors = _validate_execution_result(
                    execution_arn=arn, expected_result=expected_result,
                    lambda_client=client, context=context)
        if not errors:
            errors = harness._validate_logs(case, arn, context)
    assert not errors, f"case {case.case_id}: {errors}"


def test_sample_covers_every_category_and_the_crash_cases() -> None:
    sample = _sample()
    assert {c.category for c in sample} == set(CATEGORIES)
    assert any(REGISTRY[c.case_id].isolation == "process" for c in sample)
    assert any(c.is_async for c in sample)
