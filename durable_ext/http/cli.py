r"""``durable-ext serve``: the Lambda-compatible HTTP API on a backend.

Example::

    durable-ext serve --backend file://.durable --port 9000 \\
        --handlers orders=app.handlers:process_order app.handlers:refund
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from durable_ext.errors import ConfigError

__all__ = ["cmd_serve", "register"]


def _function_name(path: str) -> str:
    # Same derivation as `durable-ext run`: the attribute, with '_' and '.' as '-'.
    return path.rpartition(":")[2].replace(".", "-").replace("_", "-")


def parse_handler_spec(spec: str) -> tuple[str, str]:
    """``[NAME=]MODULE:HANDLER`` -> (function name, ``MODULE:HANDLER``)."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = "", spec
    module, colon, attr = path.rpartition(":")
    if not colon or not module or not attr:
        raise ConfigError(f"--handlers: expected [NAME=]MODULE:HANDLER, got {spec!r}")
    return name or _function_name(path), path


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    from durable_ext.http.server import check_bind, serve
    from durable_ext.http.service import LocalService

    check_bind(args.host, args.allow_remote)
    from durable_ext.cli import _load_handler

    loaded: list[tuple[str, Any]] = []
    for name, spec in (parse_handler_spec(s) for s in args.handlers):
        # Imported here also for http isolation: a bad path fails now, not at the first
        # invocation, and FILE.py:HANDLER becomes an import path the workers can use.
        path, obj = _load_handler(spec)
        loaded.append((name, obj if args.isolation == "inline" else path))
    service = LocalService(args.backend or "file://.durable", virtual_time=args.virtual_time,
                           region=args.region, account=args.account,
                           invocation_timeout=args.invocation_timeout)
    try:
        for name, handler in loaded:
            service.register(name, handler, isolation=args.isolation)
    except Exception:
        service.close()
        raise
    print(f"durable-ext: serving {', '.join(service.functions()) or 'no functions'} on "
          f"http://{args.host}:{args.port} (backend {args.backend or 'file://.durable'})",
          file=sys.stderr)
    serve(service, args.host, args.port, log_level=args.log_level,
          allow_remote=args.allow_remote)
    return 0


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
                   help="durable handlers to serve; NAME defaults to the attribute name")
    p.add_argument("--isolation", choices=["http", "inline"], default="http",
                   help="http: each invocation runs in a warm worker process whose SDK "
                        "checkpoints over this API (as on Lambda); inline: in the server")
    p.add_argument("--invocation-timeout", type=float, default=900.0)
    p.add_argument("--virtual-time", action="store_true", help="waits complete instantly")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account", default="123456789012")
    p.add_argument("--log-level", default="warning")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host (put authentication in front!)")
    p.set_defaults(func=cmd_serve)
