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
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from durable_ext.backends.store import ExecutionStatus
from durable_ext.live_view import CallbackView, callback_command
from durable_ext.live_view import printable as _printable
from durable_ext.serializers.decode_cli import add_decoder_options, decoder_from_args

if TYPE_CHECKING:
    from durable_ext.runtime.control import ControlPlane
    from durable_ext.serializers.readable import Decoder

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "EXIT_WAITING", "SUBCOMMANDS", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WAITING = 3
#: the most pages ``executions list --all`` reads
_MAX_PAGES = 10_000

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
    "replay": "durable_ext.testing.replay_cli",
    "decode": "durable_ext.serializers.decode_cli",
    "cost": "durable_ext.cost",
    "console": "durable_ext.console.cli",
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


def _cell(text: object) -> str:
    """Return stored text as a rich table cell: printable, its brackets shown, not obeyed."""
    from rich.markup import escape

    return escape(_printable(str(text)))


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


def _runtime(args: argparse.Namespace, *, existing: bool = False) -> ControlPlane:
    """Open the control plane of ``--backend``: a local Runtime, or Lambda itself.

    ``existing``: the command acts on executions already there, so an absent file store
    is an error rather than made empty.
    """
    from durable_ext.runtime import VirtualClock, open_control_plane

    absent = _absent_file_store(args) if existing else None
    if absent is not None:
        raise UsageError(f"there is no store at {absent}: no execution to act on "
                         "(give --backend, or run one with `durable-ext run`)")

    url = args.backend or os.environ.get("DURABLE_EXT_BACKEND") or None
    if getattr(args, "virtual_time", False):
        return open_control_plane(url, clock=VirtualClock())
    return open_control_plane(url)


def _absent_file_store(args: argparse.Namespace) -> str | None:
    """Return the path of ``--backend`` when it is a file store not made yet, else None.

    Commands that only read report an absent store instead of creating it.
    """
    from durable_ext.backends import DEFAULT_BACKEND
    from durable_ext.spec import parse_store

    url = args.backend or os.environ.get("DURABLE_EXT_BACKEND") or DEFAULT_BACKEND
    try:
        spec = parse_store(url)
    except ValueError:
        return None  # opening it reports the error
    if spec.scheme != "file":
        return None
    path = spec.path or ".durable"
    return None if os.path.lexists(path) else path


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


def _operations_table(rt: ControlPlane, arn: str, *, last: int | None = 25,
                      decoder: Decoder | None = None) -> Any:
    """Return the history as a table: the ``last`` events (all: None), payloads decoded."""
    from rich.table import Table

    history = rt.history(arn)
    if decoder is not None:
        history = decoder.history(history, execution_arn=arn)
    table = Table(title=arn.rsplit("/", 2)[-2], expand=False)
    for col in ("#", "event", "operation", "detail"):
        table.add_column(col)
    events = history["Events"] if last is None else history["Events"][-last:]
    for ev in events:
        table.add_row(str(ev["EventId"]), ev["EventType"], _cell(ev.get("Name") or ""),
                      _cell(_event_detail(ev)))
    return table


def _event_detail(ev: dict[str, Any]) -> str:
    for key, value in ev.items():
        if not (key.endswith("Details") and isinstance(value, dict)):
            continue
        if "CallbackId" in value:
            return f"callback id {value['CallbackId']}"
        if isinstance(value.get("Result"), dict):
            result = value["Result"]
            decoded = result.get("Decoded")
            if isinstance(decoded, dict) and "Value" in decoded:
                return json.dumps(decoded["Value"], ensure_ascii=False)[:60]
            if isinstance(decoded, dict):
                return f"({decoded['Undecoded'].get('Encoding')}, not decoded)"
            return str(result.get("Payload"))[:60]
        if isinstance(value.get("Error"), dict):
            payload = value["Error"].get("Payload") or {}
            return f"{payload.get('ErrorType')}: {payload.get('ErrorMessage')}"[:60]
        if "Duration" in value:
            return f"{value['Duration']} s"
    return ""


