"""DynamoDBStore on a real moto server: the StoreContract suite and DynamoDB-specific behaviour."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from durable_ext.backends import open_store
from durable_ext.backends._dynamodb_schema import create_table
from durable_ext.backends.dynamodb import DynamoDBStore
from durable_ext.backends.store import OperationRecord
from durable_ext.errors import ConfigError, SpecError, StoreError
from durable_ext.testing.contract import StoreContract, make_create, next_batch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def table(moto_serial_server: Any) -> str:
    name = moto_serial_server.unique("durable")
    create_table(moto_serial_server.client("dynamodb"), name)
    return name


def counted_client(moto_serial_server: Any) -> tuple[Any, Counter[str]]:
    """A boto3 client that counts the requests it sends, by operation name."""
    client = moto_serial_server.client("dynamodb")
    sent: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        sent[model.name] += 1

    client.meta.events.register("before-call.dynamodb", count)
    return client, sent


def _store(moto_serial_server: Any, table: str, **kwargs: Any) -> DynamoDBStore:
    client = kwargs.pop("client", None) or moto_serial_server.client("dynamodb")
    return DynamoDBStore(client, table, prefix=f"t{uuid.uuid4().hex[:8]}", **kwargs)


class TestDynamoDBContract(StoreContract):
    @pytest.fixture
    def store(self, moto_serial_server: Any, table: str) -> Iterator[DynamoDBStore]:
        s = _store(moto_serial_server, table)
        yield s
        s.close()

    @pytest.fixture
    def other(self, moto_serial_server: Any, store: DynamoDBStore) -> Iterator[DynamoDBStore]:
        s = DynamoDBStore(moto_serial_server.client("dynamodb"), store.table, prefix=store.prefix)
        yield s
        s.close()


def test_opens_by_url(moto_serial_server: Any, table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s = open_store(
        f"dynamodb://{table}?region=us-east-1&endpoint_url={moto_serial_server.endpoint_url}&prefix=u1"
    )
    assert isinstance(s, DynamoDBStore) and s.table == table and s.prefix == "u1"
    b = make_create()
    assert s.create(b).created
    assert s.header(b.header.arn) == b.header


def test_commit_is_one_write_request(moto_serial_server: Any, table: str) -> None:
    client, sent = counted_client(moto_serial_server)
    s = _store(moto_serial_server, table, client=client)
    created = make_create()
    s.create(created)
    header = created.header
    for ops, events in ((1, 1), (10, 20), (40, 55)):
        batch = next_batch(header, ops=ops, events=events)
        sent.clear()
        s.commit(batch)
        assert sent == Counter({"TransactWriteItems": 1})
        header = batch.header
    assert len(s.operations(header.arn)) == 52


def test_batch_above_transaction_limit_commits_atomically(
    moto_serial_server: Any, table: str
) -> None:
    client, sent = counted_client(moto_serial_server)
    s = _store(moto_serial_server, table, client=client)
    created = make_create()
    s.create(created)
    big = next_batch(created.header, ops=150, events=160)
    sent.clear()
    s.commit(big)
    assert sent["TransactWriteItems"] == 1  # the commit point
    arn = big.header.arn
    assert s.header(arn) == big.header
    assert len(s.operations(arn)) == 151
    assert [e.event_id for e in s.events(arn)] == list(range(1, 162))
    # nothing of the redo record is left behind
    items = client.query(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": s._pk(big.header.execution_id)}},
    )
    assert not [i for i in items["Items"] if i["sk"]["S"].startswith("R#")]


def test_half_applied_large_batch_is_finished_by_the_next_reader(
    moto_serial_server: Any, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _store(moto_serial_server, table)
    created = make_create()
    s.create(created)
    big = next_batch(created.header, ops=120, events=1)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("writer died after the commit point")

    monkeypatch.setattr(s, "_apply_redo", crash)
    with pytest.raises(KeyboardInterrupt):
        s.commit(big)
    monkeypatch.undo()
    reader = DynamoDBStore(moto_serial_server.client("dynamodb"), table, prefix=s.prefix)
    arn = big.header.arn
    assert reader.header(arn).revision == big.header.revision
    assert len(reader.operations(arn)) == 121
    follow = next_batch(big.header, ops=1, events=1)
    reader.commit(follow)
    assert reader.header(arn).revision == follow.header.revision


def test_conflicting_large_batch_changes_nothing(moto_serial_server: Any, table: str) -> None:
    from durable_ext.errors import ConflictError

    s = _store(moto_serial_server, table)
    created = make_create()
    s.create(created)
    s.commit(next_batch(created.header, ops=1, events=1))
    stale = next_batch(created.header, ops=130, events=1)
    with pytest.raises(ConflictError):
        s.commit(stale)
    assert len(s.operations(created.header.arn)) == 2


def test_record_above_item_limit_is_refused_before_writing(
    moto_serial_server: Any, table: str
) -> None:
    s = _store(moto_serial_server, table)
    created = make_create()
    s.create(created)
    batch = next_batch(created.header, ops=0, events=1)
    huge = OperationRecord(
        op_id="big", index=1, touched=1, data={"Id": "big", "Blob": "x" * 500_000}
    )
    bad = type(batch)(
        header=batch.header.evolve(op_count=2, seq_counter=1),
        expected_revision=1,
        operations=[huge],
        events=batch.events,
    )
    with pytest.raises(StoreError, match="400 KB item limit"):
        s.commit(bad)
    assert s.header(created.header.arn).revision == 1


def test_ttl_stamps_every_item_of_a_finished_execution(moto_serial_server: Any, table: str) -> None:
    client = moto_serial_server.client("dynamodb")
    s = _store(moto_serial_server, table, ttl=3600)
    created = make_create()
    s.create(created)
    b1 = next_batch(created.header, ops=3, events=3)
    s.commit(b1)
    s.commit(next_batch(b1.header, ops=0, events=1, status="SUCCEEDED", end_ms=5))
    pk = s._pk(created.header.execution_id)
    items = client.query(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": pk}},
    )["Items"]
    assert items and all("exp" in i for i in items)
    name = client.get_item(
        TableName=table,
        Key={"pk": {"S": f"{s.prefix}N#fn#{created.header.name}"}, "sk": {"S": "N"}},
    )["Item"]
    assert "exp" in name
    ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "exp" and ttl["TimeToLiveStatus"] == "ENABLED"


def test_missing_table_is_a_clear_error(moto_serial_server: Any) -> None:
    with pytest.raises(ConfigError, match=r"does not exist.*durable-ext backend init"):
        DynamoDBStore(moto_serial_server.client("dynamodb"), "no-such-table")


def _foreign_table(moto: Any, stem: str, *, key: str) -> str:
    """Create a table with one string hash key ``key``, not the store's schema."""
    name: str = moto.unique(stem)
    moto.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
    )
    return name


