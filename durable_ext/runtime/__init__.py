"""The one runtime: drives ``@durable_execution`` handlers on any store, and the control plane.

Example:
    >>> from durable_ext.runtime import Runtime, VirtualClock
    >>> with Runtime(backend="memory://", clock=VirtualClock()) as rt:
    ...     pass

"""

from __future__ import annotations

from durable_ext.errors import ExecutionAlreadyStartedError
from durable_ext.runtime.client import EngineClient
from durable_ext.runtime.clock import Clock, RealClock, VirtualClock
from durable_ext.runtime.control import ControlPlane, open_control_plane
from durable_ext.runtime.runtime import Runtime

__all__ = [
    "Clock",
    "ControlPlane",
    "EngineClient",
    "ExecutionAlreadyStartedError",
    "RealClock",
    "Runtime",
    "VirtualClock",
    "open_control_plane",
]