def _drive_live(rt: ControlPlane, arn: str, args: argparse.Namespace, console: Any) -> int:
    """Run the execution on with its live view; leave its summary on screen."""
    from durable_ext.live_view import LiveState, follow, summary_lines

    def now_ms() -> int:
        # The runtime's own clock, so a virtual one counts its timers down with it.
        clock = getattr(rt, "clock", None)
        return int(clock.now_ms()) if clock is not None else int(time.time() * 1000)

    def summary(state: LiveState, *, timed_out: bool = False,
                interrupted: bool = False) -> None:
        for line in summary_lines(state, resume=_resume_command(args, state.name),
                                  backend=args.backend, interrupted=interrupted,
                                  timeout=args.timeout if timed_out else None):
            console.print(line, markup=False, highlight=False, soft_wrap=True)

    began = time.monotonic()
    # Ctrl-C leaves the summary too, with the command that runs it on
    state = follow(rt, arn, timeout=args.timeout, console=console, now_ms=now_ms,
                   decoder=_view_decoder(args), backend=args.backend,
                   interrupted=lambda last: summary(last, interrupted=True))
    summary(state, timed_out=_timed_out(began, args))
    return exit_code(state.status)


def _timed_out(began: float, args: argparse.Namespace) -> bool:
    # settle also returns early, when only an outside callback can move the execution on
    return time.monotonic() - began >= float(args.timeout)


def _view_decoder(args: argparse.Namespace) -> Decoder | None:
    """Return the decoder for the live view: ``--serdes/--types``, or the default one.

    Without options, payloads are read as far as the default decoder goes; one that
    cannot be built (msgpack not installed) leaves them shown as stored.
    """
    from durable_ext.errors import MissingDependencyError

    if args.serdes is not None or args.types is not None:
        return decoder_from_args(args)
    try:
        return decoder_from_args(args, default=True)
    except MissingDependencyError:
        return None


def _resume_command(args: argparse.Namespace, name: str) -> str:
    """Return the ``durable-ext run`` that runs this execution on (same name and input)."""
    import shlex

    parts = ["durable-ext", "run", args.target, "--name", name]
    for option, value in (("--input", args.input), ("--function", args.function),
                          ("--backend", args.backend)):
        if value is not None:
            parts += [option, value]
    return " ".join(shlex.quote(p) for p in parts)


def _execution_json(rt: ControlPlane, desc: dict[str, Any],
                    decoder: Decoder | None) -> dict[str, Any]:
    """Return the one JSON shape of an execution, for every command's ``--json``.

    ``Result`` is the result parsed when it is JSON (the payload string otherwise);
    ``WaitingCallbacks`` lists ``[name, id]`` of callbacks a running execution waits for;
    ``DecodedResult`` is there when a decoder is given.
    """
    arn = desc["DurableExecutionArn"]
    raw = desc.get("Result")
    result: Any = raw
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            result = json.loads(raw)
    out = {
        "DurableExecutionArn": arn,
        "DurableExecutionName": desc.get("DurableExecutionName"),
        "FunctionArn": desc.get("FunctionArn"),
        "Status": desc["Status"],
        "StartTimestamp": desc.get("StartTimestamp"),
        "EndTimestamp": desc.get("EndTimestamp"),
        "Result": result,
        "Error": desc.get("Error"),
        "WaitingCallbacks": _open_callbacks(rt, arn) if desc["Status"] == "RUNNING" else [],
    }
    if decoder is not None:
        out["DecodedResult"] = decoder.payload(raw, execution_arn=arn)
    return out


