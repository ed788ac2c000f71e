from __future__ import annotations

import importlib.util


def test_official_suite_is_installed() -> None:
    assert importlib.util.find_spec("aws_durable_execution_conformance_tests") is not None, (
        "the conformance suite is not installed: pip install --no-deps "
        "--ignore-requires-python aws-durable-execution-conformance-tests"
    )


def test_official_otel_suite_is_installed() -> None:
    assert importlib.util.find_spec("aws_durable_execution_conformance_tests_otel") is not None, (
        "the OpenTelemetry conformance suite is not installed: pip install --no-deps "
        "--ignore-requires-python aws-durable-execution-conformance-tests-otel "
        "(and durable-ext[otel])"
    )
