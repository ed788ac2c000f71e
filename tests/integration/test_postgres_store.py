"""PostgresStore on a real PostgreSQL server: the StoreContract suite and Postgres specifics."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from durable_ext.backends import open_store
from durable_ext.backends.postgres import PostgresStore
from durable_ext.backends.store import ClaimingStore, DueEntry, WakingStore
from durable_ext.errors import (
    ConfigError,
    ConflictError,
    MissingDependencyError,
    NotFoundError,
    SpecError,
    StoreError,
    StoreUnavailableError,
)
from durable_ext.testing.contract import StoreContract, make_create, next_batch

pytestmark = pytest.mark.integration


def _url(server: Any, **options: str) -> str:
    query = "&".join(
        f"{k}={v}"
        for k, v in {"schema": f"t{uuid.uuid4().hex[:10]}", "init": "true", **options}.items()
    )
    return f"{server.url}?{query}"


def _open(url: str) -> PostgresStore:
    s = open_store(url)
    assert isinstance(s, PostgresStore)
    return s


class TestPostgresContract(StoreContract):
    @pytest.fixture
    def url(self, postgres_server: Any) -> str:
        return _url(postgres_server)

    @pytest.fixture
    def store(self, url: str) -> Iterator[PostgresStore]:
        s = _open(url)
        yield s
        s.close()

    @pytest.fixture
    def other(self, url: str) -> Iterator[PostgresStore]:
        s = _open(url)
        yield s
        s.close()


@pytest.fixture
def store(postgres_server: Any) -> Iterator[PostgresStore]:
    s = _open(_url(postgres_server))
    yield s
    s.close()


def test_both_schemes_and_capabilities(postgres_server: Any) -> None:
    url = _url(postgres_server)
    for scheme in ("postgres", "postgresql"):
        s = _open(url.replace("postgres://", f"{scheme}://", 1))
        assert isinstance(s, ClaimingStore) and isinstance(s, WakingStore)
        s.create(make_create())
        s.close()


def counting(store: PostgresStore) -> list[int]:
    """Count the statements the store's connections send from now on."""
    sent = [0]
    inner = store._run

    def call(what: str, fn: Any) -> Any:
        def counted(conn: Any) -> Any:
            class Counting:
                def execute(self, *a: Any, **k: Any) -> Any:
                    sent[0] += 1
                    return conn.execute(*a, **k)

                def __getattr__(self, name: str) -> Any:
                    return getattr(conn, name)

            return fn(Counting())

        return inner(what, counted)

    store._run = call  # type: ignore[method-assign]
    return sent


def test_commit_is_one_statement_whatever_the_batch(store: PostgresStore) -> None:
    created = make_create()
    store.create(created)
    sent = counting(store)
    header = created.header
    for ops, events in ((1, 1), (3, 4), (400, 600)):
        batch = next_batch(header, ops=ops, events=events)
        before = sent[0]
        store.commit(batch)
        assert sent[0] - before == 1
        header = batch.header
    before = sent[0]
    assert store.header(header.arn).revision == header.revision
    assert len(store.touched_after(header.arn, 0)) == 404
    assert len(store.operations(header.arn, ["op-1", "op-400"])) == 2
    assert sent[0] - before == 3


def test_retried_commit_is_recognised_not_applied_twice(store: PostgresStore) -> None:
    from durable_ext.backends import _postgres_sql as q

    created = make_create()
    store.create(created)
    batch = next_batch(created.header, ops=2, events=2)
    params = store._params(batch, "cid-1")
    assert store._write(q.COMMIT, params, "first attempt")
    # the reply was lost; the retry (same commit id) matches nothing and is recognised
    real = store._params
    store._params = lambda b, cid: params  # type: ignore[method-assign]
    try:
        store.commit(batch)
    finally:
        store._params = real  # type: ignore[method-assign]
    assert store.header(created.header.arn).revision == batch.header.revision
    assert len(store.events(created.header.arn)) == 3
    assert len(store.operations(created.header.arn)) == 3
    # the very same batch from another writer (another commit id) is a conflict
    with pytest.raises(ConflictError):
        store.commit(batch)


def test_schema_is_versioned_and_init_is_idempotent(postgres_server: Any) -> None:
    from durable_ext.backends.cli import init_backend

    schema = f"i{uuid.uuid4().hex[:10]}"
    url = f"{postgres_server.url}?schema={schema}"
    plain = _open(url)
    with pytest.raises(StoreError, match=r"durable-ext backend init"):
        plain.header(make_create().header.arn)
    plain.close()
    assert "created" in init_backend(url)
    assert "already at version" in init_backend(url)
    s = _open(url)
    b = make_create()
    s.create(b)
    assert s.header(b.header.arn) == b.header
    with s.pool.connection() as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
        conn.execute(f'UPDATE "{schema}".meta SET value = %s WHERE key = %s',
                     ("99", "schema_version"))
    assert tables == {"meta", "executions", "operations", "events", "due"}
    s.close()
    newer = _open(url)
    with pytest.raises(ConfigError, match="newer"):
        newer.header(b.header.arn)
    newer.close()


