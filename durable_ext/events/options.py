"""The event-sink options of ``durable-ext worker`` and ``durable-ext serve``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from durable_ext.errors import ConfigError
from durable_ext.events.sinks import EventSink, SqsSink, WebhookSink

__all__ = ["add_event_options", "sinks_from_args"]


def add_event_options(p: argparse.ArgumentParser) -> None:
    """Add the ``--event-webhook``, ``--event-secret-env`` and ``--event-sqs*`` options."""
    p.add_argument("--event-webhook", action="append", default=[], metavar="URL",
                   help="POST status-change events here (repeatable)")
    p.add_argument("--event-secret-env", default=None, metavar="VAR",
                   help="environment variable holding the webhooks' HMAC secret")
    p.add_argument("--event-sqs", action="append", default=[], metavar="QUEUE_URL",
                   help="send status-change events to this SQS queue (repeatable)")
    p.add_argument("--event-endpoint-url", default=None, metavar="URL",
                   help="SQS endpoint (an emulator); default: AWS")


def sinks_from_args(args: Any) -> list[EventSink]:
    """Build the sinks the options ask for (none: no events are delivered here)."""
    secret: str | None = None
    if args.event_secret_env:
        secret = os.environ.get(args.event_secret_env)
        if not secret:
            raise ConfigError(f"--event-secret-env {args.event_secret_env}: the variable is "
                              "not set or empty")
    sinks: list[EventSink] = [WebhookSink(url, secret=secret) for url in args.event_webhook]
    sinks += [SqsSink(q, endpoint_url=args.event_endpoint_url) for q in args.event_sqs]
    return sinks
