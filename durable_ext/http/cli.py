r"""``durable-ext serve``: the Lambda-compatible HTTP API on a backend.

Example::

    durable-ext serve --backend file://.durable --port 9000 \\
        --handlers orders=app.handlers:process_order app.handlers:refund
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from durable_ext.errors import ConfigError
from durable_ext.events.options import add_event_options

if TYPE_CHECKING:
    from durable_ext.http.guard import GuardConfig

__all__ = ["cmd_serve", "guard_config", "register"]


def guard_config(args: argparse.Namespace) -> GuardConfig:
    """Build the hosts, origins and keys ``args`` configure (keys from the environment too)."""
    from durable_ext.http.guard import GuardConfig
    from durable_ext.http.sigv4 import SigV4Verifier

    if args.auth_keys and args.auth != "sigv4":
        raise ConfigError("--auth-keys needs --auth sigv4")
    auth = SigV4Verifier.from_sources(os.environ, args.auth_keys) if args.auth == "sigv4" \
        else None
    return GuardConfig.build(bind=args.host, hosts=args.allow_host, origins=args.allow_origin,
                             auth=auth)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    from durable_ext.http.server import check_bind, serve
    from durable_ext.http.service import LocalService

    guard = guard_config(args)
    warning = check_bind(args.host, args.allow_remote, signed=guard.auth is not None)
    if warning:
        print(f"durable-ext: {warning}", file=sys.stderr)
    if args.host in ("0.0.0.0", "::") and not args.allow_host:
        print("durable-ext: note: only loopback names are answered; pass --allow-host NAME "
              "for each name clients use to reach this server", file=sys.stderr)
    from durable_ext.events.options import sinks_from_args
    from durable_ext.runtime.handlers import load_handlers
    from durable_ext.runtime.versions import parse_alias_spec

    # Imported now also for http isolation: a bad target fails here, not at the first
    # invocation, and FILE.py:HANDLER becomes a reference the workers can load.
    loaded = load_handlers(args.handlers)
    service = LocalService(args.backend or "file://.durable", virtual_time=args.virtual_time,
                           region=args.region, account=args.account,
                           invocation_timeout=args.invocation_timeout,
                           event_sinks=sinks_from_args(args))
    try:
        for item in loaded:
            service.register(item.name, item.handler, isolation=args.isolation)
        for spec in args.alias:
            service.runtime.alias(*parse_alias_spec(spec))
        types = _enable_decoding(service, args)
    except Exception:
        service.close()
        raise
    print(f"durable-ext: serving {', '.join(service.functions()) or 'no functions'} on "
          f"http://{args.host}:{args.port} (backend {args.backend or 'file://.durable'})",
          file=sys.stderr)
    wrap = _console(service, args, guard, types) if args.console else None
    serve(service, args.host, args.port, log_level=args.log_level,
          allow_remote=args.allow_remote, guard=guard, wrap=wrap)
    return 0


def _enable_decoding(service: Any, args: argparse.Namespace) -> list[type] | None:
    """Turn on the codec server and the decoded views ``--codec``/``--decode`` ask for.

    Returns the ``--types`` classes, which the console decodes with too.
    """
    types: list[type] | None = None
    if args.types is not None:
        from durable_ext.serializers.decode_cli import load_object

        found = load_object(args.types)
        if not isinstance(found, (list, tuple)):
            raise ConfigError(f"--types {args.types} must be a list of classes")
        if args.codec is None and args.decode is None:
            raise ConfigError("--types goes with --decode SPEC or --codec SPEC")
        types = list(found)
    if args.codec is not None:
        service.enable_codec(args.codec, types=types)
    if args.decode is not None:
        service.enable_decoded_views(args.decode, types=types)
    return types


CONSOLE_PREFIX = "/console"


def _console(service: Any, args: argparse.Namespace, guard: GuardConfig,
             types: list[type] | None) -> Any:
    """Return middleware serving the console under /console beside the API.

    Browsers cannot sign requests: with ``--auth sigv4`` the console asks for a token of
    its own instead, printed here.
    """
    import dataclasses

    from durable_ext.console.app import ConsoleSettings
    from durable_ext.console.cli import console_token
    from durable_ext.console.server import beside, guarded_console
    from durable_ext.serializers.readable import Decoder

    token = console_token(guard.auth is not None)
    console_guard = dataclasses.replace(guard, unsigned_prefixes=(CONSOLE_PREFIX,))
    # The service's driver runs executions on by itself once woken.
    settings = ConsoleSettings(decoder=Decoder(args.decode or args.codec, types=types),
                               prefix=CONSOLE_PREFIX, token=token,
                               on_change=lambda _arn: service.notify())
    console = guarded_console(service.control, settings, console_guard)
    query = f"?token={token}" if token else ""
    print(f"durable-ext: console on http://{args.host}:{args.port}{CONSOLE_PREFIX}/{query}",
          file=sys.stderr)
    return lambda api: beside(api, console, CONSOLE_PREFIX)


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    p = subparsers.add_parser(
        "serve", help="serve the Lambda durable-execution HTTP API on a backend",
        description="Serve registered durable functions through the Lambda REST API, so "
                    "boto3 (endpoint_url=...) and the SDK's LambdaClient can use them.")
    p.add_argument("--backend", default=None,
                   help="store URL (default: $DURABLE_EXT_BACKEND or file://.durable)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--handlers", nargs="+", default=[], metavar="[NAME=]MODULE:HANDLER",
                   help="durable handlers to serve; NAME defaults to the module's name (plus "
                        "-ATTR unless ATTR is handler), as for `durable-ext run`")
    p.add_argument("--isolation", choices=["http", "inline"], default="http",
                   help="http: each invocation runs in a warm worker process whose SDK "
                        "checkpoints over this API (as on Lambda); inline: in the server")
    p.add_argument("--invocation-timeout", type=float, default=900.0)
    p.add_argument("--virtual-time", action="store_true", help="waits complete instantly")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account", default="123456789012")
    p.add_argument("--log-level", default="warning")
    add_event_options(p)
    p.add_argument("--alias", action="append", default=[], metavar="FUNCTION:ALIAS=VERSION",
                   help="serve FUNCTION:ALIAS as VERSION (repeatable; versions are "
                        "--handlers NAME:VERSION=MODULE:HANDLER)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host (with --auth sigv4!)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests addressed to this host name (repeatable; "
                        "loopback names and --host are always answered)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let web pages of this origin (https://console.example) call the "
                        "API (repeatable)")
    p.add_argument("--codec", default=None, metavar="SPEC",
                   help="serve a codec server under /_durable_ext/codec decoding and "
                        "encoding payloads with this serializer spec (off by default); "
                        "also answers decoded views, as --decode does")
    p.add_argument("--decode", default=None, metavar="SPEC",
                   help="answer GetDurableExecution(History) requests that ask for it "
                        "(?decoded=true) with decoded views of the payloads, by this "
                        "serializer spec, keys and buckets included (off by default)")
    p.add_argument("--types", default=None, metavar="MODULE:ATTR",
                   help="a list of classes to decode objects with, for --codec and "
                        "--decode; other objects are shown by type tag and fields")
    p.add_argument("--console", action="store_true",
                   help="also serve the web console under /console/ (with --auth sigv4 it "
                        "asks for a token of its own, printed at start)")
    p.add_argument("--auth", choices=["none", "sigv4"], default="none",
                   help="sigv4: answer only requests signed with a configured key (from "
                        "$DURABLE_EXT_AUTH_ACCESS_KEY_ID/$DURABLE_EXT_AUTH_SECRET_ACCESS_KEY "
                        "and --auth-keys)")
    p.add_argument("--auth-keys", default=None, metavar="FILE",
                   help="file of 'ACCESS_KEY_ID SECRET_ACCESS_KEY' lines for --auth sigv4")
    p.set_defaults(func=cmd_serve)