def test_init_from_two_processes_at_once_is_safe(postgres_server: Any) -> None:

    url = f"{postgres_server.url}?schema=r{uuid.uuid4().hex[:10]}"
    stores = [_open(url) for _ in range(4)]
    errors: list[BaseException] = []

    def init(s: PostgresStore) -> None:
        try:
            s.init_schema()
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=init, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    stores[0].create(make_create())
    for s in stores:
        s.close()


def test_ttl_expires_finished_executions(postgres_server: Any) -> None:
    s = _open(_url(postgres_server, ttl="1"))
    alive = make_create(name="keeps")
    s.create(alive)
    done = make_create(name="order-9")
    s.create(done)
    s.commit(next_batch(done.header, ops=2, events=1, status="SUCCEEDED", end_ms=2000))
    assert s.header(done.header.arn).status == "SUCCEEDED"  # kept for the TTL
    time.sleep(1.2)
    with pytest.raises(NotFoundError):
        s.header(done.header.arn)
    assert [h.arn for h in s.list_executions().headers] == [alive.header.arn]
    # the expired execution's name is free again, and its rows are deleted
    again = s.create(make_create(name="order-9"))
    assert again.created and again.header.arn != done.header.arn
    with s.pool.connection() as conn:
        left = conn.execute(
            f'SELECT (SELECT count(*) FROM "{s.schema}".operations WHERE exec_id = %(id)s)'
            f' + (SELECT count(*) FROM "{s.schema}".events WHERE exec_id = %(id)s)',
            {"id": done.header.execution_id},
        ).fetchone()
    assert left == (0,)
    assert s.header(alive.header.arn).status == "RUNNING"
    s.close()


def test_schemas_isolate_stores(postgres_server: Any) -> None:
    a, b = _open(_url(postgres_server)), _open(_url(postgres_server))
    a.create(make_create())
    assert a.list_executions().headers and not b.list_executions().headers
    assert not b.due()
    a.close()
    b.close()


def test_claims_spread_workers_and_expire(store: PostgresStore) -> None:
    made = [make_create(start_ms=100 + i) for i in range(6)]
    for b in made:
        store.create(b)
    kw: dict[str, Any] = {"kinds": ["invoke"], "functions": ["fn"], "limit": 4, "hold_ms": 500}
    first = store.claim_due(1000, owner="w1", **kw)
    second = store.claim_due(1000, owner="w2", **kw)
    assert len(first.entries) == 4 and len(second.entries) == 2
    assert not {e.arn for e in first.entries} & {e.arn for e in second.entries}
    # the claimer sees its own claims again; others after the hold has passed
    assert len(store.claim_due(1000, owner="w1", **kw).entries) == 4
    assert len(store.claim_due(1600, owner="w2", **kw).entries) == 4
    assert store.claim_due(1000, owner="w3", **{**kw, "functions": ["other"]}).entries == []
    # the earliest later due time comes along, for an idle worker's sleep
    arn = made[0].header.arn
    wake = DueEntry(arn=arn, key="wake:x", kind="wake", due_ms=5000)
    store.commit(next_batch(store.header(arn), ops=0, events=0, due_set=[wake]))
    claim = store.claim_due(1000, owner="w4", **{**kw, "kinds": ["wake"]})
    assert claim.entries == [] and claim.next_due_ms == 5000
    # replacing an entry drops its claim
    h = store.header(made[1].header.arn)
    moved = DueEntry(arn=h.arn, key="invoke", kind="invoke", due_ms=900)
    store.commit(next_batch(h, ops=0, events=0, due_set=[moved]))
    assert h.arn in {e.arn for e in store.claim_due(1000, owner="w5", **kw).entries}


def test_notify_wakes_a_listener_on_commit_only(store: PostgresStore) -> None:
    got: list[tuple[str, int]] = []
    arrived = threading.Event()

    def on_due(kind: str, due_ms: int) -> None:
        got.append((kind, due_ms))
        if kind:
            arrived.set()

    sub = store.listen_due(on_due)
    try:
        deadline = time.monotonic() + 10
        while ("", 0) not in got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ("", 0) in got  # connected: "look once" is the first signal
        b = make_create(start_ms=4242)
        store.create(b)
        assert arrived.wait(10)
        assert ("invoke", 4242) in got
        # a refused commit sends nothing
        arrived.clear()
        stale = next_batch(b.header, ops=0, events=0, due_set=[
            DueEntry(arn=b.header.arn, key="wake:y", kind="wake", due_ms=7)])
        store.commit(stale)
        with pytest.raises(ConflictError):
            store.commit(stale)
        assert arrived.wait(10)
        time.sleep(0.3)
        assert [g for g in got if g[0] == "wake"] == [("wake", 7)]
    finally:
        sub.close()


