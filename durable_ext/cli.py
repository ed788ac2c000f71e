"""The ``durable-ext`` command: run handlers locally and inspect executions.

Exit codes: 0 succeeded (or a command that completed), 1 execution failed / timed out /
stopped, 2 usage error (or a request the execution's status refuses), 3 execution still
waiting (for a callback, a timer, a resume...).

Subcommands live in a small table (:data:`SUBCOMMANDS`) of modules that each expose
``register(subparsers)``; a module that is not installed yet is skipped, so other
packages can add ``bench``, ``worker``, ``serve`` or ``backend`` without touching this file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from durable_ext.backends.store import ExecutionStatus

if TYPE_CHECKING:
    from durable_ext.runtime.control import ControlPlane

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "EXIT_WAITING", "SUBCOMMANDS", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WAITING = 3

SUBCOMMANDS: dict[str, str] = {
    "run": "durable_ext.cli",
    "executions": "durable_ext.cli",
    "callback": "durable_ext.cli",
    "stop": "durable_ext.cli",
    "plugins": "durable_ext.cli",
    "pause": "durable_ext.cli_control",
    "resume": "durable_ext.cli_control",
    "delete": "durable_ext.cli_control",
    "bench": "durable_ext.bench",
    "worker": "durable_ext.fleet.cli",
    "serve": "durable_ext.http.cli",
    "backend": "durable_ext.backends.cli",
    "s3": "durable_ext.serializers.s3_cli",
}
"""Subcommand name -> module exposing ``register(subparsers)`` (imported lazily)."""

_WAITING = frozenset({ExecutionStatus.RUNNING, ExecutionStatus.PAUSING, ExecutionStatus.PAUSED})


class UsageError(Exception):
    """Bad arguments: exit code 2."""


# ---------------------------------------------------------------- output helpers


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _print_json(value: Any) -> None:
    print(json.dumps(_jsonable(value), indent=2, sort_keys=False))


def _printable(text: str) -> str:
    """Payload text as a terminal may show it: control characters escaped, not obeyed.

    Payloads come from handlers and outside senders; an escape sequence in one must not
    reach the terminal (text-armored payloads hold control characters too).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _console() -> Any:
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console()


def exit_code(status: str) -> int:
    """Exit code for an execution status."""
    if status == "SUCCEEDED":
        return EXIT_OK
    if status in _WAITING:
        return EXIT_WAITING
    return EXIT_FAILED


# ---------------------------------------------------------------- runtime helpers


def _runtime(args: argparse.Namespace) -> ControlPlane:
    """Open the control plane of ``--backend``: a local Runtime, or Lambda itself."""
    from durable_ext.runtime import VirtualClock, open_control_plane

    url = args.backend or os.environ.get("DURABLE_EXT_BACKEND") or None
    if getattr(args, "virtual_time", False):
        return open_control_plane(url, clock=VirtualClock())
    return open_control_plane(url)


def _parse_input(text: str | None, option: str = "--input") -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{option} is not valid JSON: {exc}") from None


