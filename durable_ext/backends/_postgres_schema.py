"""The PostgreSQL store's tables, and their versioned, idempotent creation and migration.

All tables live in one schema of the user's choice (``?schema=``, default ``durable_ext``)::

    meta        key -> value: 'schema_version', 'secret' (the store's MAC secret)
    executions  one row per execution: indexed header columns + the header JSON ('doc'),
                'revision' (the compare-and-set), 'cid' (id of the last commit, so a
                retried commit is recognised), 'expires_ms' (TTL of finished executions);
                UNIQUE (function_name, name) is the execution-name claim
    operations  one row per operation (exec_id, op_id): creation index, touched sequence
    events      one row per history event (exec_id, event_id)
    due         one row per due entry (exec_id, key): the due-time index, with the
                claim columns workers set under FOR UPDATE SKIP LOCKED

Text keys use the "C" collation, so ORDER BY sorts them by code point, as every other
store does. :func:`migrate` applies the steps above the stored version under an advisory
lock inside one transaction: running it twice, or from two processes at once, is safe.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA_VERSION", "migrate", "read_version"]

_STEPS: tuple[tuple[str, ...], ...] = (
    # 1: the tables and indexes of the first release
    (
        """CREATE TABLE IF NOT EXISTS {s}.executions (
            exec_id text COLLATE "C" PRIMARY KEY,
            arn text COLLATE "C" NOT NULL UNIQUE,
            function_name text COLLATE "C" NOT NULL,
            name text COLLATE "C" NOT NULL,
            status text COLLATE "C" NOT NULL,
            start_ms bigint NOT NULL,
            revision bigint NOT NULL,
            event_count bigint NOT NULL,
            cid text COLLATE "C" NOT NULL,
            doc text NOT NULL,
            expires_ms bigint,
            CONSTRAINT executions_name_claim UNIQUE (function_name, name)
        )""",
        "CREATE INDEX IF NOT EXISTS executions_list ON {s}.executions (start_ms DESC, arn)",
        "CREATE INDEX IF NOT EXISTS executions_list_fn ON {s}.executions "
        "(function_name, start_ms DESC, arn)",
        "CREATE INDEX IF NOT EXISTS executions_list_status ON {s}.executions "
        "(status, start_ms DESC, arn)",
        "CREATE INDEX IF NOT EXISTS executions_expiry ON {s}.executions (expires_ms) "
        "WHERE expires_ms IS NOT NULL",
        """CREATE TABLE IF NOT EXISTS {s}.operations (
            exec_id text COLLATE "C" NOT NULL,
            op_id text COLLATE "C" NOT NULL,
            idx bigint NOT NULL,
            touched bigint NOT NULL,
            doc text NOT NULL,
            PRIMARY KEY (exec_id, op_id)
        )""",
        "CREATE INDEX IF NOT EXISTS operations_touched ON {s}.operations (exec_id, touched)",
        """CREATE TABLE IF NOT EXISTS {s}.events (
            exec_id text COLLATE "C" NOT NULL,
            event_id bigint NOT NULL,
            doc text NOT NULL,
            PRIMARY KEY (exec_id, event_id)
        )""",
        """CREATE TABLE IF NOT EXISTS {s}.due (
            exec_id text COLLATE "C" NOT NULL,
            key text COLLATE "C" NOT NULL,
            kind text COLLATE "C" NOT NULL,
            due_ms bigint NOT NULL,
            arn text COLLATE "C" NOT NULL,
            function_name text COLLATE "C" NOT NULL,
            data text NOT NULL,
            claimed_by text COLLATE "C",
            claimed_until bigint,
            PRIMARY KEY (exec_id, key)
        )""",
        "CREATE INDEX IF NOT EXISTS due_time ON {s}.due (due_ms, arn, key)",
        "CREATE INDEX IF NOT EXISTS due_kind_time ON {s}.due (kind, due_ms)",
    ),
)

SCHEMA_VERSION = len(_STEPS)
"""The version this code writes and expects."""


def _quoted(schema: str) -> str:
    # the schema name is checked against [a-z_][a-z0-9_]* when the URL is parsed
    return '"' + schema + '"'


def read_version(conn: Any, schema: str) -> int | None:
    """Return the stored schema version, or None when the schema holds no store."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{_quoted(schema)}.meta",)
    ).fetchone()
    if not row or not row[0]:
        return None
    got = conn.execute(
        f"SELECT value FROM {_quoted(schema)}.meta WHERE key = 'schema_version'"
    ).fetchone()
    return int(got[0]) if got else 0


def migrate(conn: Any, schema: str) -> tuple[int | None, int]:
    """Create or upgrade the store's tables in ``schema``; returns (version before, after).

    Runs in one transaction on ``conn`` (an autocommit connection), serialised with every
    other migration of the same schema by a transaction-level advisory lock.

    Raises:
        ConfigError: the schema was written by a newer version of durable_ext.

    """
    from durable_ext.errors import ConfigError

    s = _quoted(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"durable_ext:{schema}",))
        before = read_version(conn, schema)
        current = before or 0
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.meta "
            '(key text COLLATE "C" PRIMARY KEY, value text NOT NULL)'
        )
        if current > SCHEMA_VERSION:
            raise ConfigError(
                f"schema {schema!r} is at version {current}, newer than this durable_ext "
                f"understands ({SCHEMA_VERSION}); upgrade durable_ext"
            )
        pending = [st.replace("{s}", s) for step in _STEPS[current:] for st in step]
        if pending:
            # one round trip: parameterless statements go through the simple protocol
            conn.execute(";\n".join(pending).encode(), prepare=False)
        conn.execute(
            f"INSERT INTO {s}.meta (key, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (str(SCHEMA_VERSION),),
        )
    return before, SCHEMA_VERSION
