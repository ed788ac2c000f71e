"""The runtime scenarios of ``test_runtime.py``, for modules that run them on another store.

Such a module imports the scenarios and the ``rt`` fixture as they are and replaces only
the ``backend`` fixture.
"""

from __future__ import annotations

from typing import Any

import test_runtime


def backend_scenarios() -> dict[str, Any]:
    """Every scenario that runs on any backend through the ``rt`` fixture, by name."""
    return {
        name: fn
        for name, fn in vars(test_runtime).items()
        if name.startswith("test_") and "rt" in fn.__code__.co_varnames[: fn.__code__.co_argcount]
    }