def _report(rt: ControlPlane, arn: str, as_json: bool, hint: str = "",
            decoder: Decoder | None = None, backend: str | None = None) -> int:
    desc = rt.describe(arn)
    status = desc["Status"]
    if as_json:
        _print_json(_execution_json(rt, desc, decoder))
        return exit_code(status)
    print(f"execution {_printable(desc['DurableExecutionName'])}: {status}")
    print(f"arn: {arn}")
    if desc.get("Result") is not None:
        shown = desc["Result"]
        view = decoder.payload(shown, execution_arn=arn) if decoder is not None else None
        if view is not None and "Value" in view:
            shown = json.dumps(view["Value"], ensure_ascii=False)
        print(f"result: {_printable(shown)}")
    if desc.get("Error"):
        print(f"error: {json.dumps(desc['Error'])}")
    waiting = _open_callbacks(rt, arn) if status == "RUNNING" else []
    names = [n for n, _ in waiting]
    for name, cb_id in waiting:
        # By name when that finds it: a callback id is some 300 characters.
        cb = CallbackView(name=name, callback_id=cb_id,
                          by_name=bool(name) and names.count(name) == 1)
        print(f"waiting for callback {_printable(name or '')}: "
              f"{_printable(callback_command(desc['DurableExecutionName'], cb, backend))}")
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
        console = _console() if not args.json and sys.stdout.isatty() else None
        if console is not None:
            return _drive_live(rt, arn, args, console)
        began = time.monotonic()
        with _handler_output_to_stderr(args):
            rt.settle(arn, args.timeout)
        name = rt.describe(arn)["DurableExecutionName"]
        hint = f"run it on: {_resume_command(args, name)}" if _timed_out(began, args) else ""
        return _report(rt, arn, args.json, hint=hint, backend=args.backend)


# ---------------------------------------------------------------- executions


def cmd_list(args: argparse.Namespace) -> int:
    """Run ``executions list``."""
    absent = _absent_file_store(args)
    if absent is not None:
        if args.json:
            _print_json({"DurableExecutions": []})
        else:
            print(f"no executions: there is no store at {absent} yet "
                  "(`durable-ext run` makes one)", file=sys.stderr)
        return EXIT_OK
    with _runtime(args) as rt:
        page = rt.list_executions(function_name=args.function, status=args.status,
                                  max_items=args.max_items, marker=args.marker)
        # --all follows the markers to the end, a bounded number of pages at a time
        for _ in range(_MAX_PAGES if args.all else 0):
            if not page.get("NextMarker"):
                break
            more = rt.list_executions(function_name=args.function, status=args.status,
                                      max_items=args.max_items, marker=page["NextMarker"])
            page = {**more, "DurableExecutions": page["DurableExecutions"]
                    + more["DurableExecutions"]}
    if args.json:
        _print_json(page)
        return EXIT_OK
    console = _console()
    rows = page["DurableExecutions"]
    if console is not None:
        from rich.table import Table

        table = Table()
        for col in ("name", "function", "status", "started"):
            table.add_column(col)
        table.add_column("arn", overflow="fold")  # folded, never cut: it is for copying
        for it in rows:
            table.add_row(
                _cell(it["DurableExecutionName"]),
                _cell(it["FunctionArn"].rsplit(":", 1)[-1]),
                it["Status"],
                it["StartTimestamp"].isoformat(timespec="seconds"),
                _cell(it["DurableExecutionArn"]),
            )
        console.print(table)
    else:
        for it in rows:
            print(f"{_printable(it['DurableExecutionName'])}\t{it['Status']}\t"
                  f"{_printable(it['DurableExecutionArn'])}")
    if page.get("NextMarker"):
        print(f"more: --marker {page['NextMarker']} (or --all)", file=sys.stderr)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """Run ``executions show ARN|NAME``."""
    decoder = decoder_from_args(args)
    with _runtime(args, existing=True) as rt:
        arn = _find_arn(rt, args.execution)
        return _report(rt, arn, args.json, decoder=decoder, backend=args.backend)


def cmd_history(args: argparse.Namespace) -> int:
    """Run ``executions history ARN|NAME``."""
    with _runtime(args, existing=True) as rt:
        arn = _find_arn(rt, args.execution)
        decoder = decoder_from_args(args)
        hist = rt.history(arn, include_execution_data=True)
        if decoder is not None:
            hist = decoder.history(hist, execution_arn=arn)
        if args.json:
            _print_json(hist)
            return EXIT_OK
        console = _console()
        if console is not None:
            console.print(_operations_table(rt, arn, last=None, decoder=decoder))
            return EXIT_OK
        for ev in hist["Events"]:
            print(f"{ev['EventId']:>4}  {ev['EventType']:<24} {_printable(ev.get('Name') or '')}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Run ``executions export ARN|NAME``: its history as a JSON file ``replay`` reads."""
    from durable_ext.testing.recording import Recording

    with _runtime(args) as rt:
        recording = Recording.from_execution(rt, _find_arn(rt, args.execution))
    text = json.dumps(recording.to_json(), indent=1) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(recording.events)} events of {recording.arn} to {args.output}",
              file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- callback / stop


