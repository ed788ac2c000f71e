"""Every conformance handler replays its own recorded history clean.

Each case runs on the memory store as in test_conformance.py; its history is then replayed
against the same, unchanged handler with :func:`durable_ext.testing.replay`, from the
history alone (as from ``lambda://`` or an exported file), which must find no divergence.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.cases import load_cases
from conformance.handlers import REGISTRY
from conformance.harness import _resolve, run_case, runtime_driver, summarize
from durable_ext.testing import Recording, replay


@pytest.mark.parametrize("case", list(load_cases()), ids=lambda c: c.case_id)
def test_unchanged_handler_replays_clean(case: Any) -> None:
    result = run_case(case, runtime_driver("memory://"))
    assert result.passed, summarize(result)
    assert result.history is not None and result.execution is not None
    recording = Recording.from_events(result.history["Events"], description=result.execution)
    replayed = replay(recording, _resolve(REGISTRY[case.case_id].handler), check=False)
    assert replayed.ok, replayed.report()
    assert replayed.error is None
    # the replay reached every operation the handler sees on its next invocation
    reachable = [op for op in recording.visible_operations() if op["Type"] != "EXECUTION"]
    assert replayed.operations >= len(reachable) or replayed.stopped_at, replayed.report()