def _callback_payload(args: argparse.Namespace) -> str | None:
    """Return the payload to send: text as given, ``--json-payload`` checked, or a file."""
    given = [p for p in (args.payload, args.json_payload, args.payload_file) if p is not None]
    if len(given) > 1:
        raise UsageError("give the payload once: PAYLOAD, --json-payload or --payload-file")
    if args.json_payload is not None:
        _parse_input(args.json_payload, "--json-payload")
        return str(args.json_payload)
    if args.payload_file is not None:
        try:
            return Path(args.payload_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--payload-file {args.payload_file}: {exc}") from None
    payload: str | None = args.payload
    return payload


@contextlib.contextmanager
def _handler_output_to_stderr(args: argparse.Namespace) -> Iterator[None]:
    """Under ``--json``, keep stdout for the JSON: what handlers print goes to stderr."""
    if getattr(args, "json", False):
        with contextlib.redirect_stdout(sys.stderr):
            yield
    else:
        yield


def _find_arn(rt: ControlPlane, ref: str) -> str:
    """Accept an ARN or an execution name."""
    if ref.startswith("arn:"):
        return ref
    marker = None
    for _ in range(10_000):
        page = rt.list_executions(max_items=1000, marker=marker)
        for item in page["DurableExecutions"]:
            if item["DurableExecutionName"] == ref:
                return str(item["DurableExecutionArn"])
        marker = page.get("NextMarker")
        if not marker:
            break
    raise UsageError(f"no execution named {ref!r}")


# ---------------------------------------------------------------- run


def _operations_table(rt: ControlPlane, arn: str) -> Any:
    from rich.table import Table

    table = Table(title=arn.rsplit("/", 2)[-2], expand=False)
    for col in ("#", "event", "operation", "detail"):
        table.add_column(col)
    for ev in rt.history(arn)["Events"][-25:]:
        detail = ""
        for key, value in ev.items():
            if key.endswith("Details") and isinstance(value, dict):
                if "CallbackId" in value:
                    detail = f"callback id {value['CallbackId']}"
                elif "Result" in value and isinstance(value["Result"], dict):
                    detail = _printable(str(value["Result"].get("Payload"))[:60])
                elif "Error" in value and isinstance(value["Error"], dict):
                    payload = value["Error"].get("Payload") or {}
                    detail = _printable(
                        f"{payload.get('ErrorType')}: {payload.get('ErrorMessage')}"[:60]
                    )
                elif "Duration" in value:
                    detail = f"{value['Duration']} s"
        table.add_row(str(ev["EventId"]), ev["EventType"], str(ev.get("Name") or ""), detail)
    return table


def _drive(rt: ControlPlane, arn: str, timeout: float, live: bool) -> None:
    """Let the execution run on, showing a live view of the history when asked."""
    if not live:
        rt.settle(arn, timeout)
        return
    from rich.live import Live

    errors: list[BaseException] = []

    def work() -> None:
        try:
            rt.settle(arn, timeout)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=work, name="durable-ext-run", daemon=True)
    worker.start()
    with Live(_operations_table(rt, arn), refresh_per_second=8) as view:
        while worker.is_alive():
            worker.join(0.12)
            view.update(_operations_table(rt, arn))
    if errors:
        raise errors[0]


def _report(rt: ControlPlane, arn: str, as_json: bool, hint: str = "") -> int:
    desc = rt.describe(arn)
    status = desc["Status"]
    if as_json:
        out = {
            "DurableExecutionArn": arn,
            "Status": status,
            "Result": json.loads(desc["Result"]) if desc.get("Result") else None,
            "Error": desc.get("Error"),
            "WaitingCallbacks": _open_callbacks(rt, arn),
        }
        _print_json(out)
        return exit_code(status)
    print(f"execution {desc['DurableExecutionName']}: {status}")
    print(f"arn: {arn}")
    if desc.get("Result") is not None:
        print(f"result: {_printable(desc['Result'])}")
    if desc.get("Error"):
        print(f"error: {json.dumps(desc['Error'])}")
    for name, cb_id in _open_callbacks(rt, arn):
        print(f"waiting for callback {name or ''}: durable-ext callback succeed {cb_id} '<json>'")
    if status == "RUNNING" and hint:
        print(hint)
    return exit_code(status)


def _open_callbacks(rt: ControlPlane, arn: str) -> list[tuple[str | None, str]]:
    started: dict[str, tuple[str | None, str]] = {}
    for ev in rt.history(arn)["Events"]:
        if ev["EventType"] == "CallbackStarted":
            started[ev["Id"]] = (ev.get("Name"), ev["CallbackStartedDetails"]["CallbackId"])
        elif ev["EventType"].startswith("Callback"):
            started.pop(ev.get("Id", ""), None)
    return list(started.values())


def cmd_run(args: argparse.Namespace) -> int:
    """``run TARGET``: start (or resume, by name) and run an execution."""
    from durable_ext.runtime.handlers import function_name_for

    function = args.function or function_name_for(args.target)
    with _runtime(args) as rt:
        rt.register(function, args.target)  # imports it: a bad target is a one-line error
        arn = rt.start(function, _parse_input(args.input), name=args.name)
        with _handler_output_to_stderr(args):
            _drive(
                rt,
                arn,
                args.timeout,
                live=not args.json and _console() is not None and sys.stdout.isatty(),
            )
        return _report(rt, arn, args.json)


