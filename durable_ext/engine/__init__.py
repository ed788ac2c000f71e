"""The durable-execution service's semantics, pure and storage-agnostic.

* :mod:`~durable_ext.engine.engine`: :class:`Engine`, which sequences each call into one
  compare-and-set commit on a :class:`~durable_ext.backends.store.Store`;
* :mod:`~durable_ext.engine.rules`: every status transition, per operation type and of
  the execution;
* :mod:`~durable_ext.engine.validation`: the checkpoint validation table, names, inputs;
* :mod:`~durable_ext.engine.state`: the engine's typed records (state, lease, due kinds
  and keys);
* :mod:`~durable_ext.engine.visibility` and :mod:`~durable_ext.engine.views`: what the
  handler and the control plane see;
* :mod:`~durable_ext.engine.tokens`: MACed callback ids and checkpoint tokens;
* :mod:`~durable_ext.engine.history` and :mod:`~durable_ext.engine.mutation`: event
  builders and the working copy of one commit.

The engine knows nothing of Redis, files or the SDK's types: only the records a store
keeps.
"""

from durable_ext.engine.engine import (
    MAX_EXECUTION_TIMEOUT,
    CheckpointResult,
    Engine,
    InvocationInput,
)
from durable_ext.engine.state import DueKey, DueKind, EngineState, Lease, ParentLink
from durable_ext.engine.validation import normalize_input, validate_name

__all__ = [
    "MAX_EXECUTION_TIMEOUT",
    "CheckpointResult",
    "DueKey",
    "DueKind",
    "Engine",
    "EngineState",
    "InvocationInput",
    "Lease",
    "ParentLink",
    "normalize_input",
    "validate_name",
]