def _is_callback_id(ref: str) -> bool:
    # Execution names are at most 64 characters and ARNs start with arn:; callback ids
    # (ours and Lambda's) are long opaque tokens.
    return len(ref) > 64 and not ref.startswith("arn:")


def _split_callback_args(args: argparse.Namespace) -> str | None:
    """Set ``args.payload`` from ``ID [PAYLOAD]`` or ``EXECUTION NAME [PAYLOAD]``; the NAME."""
    if _is_callback_id(args.ref):
        if len(args.rest) > 1:
            raise UsageError("after a callback id give at most the PAYLOAD")
        args.payload = args.rest[0] if args.rest else None
        return None
    if not args.rest:
        raise UsageError(f"{args.ref!r} is an execution: give the callback's NAME after it "
                         "(or the callback id instead)")
    if len(args.rest) > 2:
        raise UsageError("expected EXECUTION NAME [PAYLOAD]")
    args.payload = args.rest[1] if len(args.rest) > 1 else None
    return str(args.rest[0])


def _resolve_callback(rt: ControlPlane, args: argparse.Namespace,
                      name: str | None) -> tuple[str, str | None]:
    """Return the callback id and, when known, its execution."""
    if name is None:
        return args.ref, None
    arn = _find_arn(rt, args.ref)
    waiting = _open_callbacks(rt, arn)
    ids = [cb_id for cb_name, cb_id in waiting if cb_name == name]
    if len(ids) != 1:
        names = sorted({n or "(unnamed)" for n, _ in waiting}) or ["none"]
        why = "no callback" if not ids else f"{len(ids)} callbacks"
        raise UsageError(f"{why} named {name!r} waiting in {args.ref}; waiting: "
                         f"{', '.join(names)}" + ("; give the callback id" if ids else ""))
    return ids[0], arn


def cmd_callback(args: argparse.Namespace) -> int:
    """Run ``callback succeed|fail|heartbeat ID|EXECUTION NAME [PAYLOAD]``, then run it on."""
    name = _split_callback_args(args)
    payload = _callback_payload(args)
    with _runtime(args, existing=True) as rt:
        callback_id, arn = _resolve_callback(rt, args, name)
        if args.action == "succeed":
            # Sent as given: the handler gets exactly this text, as from any other sender.
            rt.send_callback_success(callback_id, payload)
        elif args.action == "fail":
            error: dict[str, Any] = {"ErrorMessage": "failed from the command line"}
            if payload:
                try:
                    parsed = json.loads(payload)
                except ValueError:
                    parsed = payload
                error = parsed if isinstance(parsed, dict) else {"ErrorMessage": str(parsed)}
            rt.send_callback_failure(callback_id, error)
        else:
            rt.send_callback_heartbeat(callback_id)
            return EXIT_OK
        # Lambda's callback ids are opaque (and Lambda runs the execution on by itself).
        arn = arn or rt.execution_of_callback(callback_id)
        if arn is None:
            if args.json:
                _print_json({"CallbackId": callback_id, "Sent": args.action})
            else:
                print(f"callback {args.action} sent; the service runs the execution on")
            return EXIT_OK
        if not args.no_run:
            with _handler_output_to_stderr(args):
                rt.settle(arn, args.timeout)
        return _report(rt, arn, args.json, backend=args.backend)


