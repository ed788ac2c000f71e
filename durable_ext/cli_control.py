"""``durable-ext pause|resume|delete``: the control-plane requests that change a status.

They work on every control plane: a local store (``--backend file://...``), a
``durable-ext serve`` or AWS Lambda (``--backend lambda://FUNCTION``). ``pause`` and
``resume`` report the status afterwards; after ``resume`` of a local store the execution
is run on until it waits again (``--no-run`` leaves that to a worker).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from durable_ext.cli import (
    EXIT_OK,
    EXIT_USAGE,
    _common,
    _find_arn,
    _handler_output_to_stderr,
    _print_json,
    _report,
    _runtime,
)
from durable_ext.errors import ConflictError

__all__ = ["register"]


def _refusable(cmd: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Exit 2 with the reason (no traceback) when the execution's status refuses the request."""

    def run(args: argparse.Namespace) -> int:
        try:
            return cmd(args)
        except ConflictError as exc:
            print(f"durable-ext: error: {exc}", file=sys.stderr)
            return EXIT_USAGE

    run.__doc__ = cmd.__doc__
    return run


@_refusable
def cmd_pause(args: argparse.Namespace) -> int:
    """``pause ARN|NAME [--reason TEXT] [--client-token T] [--no-timeout-pause]``."""
    with _runtime(args) as rt:
        arn = _find_arn(rt, args.execution)
        rt.pause(arn, args.reason, args.client_token, not args.no_timeout_pause)
        return _report(rt, arn, args.json)


@_refusable
def cmd_resume(args: argparse.Namespace) -> int:
    """``resume ARN|NAME [--reason TEXT] [--client-token T]``, then run it on."""
    with _runtime(args) as rt:
        arn = _find_arn(rt, args.execution)
        rt.resume(arn, args.reason, args.client_token)
        if not args.no_run:
            with _handler_output_to_stderr(args):
                rt.settle(arn, args.timeout)
        return _report(rt, arn, args.json)


@_refusable
def cmd_delete(args: argparse.Namespace) -> int:
    """``delete ARN|NAME``: only of an ended execution."""
    with _runtime(args) as rt:
        arn = _find_arn(rt, args.execution)
        out = rt.delete(arn)
        when = out["DeletionRequestTimestamp"]
        if args.json:
            _print_json({"DurableExecutionArn": arn, "DeletionRequestTimestamp": when})
        else:
            print(f"deleted {arn} (requested {when.isoformat()})")
        return EXIT_OK


def _control(subparsers: Any, name: str, help: str) -> Any:
    # What PauseDurableExecution and ResumeDurableExecution both take.
    p = subparsers.add_parser(name, help=help)
    p.add_argument("execution", metavar="ARN|NAME")
    p.add_argument("--reason", default=None, help="recorded in the history")
    p.add_argument("--client-token", default=None, help="makes a repeated request a no-op")
    return p


def register(subparsers: Any) -> None:
    """Add ``pause``, ``resume`` and ``delete``."""
    p = _control(subparsers, "pause", "pause a running execution")
    p.add_argument("--no-timeout-pause", action="store_true",
                   help="keep the execution timeout running while paused")
    _common(p)
    p.set_defaults(func=cmd_pause)

    p = _control(subparsers, "resume", "resume a paused execution")
    p.add_argument("--no-run", action="store_true",
                   help="do not run the execution on here after resuming it")
    p.add_argument("--timeout", type=float, default=300.0)
    _common(p)
    p.set_defaults(func=cmd_resume)

    p = subparsers.add_parser("delete", help="delete an ended execution and its records")
    p.add_argument("execution", metavar="ARN|NAME")
    _common(p)
    p.set_defaults(func=cmd_delete)
