"""Every status transition of the service, per operation type and of the execution.

* :mod:`~durable_ext.engine.rules.updates`: what each checkpointed update does to its
  operation, by operation type;
* :mod:`~durable_ext.engine.rules.completions`: completions from outside an invocation
  (callbacks, chained-invoke outcomes, waits and retry delays coming due);
* :mod:`~durable_ext.engine.rules.execution`: the execution's own transitions (an
  invocation's outcome, closing, timing out);
* :mod:`~durable_ext.engine.rules.pausing`: pause and resume, and invocations owed while
  paused.

The engine only sequences them into commits.
"""

from durable_ext.engine.rules.completions import (
    complete_callback,
    complete_chained,
    fire_due_wakes,
    fire_timer,
    heartbeat_callback,
    mark_changed,
    require_waiting_callback,
)
from durable_ext.engine.rules.execution import close_execution, end_invocation
from durable_ext.engine.rules.pausing import (
    deadline_of,
    enter_paused,
    request_pause,
    resume,
    schedule_invocation,
)
from durable_ext.engine.rules.updates import (
    TERMINAL_OP,
    ChainedTarget,
    apply_update,
    set_status,
    target_name,
)

__all__ = [
    "TERMINAL_OP",
    "ChainedTarget",
    "apply_update",
    "close_execution",
    "complete_callback",
    "complete_chained",
    "deadline_of",
    "end_invocation",
    "enter_paused",
    "fire_due_wakes",
    "fire_timer",
    "heartbeat_callback",
    "mark_changed",
    "request_pause",
    "require_waiting_callback",
    "resume",
    "schedule_invocation",
    "set_status",
    "target_name",
]
