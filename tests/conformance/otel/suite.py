"""Runs the official OpenTelemetry conformance suite on the local runtime.

``aws-durable-execution-conformance-tests-otel`` adds three requirement suites to the core
runner (``otel-invocation``, ``otel-execution``: 20 cases each; ``otel-long-running``: 4,
judged once per view). For each case this does what the core runner does for an
extension suite: run the case with the core suite's own machinery (the harness's
``PollingValidator`` run, history and result matched by ``EventHistoryMatcher``), then
call the extension's own ``validate_telemetry`` hook with a ``ValidationContext``; the hook
discovers its backend through the entry-point group, and ``durable-ext`` (this
project's entry point) answers with the spans :data:`scenarios.TRACES` kept.

Cases run on the real clock: the plugin stamps operation spans with the checkpointed
timestamps and everything else with the wall clock, and the suite checks their order, so
a virtual clock (which stands still between jumps) would misorder them. The scenario
functions have an execution timeout of 20 seconds, as a deployed function has one:
``wait-interrupted`` waits past it.
"""

from __future__ import annotations

import json
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aws_durable_execution_conformance_tests.extensions import ValidationContext
from aws_durable_execution_conformance_tests.variables import PlaceholderContext
from aws_durable_execution_conformance_tests_otel.extension import OtelExtension

from conformance import harness
from conformance.cases import Case
from conformance.otel import scenarios
from durable_ext.testing.otel_backend import NAME, serve

EXECUTION_TIMEOUT_S = 20
VIEWS = ("invocation", "execution")


@dataclass(frozen=True)
class OtelCase:
    """One requirement file and the view it is judged on."""

    case_id: str
    suite: str
    view: str
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.case_id}[{self.view}]" if self.suite == "otel-long-running" \
            else self.case_id


@dataclass
class OtelResult:
    case: OtelCase
    errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors


def cases() -> list[OtelCase]:
    """Every case of the installed suite, long-running ones once per view."""
    out: list[OtelCase] = []
    for suite in OtelExtension().requirement_suites():
        for path in sorted(Path(suite.root).glob("*.yaml"),
                           key=lambda p: int(p.stem.rsplit("-", 1)[1])):
            data = yaml.safe_load(path.read_text())
            if suite.name == "otel-long-running":
                out += [OtelCase(path.stem, suite.name, v, data) for v in VIEWS]
            else:
                out.append(OtelCase(path.stem, suite.name, suite.name.split("-", 1)[1], data))
    return out


def _requirement(case: OtelCase) -> dict[str, Any]:
    data = dict(case.data)
    if case.suite == "otel-long-running" and case.view == "execution":
        data["TelemetryAssertions"] = data.get("ExecutionTelemetryAssertions", {})
    return data


class OtelDriver(harness.RuntimeDriver):
    """The harness's runtime driver with every scenario function registered."""

    def __init__(self, backend: str) -> None:
        from durable_ext.runtime import Runtime

        self.runtime = Runtime(backend)
        for name, handler in scenarios.FUNCTIONS.items():
            self.runtime.register(name, handler)

    def start(self, function_name: str, payload: str) -> str:
        return str(self.runtime.start(function_name, input=payload,
                                      execution_timeout=EXECUTION_TIMEOUT_S))


def run(case: OtelCase, backend: str = "memory://") -> OtelResult:
    """Run ``case`` and judge history, result and trace with the suite's own code."""
    harness.ensure_session()
    serve(scenarios.TRACES)
    scenarios.TRACES.clear()
    result = OtelResult(case)
    requirement = _requirement(case)
    context = PlaceholderContext()
    context.resolve_variables(requirement.get("Variables"))
    payload = json.dumps(context.substitute(requirement.get("Input")))
    with tempfile.TemporaryDirectory(prefix=f"otel-{case.case_id}-") as tmp:
        url = f"file://{Path(tmp) / 'store'}" if backend.startswith("file") else backend
        driver = OtelDriver(url)
        try:
            started = int(time.time() * 1000)
            arn = driver.start(f"otel-{case.view}", payload)
            core = Case(case.case_id, case.suite, Path(tmp), requirement)
            run_ = harness._run_async if core.is_async else harness._run_sync
            result.errors = run_(core, driver, arn, context)
            if result.errors:
                return result
            hook = ValidationContext(
                description_id=case.key, function_name=f"otel-{case.view}",
                execution_arn=arn, invocation_started_at_ms=started,
                invocation_finished_at_ms=int(time.time() * 1000), region="us-east-1",
                language="python", requirement=requirement,
                execution_history=driver.history(arn), output_dir=Path(tmp) / "out",
                placeholders={**context.bindings, "EXECUTION_ARN": arn},
                options={"otel_backend": NAME,
                         "otel_service_name": "durable-execution-conformance",
                         "otel_poll_timeout": 0.2, "otel_poll_interval": 0.05,
                         "otel_poll_attempts": 2},
            )
            result.errors = list(OtelExtension().validate_telemetry(hook))
        except Exception as exc:  # a runtime error is a failed case, reported with its trace
            result.errors = [f"harness: {type(exc).__name__}: {exc}",
                             "".join(traceback.format_exception(exc, limit=-6))]
        finally:
            driver.close()
    return result


def report(backend: str = "memory://") -> dict[str, list[OtelResult]]:
    """Every case, grouped by suite."""
    out: dict[str, list[OtelResult]] = {}
    for case in cases():
        out.setdefault(case.suite, []).append(run(case, backend))
    return out


if __name__ == "__main__":
    import sys

    results = report(sys.argv[1] if len(sys.argv) > 1 else "memory://")
    for suite, rs in results.items():
        print(f"{suite}: {sum(r.passed for r in rs)}/{len(rs)}")
        for r in rs:
            if not r.passed:
                print(f"  {r.case.key}: {r.errors[:3]}")