# ---------------------------------------------------------------- executions


def cmd_list(args: argparse.Namespace) -> int:
    """Run ``executions list``."""
    with _runtime(args) as rt:
        page = rt.list_executions(
            function_name=args.function, status=args.status, max_items=args.max_items
        )
    if args.json:
        _print_json(page)
        return EXIT_OK
    console = _console()
    rows = page["DurableExecutions"]
    if console is not None:
        from rich.table import Table

        table = Table()
        for col in ("name", "function", "status", "started", "arn"):
            table.add_column(col)
        for it in rows:
            table.add_row(
                it["DurableExecutionName"],
                it["FunctionArn"].rsplit(":", 1)[-1],
                it["Status"],
                it["StartTimestamp"].isoformat(timespec="seconds"),
                it["DurableExecutionArn"],
            )
        console.print(table)
    else:
        for it in rows:
            print(f"{it['DurableExecutionName']}\t{it['Status']}\t{it['DurableExecutionArn']}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """Run ``executions show ARN|NAME``."""
    with _runtime(args) as rt:
        arn = _find_arn(rt, args.execution)
        if args.json:
            _print_json(rt.describe(arn))
            return exit_code(rt.describe(arn)["Status"])
        return _report(rt, arn, False)


def cmd_history(args: argparse.Namespace) -> int:
    """Run ``executions history ARN|NAME``."""
    with _runtime(args) as rt:
        arn = _find_arn(rt, args.execution)
        hist = rt.history(arn, include_execution_data=True)
        if args.json:
            _print_json(hist)
            return EXIT_OK
        console = _console()
        if console is not None:
            table = _operations_table(rt, arn) if len(hist["Events"]) <= 25 else None
            if table is not None:
                console.print(table)
                return EXIT_OK
        for ev in hist["Events"]:
            print(f"{ev['EventId']:>4}  {ev['EventType']:<24} {ev.get('Name') or ''}")
    return EXIT_OK


# ---------------------------------------------------------------- callback / stop


def cmd_callback(args: argparse.Namespace) -> int:
    """Run ``callback succeed|fail|heartbeat ID [PAYLOAD]``, then run the execution on."""
    payload = _callback_payload(args)
    with _runtime(args) as rt:
        if args.action == "succeed":
            # Sent as given: the handler gets exactly this text, as from any other sender.
            rt.send_callback_success(args.callback_id, payload)
        elif args.action == "fail":
            error: dict[str, Any] = {"ErrorMessage": "failed from the command line"}
            if payload:
                try:
                    parsed = json.loads(payload)
                except ValueError:
                    parsed = payload
                error = parsed if isinstance(parsed, dict) else {"ErrorMessage": str(parsed)}
            rt.send_callback_failure(args.callback_id, error)
        else:
            rt.send_callback_heartbeat(args.callback_id)
            return EXIT_OK
        # Lambda's callback ids are opaque (and Lambda runs the execution on by itself).
        arn = rt.execution_of_callback(args.callback_id)
        if arn is None:
            return EXIT_OK
        if not args.no_run:
            with _handler_output_to_stderr(args):
                rt.settle(arn, args.timeout)
        return _report(rt, arn, args.json)


def cmd_stop(args: argparse.Namespace) -> int:
    """``stop ARN|NAME``."""
    with _runtime(args) as rt:
        arn = _find_arn(rt, args.execution)
        error = None
        if args.message or args.error_type:
            error = {
                k: v
                for k, v in (("ErrorMessage", args.message), ("ErrorType", args.error_type))
                if v
            }
        rt.stop(arn, error)
        return _report(rt, arn, args.json)


def cmd_plugins(args: argparse.Namespace) -> int:
    """``plugins``: list serializer and backend names without importing them."""
    from durable_ext.registry import BACKENDS, SERIALIZERS

    listing = {"serializers": SERIALIZERS.names(), "backends": BACKENDS.names()}
    if args.json:
        _print_json(listing)
    else:
        for group, names in listing.items():
            print(f"{group}: {', '.join(names)}")
    return EXIT_OK


# ---------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        default=None,
        help="store URL (default: $DURABLE_EXT_BACKEND or file://.durable)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(subparsers: Any) -> None:
    """Add the built-in subcommands."""
    p = subparsers.add_parser("run", help="run a @durable_execution handler")
    p.add_argument("target", metavar="MODULE:HANDLER|FILE.py:HANDLER")
    p.add_argument("--input", default=None, help="execution input (JSON)")
    p.add_argument("--name", default=None, help="execution name (idempotent)")
    p.add_argument("--function", default=None,
                   help="function name to register it under (default: from the module name)")
    p.add_argument("--timeout", type=float, default=300.0, help="real seconds to run for")
    p.add_argument("--virtual-time", action="store_true", help="waits complete instantly")
    _common(p)
    p.set_defaults(func=cmd_run)

    ex = subparsers.add_parser("executions", help="list and inspect executions")
    exs = ex.add_subparsers(dest="executions_cmd", required=True)
    p = exs.add_parser("list", help="list executions, newest first")
    p.add_argument("--function", default=None)
    p.add_argument(
        "--status", default=None, choices=[s.value for s in ExecutionStatus]
    )
    p.add_argument("--max-items", type=int, default=50)
    _common(p)
    p.set_defaults(func=cmd_list)
    for name, func, text in (
        ("show", cmd_show, "status and result"),
        ("history", cmd_history, "history events"),
    ):
        p = exs.add_parser(name, help=text)
        p.add_argument("execution", metavar="ARN|NAME")
        _common(p)
        p.set_defaults(func=func)

    p = subparsers.add_parser("callback", help="complete or heartbeat a callback")
    p.add_argument("action", choices=["succeed", "fail", "heartbeat"])
    p.add_argument("callback_id", metavar="ID")
    p.add_argument(
        "payload",
        nargs="?",
        default=None,
        help="succeed: the result, sent as given (text or JSON); fail: ErrorObject JSON or "
        "a message",
    )
    p.add_argument("--json-payload", default=None, metavar="JSON",
                   help="the payload, checked to be JSON first")
    p.add_argument("--payload-file", default=None, metavar="PATH",
                   help="send the text of this file (UTF-8) as the payload")
    p.add_argument(
        "--no-run",
        action="store_true",
        help="do not run the execution on after completing the callback",
    )
    p.add_argument("--timeout", type=float, default=300.0)
    _common(p)
    p.set_defaults(func=cmd_callback)

    p = subparsers.add_parser("stop", help="stop a running execution")
    p.add_argument("execution", metavar="ARN|NAME")
    p.add_argument("--message", default=None)
    p.add_argument("--error-type", default=None)
    _common(p)
    p.set_defaults(func=cmd_stop)

    p = subparsers.add_parser("plugins", help="list installed serializers and backends")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every subcommand module that is installed."""
    parser = argparse.ArgumentParser(
        prog="durable-ext", description="Run and inspect durable executions locally."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    registered: set[str] = set()
    for module_name in SUBCOMMANDS.values():
        if module_name in registered:
            continue
        registered.add(module_name)
        if module_name == __name__:
            register(subparsers)
            continue
        if not _find_spec_safe(module_name):
            continue  # that subcommand's module is not part of this installation yet
        module = importlib.import_module(module_name)
        reg: Callable[[Any], None] | None = getattr(module, "register", None)
        if reg is not None:
            reg(subparsers)
    return parser


def _find_spec_safe(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``durable-ext``; returns the exit code."""
    from durable_ext.errors import ConfigError, NotFoundError

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    func: Callable[[argparse.Namespace], int] = args.func
    started = time.monotonic()
    try:
        return func(args)
    except (UsageError, ConfigError, NotFoundError) as exc:
        print(f"durable-ext: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"durable-ext: interrupted after {time.monotonic() - started:.1f} s", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    # Run the imported module's main, so its exception classes are the ones raised.
    from durable_ext.cli import main as _main

    sys.exit(_main())
