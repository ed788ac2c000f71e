r"""``durable-ext worker``: run one fleet worker until SIGTERM.

Example::

    durable-ext worker --backend redis://cache:6379/0 \\
        --handlers orders=shop.handlers:orders shop.billing:handler --concurrency 8
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from durable_ext.errors import ConfigError
from durable_ext.events.options import add_event_options

__all__ = ["main", "register"]


def register(subparsers: Any) -> None:
    """Add the ``worker`` subcommand."""
    p = subparsers.add_parser(
        "worker",
        help="run a fleet worker on a shared backend",
        description="Claim and run durable executions and timers from a shared backend "
        "(Redis, DynamoDB or PostgreSQL) until SIGTERM.",
    )
    p.add_argument(
        "--backend",
        required=True,
        help="store URL, e.g. redis://host:6379/0, dynamodb://TABLE?region=eu-west-1 or "
        "postgres://user@host:5432/db?schema=durable",
    )
    p.add_argument(
        "--handlers",
        nargs="+",
        required=True,
        metavar="[NAME=]MODULE[:HANDLER]",
        help="durable handlers to serve; NAME defaults to the module's name (plus -HANDLER "
        "unless it is handler), as for `durable-ext run`",
    )
    p.add_argument(
        "--plain",
        nargs="*",
        default=[],
        metavar="[NAME=]MODULE[:HANDLER]",
        help="plain (non-durable) functions that chained invokes may call",
    )
    p.add_argument("--concurrency", type=int, default=1, help="invocations at once (default 1)")
    p.add_argument("--lease", type=float, default=30.0, help="lease seconds (default 30)")
    p.add_argument(
        "--skew-margin",
        type=float,
        default=5.0,
        help="seconds past a lease deadline before taking over (default 5)",
    )
    p.add_argument("--poll", type=float, default=0.1, help="idle poll interval (default 0.1 s)")
    p.add_argument(
        "--idle-wait",
        type=float,
        default=5.0,
        help="on a store that wakes workers (PostgreSQL), the longest idle sleep without a "
        "wake-up (default 5 s)",
    )
    p.add_argument("--isolation", choices=("inline", "process"), default="inline")
    p.add_argument("--invocation-timeout", type=float, default=900.0)
    p.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds running invocations get to finish on SIGTERM (default 30)",
    )
    p.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-id", default=None)
    p.add_argument("--log-level", default="INFO")
    add_event_options(p)
    p.add_argument("--alias", action="append", default=[], metavar="FUNCTION:ALIAS=VERSION",
                   help="resolve chained invokes of FUNCTION:ALIAS to VERSION (repeatable)")
    p.set_defaults(func=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    """Run a worker with the parsed arguments; returns the exit code."""
    from durable_ext.fleet._signals import defer_stop_signals

    # a SIGTERM while the store opens and the handlers import must stop the worker cleanly
    defer_stop_signals()
    from durable_ext.events.options import sinks_from_args
    from durable_ext.fleet.worker import Worker
    from durable_ext.runtime.handlers import load_handlers
    from durable_ext.runtime.versions import parse_alias_spec

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Imported before the store opens: a bad target is a one-line error, exit code 2.
    durable = load_handlers(args.handlers)
    plain = load_handlers(args.plain, taken={d.name for d in durable})
    worker = Worker(
        args.backend,
        concurrency=args.concurrency,
        lease_seconds=args.lease,
        skew_margin=args.skew_margin,
        poll_interval=args.poll,
        idle_wait=args.idle_wait,
        isolation=args.isolation,
        invocation_timeout=args.invocation_timeout,
        shutdown_grace=args.grace,
        worker_id=args.worker_id,
        event_sinks=sinks_from_args(args),
    )
    for item in durable:
        worker.register(item.name, item.handler)
    for item in plain:
        worker.register(item.name, item.handler, durable=False)
    for spec in args.alias:
        worker.runtime.alias(*parse_alias_spec(spec))
    worker.install_signal_handlers()
    try:
        stats = worker.run(max_seconds=args.max_seconds)
    finally:
        worker.close()
    print(" ".join(f"{k}={v}" for k, v in stats.as_dict().items()), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m durable_ext.fleet worker ...`` (same as ``durable-ext worker ...``)."""
    parser = argparse.ArgumentParser(prog="durable-ext")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"durable-ext: error: {exc}", file=sys.stderr)
        return 2
    return code
