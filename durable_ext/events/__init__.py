"""Status-change events of executions: the outbox's delivery and its sinks.

Give a :class:`~durable_ext.runtime.Runtime` (or a fleet worker, or ``durable-ext
serve``) sinks and every status transition of its executions is delivered at least once,
in order per execution, shaped like the service's EventBridge "Durable Execution Status
Change" events::

    from durable_ext.events import HookSink, WebhookSink
    rt = Runtime("redis://...", event_sinks=[HookSink(print), WebhookSink(url, secret=key)])

See docs/events.md.
"""

from durable_ext.engine.outbox import DETAIL_TYPE, SOURCE, event_id, status_event
from durable_ext.events.outbox import Outbox
from durable_ext.events.sinks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EventSink,
    HookSink,
    SqsSink,
    WebhookSink,
    sign,
    verify,
)

__all__ = [
    "DETAIL_TYPE",
    "SIGNATURE_HEADER",
    "SOURCE",
    "TIMESTAMP_HEADER",
    "EventSink",
    "HookSink",
    "Outbox",
    "SqsSink",
    "WebhookSink",
    "event_id",
    "sign",
    "status_event",
    "verify",
]