def test_unknown_option_is_rejected(postgres_server: Any) -> None:
    with pytest.raises(SpecError, match=r"unknown option.*colour"):
        open_store(f"{postgres_server.url}?colour=blue")


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("schema=Bad-Name", "schema="),
        ("sslmode=sometimes", "sslmode"),
        ("pool_size=0", "pool_size"),
        ("statement_timeout=soon", "statement_timeout"),
        ("notify=maybe", "notify"),
    ],
)
def test_bad_option_values_are_clear_errors(query: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        open_store(f"postgres://u:pw@127.0.0.1:1/db?{query}")


def test_url_options_reach_the_connection(postgres_server: Any) -> None:
    s = _open(_url(postgres_server, statement_timeout="1.5",
                   application_name="orders", pool_size="3", sslmode="disable"))
    assert s.options.pool_size == 3 and s.pool.max_size == 3
    with s.pool.connection() as conn:
        row = conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('application_name')"
        ).fetchone()
    assert row == ("1500ms", "orders")
    s.close()


def test_statement_timeout_is_enforced(postgres_server: Any) -> None:
    s = _open(_url(postgres_server, statement_timeout="0.2"))
    s.create(make_create())
    with pytest.raises(StoreUnavailableError, match="statement timeout"):
        s._run("slow read", lambda conn: conn.execute("SELECT pg_sleep(2)").fetchone())
    s.close()


def test_unreachable_server_is_unavailable_and_masks_the_password() -> None:
    from servers import free_port

    url = (f"postgres://app:s3cr%40t-pw@127.0.0.1:{free_port()}/db"
           "?connect_timeout=1&pool_timeout=0.3")
    s = _open(url)
    try:
        with pytest.raises(StoreUnavailableError, match="PostgreSQL is unavailable") as info:
            s.header(make_create().header.arn)
    finally:
        s.close()
    assert "s3cr" not in str(info.value) and "***" in str(info.value)
    assert "s3cr" not in repr(s.options) and "s3cr" not in str(s.options)


def test_wrong_password_is_permanent_and_masked(postgres_server: Any) -> None:
    # trust authentication accepts any password: a missing database is the permanent case
    url = postgres_server.url.replace("/postgres", "/nosuchdb").replace(
        "durable@", "durable:hunter2@")
    s = _open(url + "?pool_timeout=2")
    t0 = time.monotonic()
    with pytest.raises(StoreError) as info:
        s.header(make_create().header.arn)
    s.close()
    assert "hunter2" not in str(info.value)
    assert not isinstance(info.value, StoreUnavailableError)  # not retried for nothing
    assert 'database "nosuchdb" does not exist' in str(info.value)
    assert time.monotonic() - t0 < 10


def test_backend_init_names_what_it_did(postgres_server: Any) -> None:
    from durable_ext.backends.cli import init_backend

    url = f"{postgres_server.url.replace('durable@', 'durable:pw@')}?schema=c{uuid.uuid4().hex[:8]}"
    out = init_backend(url)
    assert "PostgreSQL" in out and "created" in out and "pw" not in out.replace("postgres", "")


def test_missing_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'durable-ext\[postgres\]'"):
        open_store("postgres://127.0.0.1:1/db")


def test_event_gap_and_unknown_arn_write_nothing(store: PostgresStore) -> None:
    b = make_create()
    store.create(b)
    with pytest.raises(NotFoundError):
        store.commit(next_batch(make_create().header))
    with pytest.raises(NotFoundError):
        store.operations(make_create().header.arn)
    with pytest.raises(NotFoundError):
        store.events(make_create().header.arn)
    with pytest.raises(NotFoundError):
        store.due(arn=make_create().header.arn)


def test_terminated_connections_are_retried(postgres_server: Any) -> None:
    """An administrator (or a failover) ends every connection of the store: the next reads
    and commits go through on new connections, applied once."""
    import psycopg

    s = _open(_url(postgres_server, application_name="victim", pool_size="3"))
    b = make_create()
    s.create(b)
    header = b.header
    for _ in range(3):
        with psycopg.connect(postgres_server.url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'victim'"
            ).fetchone()
        assert ended is not None and ended[0] >= 1
        batch = next_batch(header, ops=1, events=1)
        s.commit(batch)  # AdminShutdown on the dead connection, then a fresh one
        header = batch.header
    assert s.header(header.arn).revision == header.revision
    assert [e.event_id for e in s.events(header.arn)] == [1, 2, 3, 4]
    s.close()
