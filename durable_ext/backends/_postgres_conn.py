"""Connecting the PostgreSQL store: URL options, the connection pool, and error translation.

Everything here that can print a URL or a driver message passes it through :class:`Secrets`,
so a password in the URL never reaches a log line or an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from durable_ext._deps import require
from durable_ext.backends._remote import parse_duration
from durable_ext.backends._state import reject_unknown_options
from durable_ext.errors import ConfigError, StoreError, StoreUnavailableError
from durable_ext.spec import StoreSpec

__all__ = [
    "OPTIONS",
    "PostgresOptions",
    "Secrets",
    "diagnose_connect",
    "driver",
    "open_pool",
    "parse_options",
    "pool_timeout",
    "translated",
]

FEATURE = "the PostgreSQL backend"

#: passed through to libpq as connection parameters
_LIBPQ_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
)
#: the store's own
_OWN_OPTIONS = (
    "schema",
    "pool_size",
    "pool_timeout",
    "statement_timeout",
    "ttl",
    "notify",
    "init",
)
OPTIONS = _OWN_OPTIONS + _LIBPQ_OPTIONS
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: SQLSTATE classes that retrying cannot fix (auth, no such database, syntax/undefined)
_PERMANENT_CLASSES = ("28", "3D", "42", "0A", "22", "23")


def driver() -> Any:
    """Return the ``psycopg`` module, or raise the error naming the ``postgres`` extra."""
    return require("psycopg", extra="postgres", feature=FEATURE)


def _pool_module() -> Any:
    return require("psycopg_pool", extra="postgres", feature=FEATURE)


def pool_timeout() -> type[BaseException]:
    """Return the pool's "no connection in time" exception class."""
    cls: type[BaseException] = _pool_module().PoolTimeout
    return cls


def _flag(value: str, option: str, url: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"option {option}={value!r} in {url!r} must be true or false")


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresOptions:
    """What a ``postgres://`` URL asks for, parsed once.

    Attributes:
        conninfo: libpq connection string (holds the password: never print it).
        display: The URL with the password masked, for messages.
        schema: Schema holding the store's tables.
        pool_size: Most connections the pool opens.
        pool_timeout: Seconds to wait for a pooled connection.
        statement_timeout_ms: Server-side limit of one statement (0: none).
        ttl: Seconds a finished execution is kept (0: forever).
        notify: Whether commits send NOTIFY wake-ups for new due entries.
        init: Whether the store creates or migrates its schema when it opens.

    """

    conninfo: str = field(repr=False)
    display: str
    schema: str = "durable_ext"
    pool_size: int = 10
    pool_timeout: float = 10.0
    statement_timeout_ms: int = 30_000
    ttl: float = 0.0
    notify: bool = True
    init: bool = False

    def __post_init__(self) -> None:
        if not _SCHEMA.fullmatch(self.schema):
            raise ConfigError(
                f"schema={self.schema!r} in {self.display!r}: use 1-40 lowercase letters, "
                "digits and _, not starting with a digit"
            )
        if self.pool_size < 1:
            raise ConfigError(f"pool_size in {self.display!r} must be at least 1")
        if self.pool_timeout <= 0:
            raise ConfigError(f"pool_timeout in {self.display!r} must be positive")


def parse_options(spec: StoreSpec, overrides: dict[str, Any]) -> PostgresOptions:
    """Parse ``postgres://user:pw@host:5432/db?schema=...``; ``overrides`` win over the URL.

    Raises:
        SpecError: an option the store does not know.
        ConfigError: an option with a bad value.

    """
    display = str(spec)
    reject_unknown_options(spec.options, OPTIONS, display)
    opts = spec.options
    params: dict[str, Any] = {
        "host": spec.host or "localhost",
        "port": spec.port or 5432,
        "dbname": unquote(spec.path.lstrip("/")) or "postgres",
    }
    if spec.username:
        params["user"] = unquote(spec.username)
    if spec.password:
        params["password"] = unquote(spec.password)
    for key in _LIBPQ_OPTIONS:
        if key in opts:
            params[key] = opts[key]
    if params.get("sslmode", "prefer") not in _SSLMODES:
        raise ConfigError(f"sslmode={params['sslmode']!r} in {display!r}: one of {_SSLMODES}")
    try:
        stmt = int(parse_duration(opts.get("statement_timeout", "30s"), "statement_timeout",
                                  display) * 1000)
        pool_size = int(overrides.pop("pool_size", opts.get("pool_size", "10")))
        pool_timeout = parse_duration(opts.get("pool_timeout", "10s"), "pool_timeout", display)
    except ValueError as exc:
        raise ConfigError(f"bad option in {display!r}: {exc}") from None
    ttl = overrides.pop("ttl", None)
    if ttl is None:
        ttl = parse_duration(opts.get("ttl", "0"), "ttl", display)
    # session settings travel in the startup packet: no extra round trip per connection
    params["options"] = f"-c statement_timeout={stmt} -c TimeZone=UTC"
    psycopg = driver()
    conninfo = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})
    return PostgresOptions(
        conninfo=conninfo,
        display=display,
        schema=str(overrides.pop("schema", opts.get("schema", "durable_ext"))),
        pool_size=pool_size,
        pool_timeout=pool_timeout,
        statement_timeout_ms=stmt,
        ttl=float(ttl),
        notify=_flag(opts.get("notify", "true"), "notify", display),
        init=bool(overrides.pop("init", _flag(opts.get("init", "false"), "init", display))),
    )


