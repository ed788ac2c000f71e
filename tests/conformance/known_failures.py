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
# Gap id -> (text of the problem check_output reports, explanation).
MODEL_GAP_TEXT: dict[str, tuple[str, str]] = {
    "G-2": (
        "ExecutionStartedDetails.ExecutionTimeout: required, missing",
        "ExecutionStartedDetails.ExecutionTimeout (required by the model) is missing",
    ),
    "G-3": (
        "CallbackSucceededDetails.Result.Payload: None is not a string",
        "CallbackSucceededDetails.Result.Payload is null for a callback completed without a result",
    ),
}
# Case id -> the gaps its responses show today (RUNTIME_GAPS.md).
MODEL_GAPS: dict[str, tuple[str, ...]] = {
    "1-12": ("G-2",),
    "2-1": ("G-2",),
    "3-4": ("G-2",),
    "4-4": ("G-2",),
    "5-5": ("G-2",),
    "6-6": ("G-2",),
    "7-15": ("G-2", "G-3"),
    "8-14": ("G-2",),
    "9-15": ("G-2",),
    "10-6": ("G-2",),
}