def cmd_stop(args: argparse.Namespace) -> int:
    """``stop ARN|NAME``."""
    with _runtime(args, existing=True) as rt:
        arn = _find_arn(rt, args.execution)
        error = None
        if args.message or args.error_type:
            error = {
                k: v
                for k, v in (("ErrorMessage", args.message), ("ErrorType", args.error_type))
                if v
            }
        rt.stop(arn, error)
        return _report(rt, arn, args.json, backend=args.backend)


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
    _add_logging_options(p)
    _common(p)
    add_decoder_options(p)
    p.set_defaults(func=cmd_run)

    ex = subparsers.add_parser("executions", help="list and inspect executions")
    exs = ex.add_subparsers(dest="executions_cmd", required=True)
    p = exs.add_parser("list", help="list executions, newest first")
    p.add_argument("--function", default=None)
    p.add_argument(
        "--status", default=None, choices=[s.value for s in ExecutionStatus]
    )
    p.add_argument("--max-items", type=int, default=50, help="executions per page")
    p.add_argument("--marker", default=None,
                   help="continue from a page's NextMarker (from --json output)")
    p.add_argument("--all", action="store_true", help="every page, not only the first")
    _common(p)
    p.set_defaults(func=cmd_list)
    for name, func, text in (
        ("show", cmd_show, "status and result"),
        ("history", cmd_history, "history events"),
    ):
        p = exs.add_parser(name, help=text)
        p.add_argument("execution", metavar="ARN|NAME")
        _common(p)
        add_decoder_options(p)
        p.set_defaults(func=func)
    p = exs.add_parser("export", help="write the history as a JSON file (for replay)")
    p.add_argument("execution", metavar="ARN|NAME")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="file to write (default: stdout)")
    p.add_argument("--backend", default=None,
                   help="store URL (default: $DURABLE_EXT_BACKEND or file://.durable)")
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser("callback", help="complete or heartbeat a callback")
    p.add_argument("action", choices=["succeed", "fail", "heartbeat"])
    p.add_argument("ref", metavar="ID|EXECUTION",
                   help="a callback id, or the execution (name or ARN) followed by the "
                        "callback's name")
    p.add_argument(
        "rest",
        nargs="*",
        metavar="[NAME] [PAYLOAD]",
        help="NAME: the callback's name, after an execution; PAYLOAD: succeed: the result, "
        "sent as given (text or JSON); fail: ErrorObject JSON or a message",
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
    _add_logging_options(p)
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
    from durable_ext import __version__

    parser = argparse.ArgumentParser(
        prog="durable-ext", description="Run and inspect durable executions locally."
    )
    parser.add_argument("--version", action="version", version=f"durable-ext {__version__}")
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


class _OneLineErrors(logging.Formatter):
    """Log records with their exception folded onto the record's line (-v unfolds it).

    A step that fails and is retried logs its traceback each time; a run of a flaky
    workflow would be mostly tracebacks of expected retries.
    """

    def format(self, record: logging.LogRecord) -> str:
        if not record.exc_info or record.exc_info[1] is None:
            return super().format(record)
        exc = record.exc_info[1]
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text = saved
        return f"{line}: {type(exc).__name__}: {exc}"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on ``sys.stderr`` as it is when a record comes.

    The live view of ``run`` takes stderr over while it draws, so that log lines go above
    its frame instead of through it.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        """Return the current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass  # always the current one


@contextlib.contextmanager
def _logging(args: argparse.Namespace) -> Iterator[None]:
    """Show the handlers' logs on stderr at ``--log-level``, for as long as the command runs."""
    if not getattr(args, "handler_logs", False):  # serve and worker set up their own
        yield
        return
    level = args.log_level
    handler = _StderrHandler()
    fmt = "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if args.verbose else _OneLineErrors(fmt))
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level.upper())
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


def _add_logging_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"],
                   help="the handler's logs shown on stderr (default: warning)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="full tracebacks in logs (one line each otherwise)")
    p.set_defaults(handler_logs=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``durable-ext``; returns the exit code."""
    from durable_ext.errors import (
        ConfigError,
        DurableExtError,
        ExecutionAlreadyStartedError,
        InvalidParameterValueError,
        NotFoundError,
    )

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    func: Callable[[argparse.Namespace], int] = args.func
    started = time.monotonic()
    try:
        with _logging(args):
            return func(args)
    except (UsageError, ConfigError, NotFoundError, InvalidParameterValueError,
            ExecutionAlreadyStartedError) as exc:
        # What the user asked for cannot be done as asked: fix the command.
        print(f"durable-ext: error: {_printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except DurableExtError as exc:
        # The command was right but the store, a key or a payload failed it: one line, not
        # a traceback (the exception's type says which part).
        print(f"durable-ext: error: {type(exc).__name__}: {_printable(str(exc))}",
              file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"durable-ext: interrupted after {time.monotonic() - started:.1f} s", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    # Run the imported module's main, so its exception classes are the ones raised.
    from durable_ext.cli import main as _main

    sys.exit(_main())
