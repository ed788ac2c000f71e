r"""``durable-ext console``: the web console on a backend, in the foreground.

Example::

    durable-ext console --backend file://.durable --port 9400
    durable-ext console --backend 'lambda://orders?region=eu-west-1' --serdes msgpack+zstd

``durable-ext serve --console`` serves the same pages beside the HTTP API, under
``/console/``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import sys
from typing import TYPE_CHECKING, Any

from durable_ext.errors import ConfigError
from durable_ext.serializers.decode_cli import add_decoder_options, decoder_from_args

if TYPE_CHECKING:
    from durable_ext.runtime.control import ControlPlane

__all__ = ["TOKEN_ENV", "cmd_console", "console_token", "register"]

TOKEN_ENV = "DURABLE_EXT_CONSOLE_TOKEN"


def console_token(enabled: bool) -> str | None:
    """Return the token the console asks for: ``$DURABLE_EXT_CONSOLE_TOKEN`` or a new one."""
    if not enabled:
        return None
    return os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _check_bind(host: str, allow_remote: bool, token: str | None) -> None:
    if _loopback(host):
        return
    if not allow_remote:
        raise ConfigError(f"refusing to bind {host!r} without --allow-remote: anyone who "
                          "reaches the console can read payloads and stop executions; bind "
                          "127.0.0.1, or pass --allow-remote --auth token")
    if token is None:
        print(f"durable-ext: warning: console on {host!r} without --auth token: anyone who "
              "can reach it can read and change executions", file=sys.stderr)


def cmd_console(args: argparse.Namespace) -> int:
    """Serve the console until interrupted."""
    from durable_ext._deps import require

    uvicorn = require("uvicorn", extra="console")
    from durable_ext.cli import _runtime
    from durable_ext.console.app import ConsoleSettings, Settler
    from durable_ext.console.server import guarded_console
    from durable_ext.http.guard import GuardConfig
    from durable_ext.runtime.runtime import Runtime
    from durable_ext.serializers.readable import Decoder

    token = console_token(args.auth == "token")
    _check_bind(args.host, args.allow_remote, token)
    guard = GuardConfig.build(bind=args.host, hosts=args.allow_host, origins=args.allow_origin)
    decoder = decoder_from_args(args) or Decoder()
    plane: ControlPlane = _runtime(args)
    # A local store's executions run where someone runs them: after a callback, a resume
    # or a re-run the console runs them on itself, as the CLI's commands do.
    settler = Settler(plane, args.timeout) if isinstance(plane, Runtime) and not args.no_run \
        else None
    settings = ConsoleSettings(decoder=decoder, token=token, on_change=settler)
    app = guarded_console(plane, settings, guard)
    shown = "[::1]" if args.host == "::1" else args.host
    query = f"?token={token}" if token else ""
    print(f"durable-ext: console of {args.backend or 'file://.durable'} on "
          f"http://{shown}:{args.port}/{query}", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    finally:
        if settler is not None:
            settler.close()
        plane.close()
    return 0


def add_guard_options(p: argparse.ArgumentParser) -> None:
    """Add ``--allow-remote``, ``--allow-host`` and ``--allow-origin`` (as ``serve`` has)."""
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host (with --auth token!)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests addressed to this host name (repeatable)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages of this origin act on executions (repeatable)")


def register(subparsers: Any) -> None:
    """Add the ``console`` subcommand."""
    p = subparsers.add_parser(
        "console", help="a web console of executions: list, timeline, payloads, actions",
        description="Serve a local web console of the executions of a backend (any store, "
                    "or lambda://FUNCTION): list and filter them, open one to see its "
                    "timeline, decoded payloads, history and cost, and act on it.")
    p.add_argument("--backend", default=None,
                   help="store URL or lambda://FUNCTION (default: $DURABLE_EXT_BACKEND or "
                        "file://.durable)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument("--port", type=int, default=9400)
    p.add_argument("--auth", choices=["none", "token"], default="none",
                   help=f"token: every request needs the token (from ${TOKEN_ENV}, or made "
                        "up and printed at start in the URL to open)")
    add_guard_options(p)
    add_decoder_options(p)
    p.add_argument("--no-run", action="store_true",
                   help="on a local store, do not run executions on after a callback, "
                        "resume or re-run (leave that to a worker)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="real seconds an execution is run on for after an action")
    p.add_argument("--virtual-time", action="store_true",
                   help="waits complete instantly when executions are run on here")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=cmd_console)
