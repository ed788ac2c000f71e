"""``durable-ext backend init URL``: prepare a backend for a fleet, or check that it is ready.

* ``dynamodb://TABLE?region=...``: creates the table with its indexes and TTL (or, if it
  exists, verifies its schema and says what differs);
* ``redis://`` / ``rediss://``: connects, checks the server version (6.2 or later) and that
  Lua scripting works;
* ``postgres://`` / ``postgresql://``: creates the store's schema and tables, or migrates
  them to this version (idempotent, safe to run from several hosts at once);
* any other URL: opens the store once, which is its own check.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from durable_ext.errors import ConfigError, StoreError

__all__ = ["init_backend", "register"]

MIN_REDIS = (6, 2)


def init_backend(url: str) -> str:
    """Create or check the backend at ``url``; returns a one-line summary.

    Raises:
        ConfigError: the URL is invalid, the table has another schema, or the server is
            too old.
        StoreError: the backend cannot be reached or refused the request.

    """
    from durable_ext.spec import parse_store

    spec = parse_store(url)
    if spec.scheme == "dynamodb":
        from durable_ext.backends._dynamodb_schema import create_table
        from durable_ext.backends._dynamodb_table import make_client
        from durable_ext.backends._dynamodb_table import translated as _translated

        table = url.split("://", 1)[-1].split("?", 1)[0].strip("/")
        if not table:
            raise ConfigError(f"no table in {url!r}: expected dynamodb://TABLE?region=...")
        with _translated("backend init", table):
            created = create_table(make_client(spec.options), table)
        state = "created" if created else "already exists, schema verified"
        return f"DynamoDB table {table!r} {state}; TTL on attribute 'exp'"
    if spec.scheme in ("redis", "rediss"):
        from durable_ext.backends.redis import RedisStore
        from durable_ext.backends.redis import _translated as redis_errors

        store = RedisStore.from_spec(spec)
        try:
            with redis_errors("backend init"):
                info = store.client.info("server")
                version = str(info.get("redis_version", "0"))
                if store.client.eval("return 1", 0) != 1:
                    raise StoreError("Lua scripting does not work on this server")
        finally:
            store.close()
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if parts < MIN_REDIS:
            raise ConfigError(f"Redis {version} at {spec} is too old; the store needs 6.2 or later")
        return f"Redis {version} at {spec} is ready (key prefix {store.prefix!r})"
    if spec.scheme in ("postgres", "postgresql"):
        return _init_postgres(spec)
    from durable_ext.backends import open_store

    open_store(spec).close()
    return f"{spec} is ready"


def _init_postgres(spec: Any) -> str:
    from durable_ext.backends.postgres import PostgresStore

    store = PostgresStore.from_spec(spec)
    try:
        before, after = store.init_schema()
    finally:
        store.close()
    where = f"schema {store.schema!r} at {spec}"
    if before is None:
        return f"PostgreSQL store created in {where} (version {after})"
    if before == after:
        return f"PostgreSQL store in {where} is already at version {after}"
    return f"PostgreSQL store in {where} migrated from version {before} to {after}"


def register(subparsers: Any) -> None:
    """Add the ``backend`` subcommand group."""
    p = subparsers.add_parser("backend", help="prepare or check a checkpoint backend")
    sub = p.add_subparsers(dest="backend_cmd", required=True)
    init = sub.add_parser(
        "init", help="create the DynamoDB table or the PostgreSQL schema (or check a Redis URL)"
    )
    init.add_argument(
        "url", help="dynamodb://TABLE?region=..., redis://host:6379/0, postgres://..., ..."
    )
    init.set_defaults(func=_run_init)


def _run_init(args: argparse.Namespace) -> int:
    try:
        print(init_backend(args.url))
    except StoreError as exc:
        print(f"durable-ext: error: {exc}", file=sys.stderr)
        return 1
    return 0