class Secrets:
    """Masks the password of one URL wherever it could appear in a message."""

    def __init__(self, spec: StoreSpec) -> None:
        raw = spec.password or ""
        self._values = [v for v in {raw, unquote(raw)} if len(v) >= 1]

    def mask(self, text: str) -> str:
        """Return ``text`` with every occurrence of the password replaced by ``***``."""
        for value in self._values:
            text = text.replace(value, "***")
        return text


#: connection failures that retrying cannot fix (libpq reports them without a SQLSTATE)
_PERMANENT_CONNECT = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "role",
    "certificate",
    "SSL",
    "invalid",
)


def diagnose_connect(opts: PostgresOptions, secrets: Secrets, what: str) -> None:
    """After a pool timeout: connect once directly and raise a permanent failure's reason.

    The pool only says it got no connection in time; a wrong password or database name
    would be retried for nothing. A transient reason (refused, timed out) returns quietly.
    """
    psycopg = driver()
    try:
        conn = psycopg.connect(opts.conninfo, autocommit=True,
                               connect_timeout=max(1, int(opts.pool_timeout)))
    except psycopg.OperationalError as exc:
        text = str(exc).strip()
        if "refused" in text or "timeout" in text or "timed out" in text:
            return
        if any(marker in text for marker in _PERMANENT_CONNECT):
            raise StoreError(
                f"PostgreSQL refused the connection during {what} at {opts.display}: "
                f"{secrets.mask(text.splitlines()[0])}"
            ) from exc
        return
    conn.close()


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", None) or "")


def transient(exc: BaseException) -> bool:
    """Whether a driver error is worth retrying (lost connection, failover, serialization)."""
    psycopg = driver()
    pool = _pool_module()
    if isinstance(exc, pool.PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = _sqlstate(exc)
    return not state.startswith(_PERMANENT_CLASSES)


@contextmanager
def translated(what: str, where: str, secrets: Secrets) -> Iterator[None]:
    """Driver errors -> the store's errors, masked; transient ones are retryable."""
    psycopg = driver()
    try:
        yield
    except psycopg.Error as exc:
        detail = secrets.mask(str(exc).strip().splitlines()[0] if str(exc).strip() else
                              type(exc).__name__)
        if transient(exc):
            raise StoreUnavailableError(
                f"PostgreSQL is unavailable during {what} at {where}: {detail}"
            ) from exc
        state = _sqlstate(exc)
        if state in ("42P01", "3F000", "42883"):
            raise StoreError(
                f"PostgreSQL {what} at {where}: the store's schema is missing or out of date "
                f"({detail}); run: durable-ext backend init '{where}'"
            ) from exc
        raise StoreError(f"PostgreSQL error during {what} at {where}: {detail}") from exc
    except _pool_module().PoolTimeout as exc:  # pragma: no cover - PoolTimeout is a psycopg.Error
        raise StoreUnavailableError(
            f"PostgreSQL is unavailable during {what} at {where}: {secrets.mask(str(exc))}"
        ) from exc


def open_pool(opts: PostgresOptions) -> Any:
    """Open a psycopg pool of autocommit connections (a statement is a transaction)."""
    pool = _pool_module()
    return pool.ConnectionPool(
        opts.conninfo,
        min_size=1,
        max_size=opts.pool_size,
        timeout=opts.pool_timeout,
        kwargs={"autocommit": True},
        open=True,
        name=f"durable-ext:{opts.schema}",
        # a connection that failed a check is dropped; the pool replaces it in the background
        reconnect_timeout=300.0,
        max_lifetime=1800.0,
    )
