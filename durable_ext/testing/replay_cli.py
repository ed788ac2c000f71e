"""``durable-ext replay``: replay recorded executions against today's handler code.

Exit codes: 0 every execution replays clean, 1 one diverges (or could not be
replayed), 2 usage error. Nothing is written to the executions replayed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["cmd_replay", "register"]

_SDK_LOGGER = "aws_durable_execution_sdk_python"


@contextlib.contextmanager
def _quiet_sdk() -> Iterator[None]:
    """Silence the SDK, which logs each refused replay as an error: the report says more."""
    sdk = logging.getLogger(_SDK_LOGGER)
    saved = sdk.level
    sdk.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        sdk.setLevel(saved)


def cmd_replay(args: argparse.Namespace) -> int:
    """Run ``replay``."""
    from durable_ext.cli import EXIT_FAILED, EXIT_OK, UsageError, _handler_output_to_stderr
    from durable_ext.cli import _print_json as print_json
    from durable_ext.live_view import printable
    from durable_ext.runtime.handlers import function_name_for, load_handler
    from durable_ext.testing.replayer import ReplayResult, replay_many

    if not args.executions and not args.all:
        raise UsageError("name executions to replay (ARN, name or history file), or --all")
    if args.executions and args.all:
        raise UsageError("give executions or --all, not both")
    handler = load_handler(args.handler)[1]
    status = None if args.status == "any" else args.status

    def show(result: ReplayResult) -> None:
        # names and payload text come from the recording: escaped, never obeyed
        if not args.json:
            print("\n".join(printable(line) for line in result.report().splitlines()),
                  flush=True)

    plane = _plane(args) if (args.all or not all(_is_file(e) for e in args.executions)) \
        else None
    with contextlib.ExitStack() as stack:
        if plane is not None:
            stack.enter_context(plane)
        stack.enter_context(_quiet_sdk())
        stack.enter_context(_handler_output_to_stderr(args))
        function = args.function
        if args.all and function is None and not str(args.backend or "").startswith("lambda:"):
            function = function_name_for(args.handler)
        report = replay_many(plane, handler, function_name=function, status=status,
                             executions=args.executions, limit=args.limit, on_result=show)
    if args.json:
        print_json({"Ok": report.ok, "Results": [r.to_dict() for r in report.results]})
    else:
        print(report.summary().rsplit("\n", 1)[-1])
    return EXIT_OK if report.ok else EXIT_FAILED


def _is_file(ref: str) -> bool:
    from durable_ext.testing.replayer import _is_file as is_file

    return is_file(ref)


def _plane(args: argparse.Namespace) -> Any:
    from durable_ext.cli import _runtime

    return _runtime(args)


def register(subparsers: Any) -> None:
    """Add ``replay``."""
    p = subparsers.add_parser(
        "replay", help="replay recorded executions against the current handler code",
        description="Replay recorded executions (an ARN or name on --backend, or a history "
        "file from `durable-ext executions export`) against --handler, with the recorded "
        "results, and report the first operation where today's code diverges. Nothing "
        "runs that the recording has not finished, and nothing is written.",
    )
    p.add_argument("executions", nargs="*", metavar="ARN|NAME|FILE")
    p.add_argument("--handler", required=True, metavar="MODULE:HANDLER",
                   help="the @durable_execution handler to replay with")
    p.add_argument("--all", action="store_true",
                   help="replay every execution of the function with --status")
    p.add_argument("--status", default="RUNNING",
                   choices=["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED", "any"],
                   help="with --all: which executions (default RUNNING: the ones a deploy "
                   "would break)")
    p.add_argument("--function", default=None,
                   help="with --all: the function (default: the handler's function name)")
    p.add_argument("--limit", type=int, default=None, help="with --all: at most N executions")
    p.add_argument("--backend", default=None,
                   help="store URL or lambda://FUNCTION (default: $DURABLE_EXT_BACKEND or "
                   "file://.durable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_replay)


if __name__ == "__main__":  # pragma: no cover
    from durable_ext.cli import main

    sys.exit(main(["replay", *sys.argv[1:]]))
