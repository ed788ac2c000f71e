"""Cases that cannot pass yet, with the precise reason; the tests mark them strict xfail.

A case fails if the suite rejects it or if the runtime's responses for it do not fit the
Lambda service model (``service_model.check_output``).

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
