"""One handler per conformance case, keyed by case id (see :data:`REGISTRY`).

Each category of the suite has its own module; importing this package registers them all.
"""

from conformance.handlers import (  # noqa: F401  (imported for their registrations)
    callback,
    child,
    invoke,
    map,
    parallel,
    plugin,
    step,
    wait,
    wait_for_callback,
    wait_for_condition,
)
from conformance.handlers._registry import REGISTRY, CaseHandler, Target

__all__ = ["REGISTRY", "CaseHandler", "Target"]
