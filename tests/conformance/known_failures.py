"""Cases that cannot pass yet, with the precise reason; the tests mark them strict xfail.

Keys are case ids; a value is either a reason for every backend or a mapping backend name
(``memory``, ``file``) -> reason.  A case listed here that starts passing fails the test run
(strict xfail), so this table cannot go stale.  Empty: every case passes on both backends.
"""

from __future__ import annotations

KNOWN_FAILURES: dict[str, str | dict[str, str]] = {}


def known_failure(case_id: str, backend: str) -> str | None:
    """The reason ``case_id`` is expected to fail on ``backend``, or None."""
    entry = KNOWN_FAILURES.get(case_id)
    if isinstance(entry, dict):
        return entry.get(backend)
    return entry


# Runtime responses checked against botocore's Lambda service model (test_service_model.py).
# Gap id -> (text of the problem check_output reports, explanation).  Empty: the runtime's
# responses fit the model (G-2 and G-3 of RUNTIME_GAPS.md were fixed).
MODEL_GAP_TEXT: dict[str, tuple[str, str]] = {}
# Case id -> the gaps its responses show today (RUNTIME_GAPS.md).
MODEL_GAPS: dict[str, tuple[str, ...]] = {}
