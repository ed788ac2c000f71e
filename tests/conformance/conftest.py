"""Without the official suite installed, only test_suite_installed.py is collected, and it
fails with the command that installs the suite (instead of an import error per module)."""

from __future__ import annotations

import importlib.util

SUITE_INSTALLED = importlib.util.find_spec("aws_durable_execution_conformance_tests") is not None

collect_ignore = [] if SUITE_INSTALLED else [
    "test_conformance.py", "test_service_model.py", "test_replay_clean.py",
    "test_always_replay.py"]
# the OpenTelemetry suite: test_suite_installed.py says how to install it when it is missing
OTEL_SUITE_INSTALLED = SUITE_INSTALLED and importlib.util.find_spec(
    "aws_durable_execution_conformance_tests_otel") is not None
if not OTEL_SUITE_INSTALLED:
    collect_ignore.append("test_otel_conformance.py")