def test_foreign_schema_is_a_clear_error(moto_serial_server: Any) -> None:
    name = _foreign_table(moto_serial_server, "foreign", key="id")
    with pytest.raises(
        ConfigError, match=r"does not have the durable_ext schema.*index touched is missing"
    ):
        DynamoDBStore(moto_serial_server.client("dynamodb"), name)


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(SpecError, match=r"unknown option.*colour"):
        open_store("dynamodb://t?region=us-east-1&colour=blue")


def _backend_cli(argv: list[str]) -> int:
    import argparse

    from durable_ext.backends.cli import register

    parser = argparse.ArgumentParser(prog="durable-ext")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_backend_init_creates_then_verifies_the_table(
    moto_serial_server: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    name = moto_serial_server.unique("Init")
    url = f"dynamodb://{name}?region=us-east-1&endpoint_url={moto_serial_server.endpoint_url}"
    assert _backend_cli(["backend", "init", url]) == 0
    assert "created" in capsys.readouterr().out
    assert _backend_cli(["backend", "init", url]) == 0
    assert "already exists, schema verified" in capsys.readouterr().out
    store = open_store(url)
    assert store.create(make_create()).created


def test_backend_init_refuses_a_foreign_table(
    moto_serial_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from durable_ext.backends.cli import init_backend

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    name = _foreign_table(moto_serial_server, "other", key="pk")
    url = f"dynamodb://{name}?region=us-east-1&endpoint_url={moto_serial_server.endpoint_url}"
    with pytest.raises(ConfigError, match="key schema is"):
        init_backend(url)


def test_map_over_150_items_commits_batches_above_the_transaction_limit(
    moto_serial_server: Any, table: str
) -> None:
    from aws_durable_execution_sdk_python import DurableContext, durable_execution

    from durable_ext.runtime import Runtime, VirtualClock

    @durable_execution
    def fan_out(event: Any, ctx: DurableContext) -> int:
        result = ctx.map(list(range(150)), lambda c, item, i, items: item * 2, name="double")
        return sum(result.get_results())

    client, sent = counted_client(moto_serial_server)
    store = _store(moto_serial_server, table, client=client)
    with Runtime(backend=store, clock=VirtualClock()) as rt:
        rt.register("fan_out", fan_out)
        desc = rt.run("fan_out", {})
        assert desc["Status"] == "SUCCEEDED", desc
        assert desc["Result"] == str(sum(i * 2 for i in range(150)))
        arn = desc["DurableExecutionArn"]
        assert len(store.operations(arn)) == 152  # the execution, the map, 150 children
    # some checkpoint batches held more than 100 items: they took the redo path
    assert sent["BatchWriteItem"] > 0
    items = client.query(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": store._pk(arn.rsplit("/", 1)[-1])}},
    )["Items"]
    assert not [i for i in items if i["sk"]["S"].startswith("R#")]  # no redo record left
