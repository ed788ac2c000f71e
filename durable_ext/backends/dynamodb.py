"""DynamoDBStore: executions in one DynamoDB table (``dynamodb://TABLE?region=...``).

The table layout is in :mod:`durable_ext.backends._dynamodb_schema` (and docs/fleet.md).
A checkpoint batch is **one** ``TransactWriteItems`` request: a conditional update of the
header item (``rev = :expected``, the compare-and-set) plus a put per touched operation,
per new event and per due entry set, and a delete per due entry cleared. It writes only
what the batch holds, so its cost does not grow with the execution.

Limits, and what happens above them:

* **400 KB per item.** Each record is one item; the SDK keeps checkpoint payloads under
  256 KB, so records fit. A record above the limit is refused with a
  :class:`~durable_ext.errors.StoreError` naming it, before anything is written.
* **100 items / 4 MB per transaction.** A larger batch (a map or parallel checkpointing
  hundreds of children at once) is committed through a redo record: the batch is written
  as chunk items that nothing reads yet, then the conditional header update (the commit
  point) marks it pending, then its items are applied with ``BatchWriteItem`` and the mark
  is removed. A reader that finds the mark (the writer died midway) finishes the job
  first, so a commit is still all or nothing. Such a batch costs
  ``2 + 2 * ceil(chunks / 25) + ceil(items / 25)`` write requests (chunks of 300 KB).

URL options: ``region``, ``endpoint_url``, ``profile``, ``prefix`` (prefix of every
partition key, so stores can share a table), ``ttl`` (how long finished executions are
kept: seconds or ``15m``/``12h``/``14d``; default 0 = forever) and ``verify`` (``false``
skips the ``DescribeTable`` check made when the store opens).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any, ClassVar, TypeVar

from durable_ext._aws import classify
from durable_ext._aws import make_client as aws_client
from durable_ext.backends._base import page_marker
from durable_ext.backends._dynamodb_schema import TTL_ATTRIBUTE, verify_table
from durable_ext.backends._remote import (
    RemoteStore,
    dumps,
    execution_id_of,
    list_key,
    marker_key,
    records,
    remote_options,
    sort_due,
    terminal,
)
from durable_ext.backends.store import (
    CommitBatch,
    CreateResult,
    DueEntry,
    ExecutionHeader,
    ExecutionPage,
    HistoryEvent,
    OperationRecord,
)
from durable_ext.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from durable_ext.spec import StoreSpec

__all__ = ["DynamoDBStore"]

T = TypeVar("T")
Item = dict[str, dict[str, Any]]

MAX_TX_ITEMS = 100
MAX_TX_BYTES = 4 * 1024 * 1024 - 64 * 1024  # a margin for DynamoDB's own per-item overhead
MAX_ITEM_BYTES = 400 * 1024
CHUNK_BYTES = 300 * 1024
_OPTIONS = ("region", "endpoint_url", "profile", "prefix", "ttl", "verify")


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def _size(item: Item) -> int:
    """DynamoDB's item size: attribute names plus values (UTF-8), plus a little."""
    total = 0
    for name, value in item.items():
        total += len(name.encode())
        for kind, v in value.items():
            if kind == "S":
                total += len(v.encode())
            elif kind == "B":
                total += len(v)
            elif kind == "N":
                total += len(v) // 2 + 1
            else:
                total += len(dumps(v))
    return total + 100


def _failure(exc: StoreError, code: str) -> dict[str, Any] | None:
    """Return the DynamoDB response behind ``exc`` if it failed with ``code``, else None."""
    from botocore.exceptions import ClientError

    cause = exc.__cause__
    if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == code:
        response: dict[str, Any] = dict(cause.response)
        return response
    return None


@contextmanager
def _translated(what: str, table: str) -> Iterator[None]:
    """Botocore errors -> the store's errors; throttling and network errors are retryable."""
    try:
        yield
    except Exception as exc:
        failure = classify(exc)
        if failure is None:
            raise
        if failure.retryable:
            raise StoreUnavailableError(
                f"DynamoDB {failure.label} during {what} on {table}: {failure.message}"
            ) from exc
        if failure.code == "ResourceNotFoundException":
            raise ConfigError(
                f"DynamoDB table {table!r} does not exist (during {what}); create it with "
                f"`durable-ext backend init dynamodb://{table}`"
            ) from exc
        raise StoreError(
            f"DynamoDB {failure.label} during {what} on {table}: {failure.message}"
        ) from exc


class DynamoDBStore(RemoteStore):
    """A store shared by every process that can reach one DynamoDB table.

    Args:
        client: A boto3 DynamoDB client (low level).
        table: The table name; it must have the schema ``durable-ext backend init`` creates.
        prefix: Prefix of every partition-key value.
        ttl: Seconds a finished execution is kept; 0 keeps it forever.
        verify: Check the table's schema now (one ``DescribeTable``).

    Example:
        >>> store = open_store("dynamodb://durable?region=eu-west-1")  # doctest: +SKIP
        >>> store.name
        'dynamodb'

    """

    name: ClassVar[str] = "dynamodb"

    def __init__(
        self, client: Any, table: str, *, prefix: str = "", ttl: float = 0.0, verify: bool = True
    ) -> None:
        if not table:
            raise ConfigError("the DynamoDB store needs a table: dynamodb://TABLE?region=...")
        if "#" in prefix or "|" in prefix:
            raise ConfigError(f"invalid DynamoDB key prefix {prefix!r}: no '#' or '|'")
        self.client = client
        self.table = table
        self.prefix = prefix
        self.ttl = float(ttl)
        self.write_requests = 0
        """Write requests sent so far (TransactWriteItems, BatchWriteItem, UpdateItem...)."""
        if verify:
            with _translated("DescribeTable", table):
                verify_table(client, table)

    @classmethod
    def from_spec(cls, spec: StoreSpec, **kwargs: Any) -> DynamoDBStore:
        """Build from ``dynamodb://TABLE?region=...&endpoint_url=...``; ``client=`` injects one."""
        url, prefix, ttl, client = remote_options(spec, kwargs, _OPTIONS, prefix="")
        opts = spec.options
        # the host part keeps its case here: table names are case-sensitive
        table = url.split("://", 1)[-1].split("?", 1)[0].strip("/")
        verify = kwargs.pop(
            "verify", opts.get("verify", "true").lower() not in ("false", "0", "no")
        )
        if kwargs:
            raise TypeError(
                f"DynamoDBStore takes client=, prefix=, ttl=, verify=; got {sorted(kwargs)}"
            )
        if client is None:
            client = make_client(opts)
        return cls(client, table, prefix=prefix, ttl=ttl, verify=bool(verify))

    # ------------------------------------------------------------------ plumbing

    def _errors(self, what: str) -> AbstractContextManager[None]:
        return _translated(what, self.table)

    def _call(self, what: str, fn: Callable[[], T], *, write: bool = False) -> T:
        if not write:
            return super()._call(what, fn)

        def counted() -> T:
            self.write_requests += 1  # every attempt is a request sent
            return fn()

        return super()._call(what, counted)

    def _claim_secret(self, offer: str) -> str:
        key = {"pk": _s(f"{self.prefix}S#secret"), "sk": _s("S")}
        # attribute_not_exists: the first process to ask makes the secret
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.put_item(
                TableName=self.table,
                Item={**key, "v": _s(offer)},
                ConditionExpression="attribute_not_exists(pk)",
            )
        item = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        value: str = item["Item"]["v"]["S"]
        return value

    def _pk(self, exec_id: str) -> str:
        return f"{self.prefix}X#{exec_id}"

    def _key(self, exec_id: str, sk: str) -> Item:
        return {"pk": _s(self._pk(exec_id)), "sk": _s(sk)}

    def _query(self, what: str, **kwargs: Any) -> Iterator[Item]:
        """Every item of a query, page by page."""
        args = {"TableName": self.table, **kwargs}
        while True:
            page = self._call(what, partial(self.client.query, **args))
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            args["ExclusiveStartKey"] = last

    # ------------------------------------------------------------------ items

    def _expiry(self, header: ExecutionHeader) -> int | None:
        if self.ttl <= 0 or not terminal(header):
            return None
        return int(time.time() + self.ttl)

    def _header_item(self, h: ExecutionHeader, cid: str) -> Item:
        lk = list_key(h.start_ms, h.arn)
        item: Item = {
            **self._key(h.execution_id, "H"),
            "rev": _n(h.revision),
            "st": _s(h.status),
            # the input never changes: it lives in its own attribute, written once, so a
            # commit never rewrites it (and never counts its size twice)
            "doc": _s(dumps({**h.to_dict(), "input_payload": None})),
            "inp": _s(h.input_payload),
            "cid": _s(cid),
            "ev": _n(h.event_count),
            "g1pk": _s(f"{self.prefix}L"),
            "g1sk": _s(lk),
            "g2pk": _s(f"{self.prefix}F#{h.function_name}"),
            "g2sk": _s(lk),
        }
        exp = self._expiry(h)
        if exp is not None:
            item[TTL_ATTRIBUTE] = _n(exp)
        return item

    def _writes(self, batch: CommitBatch) -> list[tuple[str, Item]]:
        """List the batch's puts and deletes but the header: ``("put"|"delete", item)``."""
        h = batch.header
        eid = h.execution_id
        exp = self._expiry(h)
        out: dict[str, tuple[str, Item]] = {}

        def put(sk: str, **attrs: dict[str, Any]) -> None:
            item: Item = {**self._key(eid, sk), **attrs}
            if exp is not None:
                item[TTL_ATTRIBUTE] = _n(exp)
            out[sk] = ("put", item)

        for op in batch.operations:
            put(f"O#{op.op_id}", t=_n(op.touched), d=_s(dumps(op.to_dict())))
        for ev in batch.events:
            put(f"E#{ev.event_id:012d}", d=_s(dumps(ev.data)))
        for key in batch.due_clear:
            out[f"D#{key}"] = ("delete", self._key(eid, f"D#{key}"))
        for d in batch.due_set:
            put(
                f"D#{d.key}",
                kind=_s(d.kind),
                d=_s(dumps(d.to_dict())),
                g1pk=_s(f"{self.prefix}D"),
                g1sk=_s(f"{d.due_ms:015d}|{eid}|{d.key}"),
            )
        writes = list(out.values())
        for action, item in writes:
            if action == "put" and _size(item) > MAX_ITEM_BYTES:
                raise StoreError(
                    f"record {item['sk']['S']!r} of {h.arn} is {_size(item) // 1024} KB, above "
                    f"DynamoDB's 400 KB item limit; nothing was written"
                )
        return writes

    def _tx(self, writes: list[tuple[str, Item]]) -> list[dict[str, Any]]:
        return [
            {"Put": {"TableName": self.table, "Item": item}}
            if action == "put"
            else {"Delete": {"TableName": self.table, "Key": item}}
            for action, item in writes
        ]

    def _header_update(
        self, batch: CommitBatch, cid: str, pend: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        h = batch.header
        item = self._header_item(h, cid)
        names = {"#rev": "rev", "#st": "st", "#doc": "doc", "#cid": "cid", "#ev": "ev"}
        values: dict[str, Any] = {
            ":rev": item["rev"],
            ":st": item["st"],
            ":doc": item["doc"],
            ":cid": item["cid"],
            ":ev": item["ev"],
            ":x": _n(batch.expected_revision),
        }
        sets = ["#rev = :rev", "#st = :st", "#doc = :doc", "#cid = :cid", "#ev = :ev"]
        condition = "#rev = :x AND attribute_not_exists(#pend)"
        if batch.events:
            # event ids continue the stored sequence without a gap
            values[":ev0"] = _n(batch.events[0].event_id - 1)
            condition += " AND #ev = :ev0"
        if TTL_ATTRIBUTE in item:
            names["#exp"] = TTL_ATTRIBUTE
            values[":exp"] = item[TTL_ATTRIBUTE]
            sets.append("#exp = :exp")
        if pend is not None:
            names["#pend"] = "pend"
            values[":pend"] = {"M": pend}
            sets.append("#pend = :pend")
        names["#pend"] = "pend"
        return {
            "Update": {
                "TableName": self.table,
                "Key": self._key(h.execution_id, "H"),
                "UpdateExpression": "SET " + ", ".join(sets),
                # the compare-and-set: a writer computed from an older revision loses, and
                # nothing commits on top of a large batch that is still being applied
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    # ------------------------------------------------------------------ writes

    def _transact(self, what: str, items: list[dict[str, Any]], token: str) -> list[str] | None:
        """Run a transaction; None on success, else the cancellation reason codes."""
        try:
            self._call(
                what,
                lambda: self.client.transact_write_items(
                    TransactItems=items, ClientRequestToken=token
                ),
                write=True,
            )
        except StoreError as exc:
            response = _failure(exc, "TransactionCanceledException")
            if response is None:
                raise
            reasons = response.get("CancellationReasons") or []
            return [str(r.get("Code") or "None") for r in reasons] or ["Unknown"]
        return None

    def _update_if(self, what: str, **request: Any) -> bool:
        """One conditional ``UpdateItem``; False when its condition did not hold."""
        try:
            self._call(
                what, partial(self.client.update_item, TableName=self.table, **request), write=True
            )
        except StoreError as exc:
            if _failure(exc, "ConditionalCheckFailedException") is None:
                raise
            return False
        return True

    def create(self, batch: CommitBatch) -> CreateResult:
        """Claim the name and write the execution in one transaction."""
        h = batch.header
        self._check(batch)
        cid = uuid.uuid4().hex
        header = self._header_item(h, cid)
        name_item: Item = {
            "pk": _s(f"{self.prefix}N#{h.function_name}#{h.name}"),
            "sk": _s("N"),
            "arn": _s(h.arn),
        }
        writes = self._writes(batch)
        if len(writes) + 2 > MAX_TX_ITEMS:
            raise StoreError(f"create of {h.arn}: {len(writes) + 2} items exceed one transaction")
        cond = {"ConditionExpression": "attribute_not_exists(pk)"}
        items = [
            # execution-name idempotency: only one creator of (function, name) wins
            {"Put": {"TableName": self.table, "Item": name_item, **cond}},
            {"Put": {"TableName": self.table, "Item": header, **cond}},
            *self._tx(writes),
        ]
        reasons = self._transact(f"create of {h.arn}", items, cid)
        if reasons is None:
            return CreateResult(True, h)
        if reasons[0] == "ConditionalCheckFailed":
            got = self._call(
                f"read of name {h.name}",
                lambda: self.client.get_item(
                    TableName=self.table,
                    Key={"pk": name_item["pk"], "sk": name_item["sk"]},
                    ConsistentRead=True,
                ),
            )
            holder = (got.get("Item") or {}).get("arn", {}).get("S")
            if holder == h.arn:
                return CreateResult(True, h)
            if holder:
                return CreateResult(False, self.header(holder))
        if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
            raise ConflictError(f"execution {h.arn} already exists")
        if "TransactionConflict" in reasons:
            raise ConflictError(f"execution name {h.name!r} is being created concurrently")
        raise StoreError(f"create of {h.arn} was cancelled: {reasons}")

    def commit(self, batch: CommitBatch) -> None:
        """One conditional transaction (or the redo path for batches above its limits)."""
        self._check(batch)
        h = batch.header
        cid = uuid.uuid4().hex
        writes = self._writes(batch)
        update = self._header_update(batch, cid)
        size = _size(self._header_item(h, cid)) + sum(_size(i) for _, i in writes)
        if _size(self._header_item(h, cid)) > MAX_ITEM_BYTES:
            raise StoreError(f"header of {h.arn} is above DynamoDB's 400 KB item limit")
        large = len(writes) + 1 > MAX_TX_ITEMS or size > MAX_TX_BYTES
        for _ in range(3):
            if large:
                reasons = self._commit_large(batch, cid, writes)
            else:
                reasons = self._transact(f"commit of {h.arn}", [update, *self._tx(writes)], cid)
            if reasons is None:
                break
            if reasons[0] != "ConditionalCheckFailed":
                if "TransactionConflict" in reasons:
                    raise ConflictError(
                        f"execution {h.arn} changed concurrently (transaction conflict)"
                    )
                raise StoreError(f"commit of {h.arn} was cancelled: {reasons}")
            raw = self._raw_header(h.execution_id)
            if raw is None:
                raise NotFoundError(f"no durable execution {h.arn!r}")
            if "pend" in raw:
                self._roll_forward(h.execution_id, raw["pend"]["M"])
                continue  # a large batch was still being applied; try again on top of it
            if int(raw["rev"]["N"]) == h.revision and raw.get("cid", {}).get("S") == cid:
                break  # our own retried request had gone through
            if (
                int(raw["rev"]["N"]) == batch.expected_revision
                and batch.events
                and int(raw["ev"]["N"]) != batch.events[0].event_id - 1
            ):
                raise StoreError(
                    f"commit for {h.arn}: event id {batch.events[0].event_id} breaks the "
                    f"sequence (expected {int(raw['ev']['N']) + 1})"
                )
            raise ConflictError(
                f"execution {h.arn} changed concurrently: expected revision "
                f"{batch.expected_revision}, found {raw['rev']['N']}"
            )
        else:
            raise ConflictError(f"execution {h.arn}: large batches kept landing concurrently")
        if self.ttl > 0 and terminal(h):
            self._stamp_expiry(h)

    def _batch_write(self, what: str, requests: list[dict[str, Any]]) -> None:
        """BatchWriteItem in groups of 25, resending unprocessed items (bounded)."""
        for start in range(0, len(requests), 25):
            pending = {self.table: requests[start : start + 25]}
            for attempt in range(10):
                out = self._call(
                    what, partial(self.client.batch_write_item, RequestItems=pending), write=True
                )
                pending = out.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise StoreUnavailableError(f"DynamoDB kept throttling {what} on {self.table}")

    @staticmethod
    def _requests(writes: list[tuple[str, Item]]) -> list[dict[str, Any]]:
        return [
            {"PutRequest": {"Item": item}} if action == "put" else {"DeleteRequest": {"Key": item}}
            for action, item in writes
        ]

    def _commit_large(
        self, batch: CommitBatch, cid: str, writes: list[tuple[str, Item]]
    ) -> list[str] | None:
        h = batch.header
        body = dumps(batch.to_dict()).encode()
        chunks = [body[i : i + CHUNK_BYTES] for i in range(0, len(body), CHUNK_BYTES)]
        prefix = f"R#{h.revision:012d}#{cid}#"
        self._batch_write(
            f"redo record of {h.arn}",
            [
                {
                    "PutRequest": {
                        "Item": {
                            **self._key(h.execution_id, f"{prefix}{i:05d}"),
                            "body": {"B": chunk},
                        }
                    }
                }
                for i, chunk in enumerate(chunks)
            ],
        )
        pend = {"rev": _n(h.revision), "n": _n(len(chunks)), "cid": _s(cid)}
        update = self._header_update(batch, cid, pend)
        reasons = self._transact(f"commit of {h.arn}", [update], cid)
        if reasons is None:
            self._apply_redo(h.execution_id, batch, pend, writes)
        return reasons

    def _apply_redo(
        self,
        exec_id: str,
        batch: CommitBatch | None,
        pend: dict[str, Any],
        writes: list[tuple[str, Item]] | None = None,
    ) -> None:
        """Apply a committed large batch's items, then clear the pending mark."""
        rev, cid, n = int(pend["rev"]["N"]), pend["cid"]["S"], int(pend["n"]["N"])
        prefix = f"R#{rev:012d}#{cid}#"
        chunk_keys = [self._key(exec_id, f"{prefix}{i:05d}") for i in range(n)]
        if batch is None:
            parts = {
                item["sk"]["S"]: item["body"]["B"]
                for item in self._query(
                    f"redo record of {exec_id}",
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :r)",
                    ExpressionAttributeValues={":pk": _s(self._pk(exec_id)), ":r": _s(prefix)},
                    ConsistentRead=True,
                )
            }
            if len(parts) != n:
                raise StoreError(
                    f"redo record of execution {exec_id} r{rev} is incomplete "
                    f"({len(parts)} of {n} chunks)"
                )
            body = b"".join(bytes(parts[k]) for k in sorted(parts))
            batch = CommitBatch.from_dict(json.loads(body))
            writes = self._writes(batch)
        assert writes is not None
        self._batch_write(f"apply of large batch r{rev} of {exec_id}", self._requests(writes))
        # a failed condition: another reader finished applying it first
        self._update_if(
            f"apply of large batch r{rev} of {exec_id}",
            Key=self._key(exec_id, "H"),
            UpdateExpression="REMOVE pend",
            ConditionExpression="pend.cid = :cid",
            ExpressionAttributeValues={":cid": _s(cid)},
        )
        self._batch_write(
            f"cleanup of {exec_id}", [{"DeleteRequest": {"Key": k}} for k in chunk_keys]
        )

    def _roll_forward(self, exec_id: str, pend: dict[str, Any]) -> None:
        self._apply_redo(exec_id, None, pend)

    def _stamp_expiry(self, h: ExecutionHeader) -> None:
        """Give every item of a finished execution the TTL attribute, once."""
        exp = self._expiry(h)
        if exp is None:
            return
        if not self._update_if(
            f"expiry of {h.arn}",
            Key=self._key(h.execution_id, "H"),
            UpdateExpression="SET stamped = :t",
            ConditionExpression="attribute_not_exists(stamped)",
            ExpressionAttributeValues={":t": _n(exp)},
        ):
            return  # already stamped by an earlier terminal commit
        rewrite: list[dict[str, Any]] = []
        for item in self._query(
            f"expiry of {h.arn}",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(self._pk(h.execution_id))},
            ConsistentRead=True,
        ):
            sk = item["sk"]["S"]
            if TTL_ATTRIBUTE in item or sk == "H":
                continue
            if sk.startswith(("O#", "E#", "R#")):
                # immutable once the execution is finished: rewriting a copy is safe
                rewrite.append({"PutRequest": {"Item": {**item, TTL_ATTRIBUTE: _n(exp)}}})
            else:
                self._set_expiry(item["pk"], item["sk"], exp)
        self._batch_write(f"expiry of {h.arn}", rewrite)
        self._set_expiry(_s(f"{self.prefix}N#{h.function_name}#{h.name}"), _s("N"), exp)

    def _set_expiry(self, pk: dict[str, str], sk: dict[str, str], exp: int) -> None:
        # a failed condition: the item is gone, nothing to expire
        self._update_if(
            "expiry",
            Key={"pk": pk, "sk": sk},
            UpdateExpression="SET #e = :e",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#e": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":e": _n(exp)},
        )

    # ------------------------------------------------------------------ reads

    def _raw_header(self, exec_id: str) -> Item | None:
        got = self._call(
            f"read of execution {exec_id}",
            lambda: self.client.get_item(
                TableName=self.table, Key=self._key(exec_id, "H"), ConsistentRead=True
            ),
        )
        item: Item | None = got.get("Item")
        return item

    def _settled(self, arn: str) -> ExecutionHeader:
        exec_id = execution_id_of(arn)
        for _ in range(5):
            raw = self._raw_header(exec_id)
            if raw is None:
                break
            if "pend" in raw:
                self._roll_forward(exec_id, raw["pend"]["M"])
                continue
            header = _header_from(raw)
            if header.arn != arn:
                break
            return header
        raise NotFoundError(f"no durable execution {arn!r}")

    def header(self, arn: str) -> ExecutionHeader:
        """Return the current header (finishing a half-applied large batch first)."""
        return self._settled(arn)

    def _header_of(self, arn: str, raw: Item | None) -> bool:
        """Whether ``raw`` is ``arn``'s settled header (False: pending batch rolled forward)."""
        if raw is None or raw.get("sk", {}).get("S") != "H":
            raise NotFoundError(f"no durable execution {arn!r}")
        if "pend" in raw:
            self._roll_forward(execution_id_of(arn), raw["pend"]["M"])
            return False
        if json.loads(raw["doc"]["S"])["arn"] != arn:
            raise NotFoundError(f"no durable execution {arn!r}")
        return True

    def operations(self, arn: str, ids: Iterable[str] | None = None) -> list[OperationRecord]:
        """Operation records in creation order; the header comes along in the same request."""
        exec_id = execution_id_of(arn)
        for _ in range(5):
            if ids is None:
                # "H" sorts right before "O#": one range query returns the header and the ops
                items = list(
                    self._query(
                        f"read of {arn}",
                        KeyConditionExpression="pk = :pk AND sk BETWEEN :h AND :o",
                        ExpressionAttributeValues={
                            ":pk": _s(self._pk(exec_id)),
                            ":h": _s("H"),
                            ":o": _s("O#\U0010ffff"),
                        },
                        ConsistentRead=True,
                    )
                )
                if not self._header_of(arn, items[0] if items else None):
                    continue
                recs = records(i["d"]["S"] for i in items[1:])
            else:
                got = self._batch_get(
                    arn,
                    [self._key(exec_id, "H")]
                    + [self._key(exec_id, f"O#{op}") for op in dict.fromkeys(ids)],
                )
                head = next((i for i in got if i["sk"]["S"] == "H"), None)
                if not self._header_of(arn, head):
                    continue
                recs = records(i["d"]["S"] for i in got if i["sk"]["S"] != "H")
            return recs
        raise StoreError(f"read of {arn}: large batches kept landing concurrently")

    def _batch_get(self, arn: str, keys: list[Item]) -> list[Item]:
        out_items: list[Item] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            for _ in range(10):
                out = self._call(
                    f"read of {arn}", partial(self.client.batch_get_item, RequestItems=request)
                )
                out_items += out.get("Responses", {}).get(self.table, [])
                request = out.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise StoreUnavailableError(f"DynamoDB kept throttling reads of {arn}")
        return out_items

    def touched_after(self, arn: str, seq: int) -> list[OperationRecord]:
        """Return records with ``touched > seq`` via the ``touched`` LSI (consistent)."""
        items = list(
            self._query(
                f"delta of {arn}",
                IndexName="touched",
                KeyConditionExpression="pk = :pk AND t > :t",
                ExpressionAttributeValues={
                    ":pk": _s(self._pk(execution_id_of(arn))),
                    ":t": _n(seq),
                },
                ConsistentRead=True,
            )
        )
        if not items:
            self._settled(arn)  # an empty answer: is there such an execution at all?
        return records(i["d"]["S"] for i in items)

    def _events(self, arn: str, after: int, limit: int | None, reverse: bool) -> list[HistoryEvent]:
        """History events, a range query over ``E#<id>`` sort keys."""
        pk = _s(self._pk(execution_id_of(arn)))
        if reverse and after > 0:
            cond, values = (
                "pk = :pk AND sk BETWEEN :lo AND :hi",
                {":pk": pk, ":lo": _s("E#"), ":hi": _s(f"E#{after - 1:012d}")},
            )
        elif reverse:
            cond, values = "pk = :pk AND begins_with(sk, :e)", {":pk": pk, ":e": _s("E#")}
        else:
            cond, values = (
                "pk = :pk AND sk BETWEEN :lo AND :hi",
                {":pk": pk, ":lo": _s(f"E#{after + 1:012d}"), ":hi": _s("E#~")},
            )
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": cond,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not reverse,
            "ConsistentRead": True,
        }
        if limit is not None:
            kwargs["Limit"] = limit
        out = []
        for item in self._query(f"history of {arn}", **kwargs):
            out.append(
                HistoryEvent(event_id=int(item["sk"]["S"][2:]), data=json.loads(item["d"]["S"]))
            )
            if limit is not None and len(out) >= limit:
                break
        if not out:
            self._settled(arn)
        return out

    def _read_due(
        self, until_ms: int | None, arn: str | None, kinds: list[str] | None, limit: int | None
    ) -> list[DueEntry]:
        """Due entries, earliest first: per execution (consistent) or from the ``gsi1`` index."""
        values: dict[str, Any] = {}
        flt = ""
        if kinds is not None:
            names = [f":k{i}" for i in range(len(kinds))]
            values.update({n: _s(k) for n, k in zip(names, kinds, strict=True)})
            flt = f"#kind IN ({', '.join(names)})"
        kwargs: dict[str, Any] = {}
        if arn is not None:
            values[":pk"] = _s(self._pk(execution_id_of(arn)))
            values[":d"] = _s("D#")
            kwargs.update(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :d)", ConsistentRead=True
            )
        else:
            values[":g"] = _s(f"{self.prefix}D")
            cond = "g1pk = :g"
            if until_ms is not None:
                values[":u"] = _s(f"{int(until_ms):015d}|~")
                cond += " AND g1sk <= :u"
            kwargs.update(IndexName="gsi1", KeyConditionExpression=cond)
        if flt:
            kwargs.update(FilterExpression=flt, ExpressionAttributeNames={"#kind": "kind"})
        kwargs["ExpressionAttributeValues"] = values
        found: list[DueEntry] = []
        for item in self._query("due-time index read", **kwargs):
            entry = DueEntry.from_dict(json.loads(item["d"]["S"]))
            if until_ms is not None and entry.due_ms > until_ms:
                if arn is None:
                    break
                continue
            if (
                arn is None
                and limit is not None
                and len(found) >= limit
                and entry.due_ms > found[limit - 1].due_ms
            ):
                break  # index order is due order: nothing later can tie
            found.append(entry)
        if arn is not None and not found:
            self._settled(arn)
        return sort_due(found, limit)

    def _list(
        self, function_name: str | None, status: str | None, limit: int | None, marker: str | None
    ) -> ExecutionPage:
        """Headers newest first, from ``gsi2`` (one function) or ``gsi1`` (all)."""
        if function_name is not None:
            index, pk_name, sk_name = "gsi2", "g2pk", "g2sk"
            pk_value = f"{self.prefix}F#{function_name}"
        else:
            index, pk_name, sk_name = "gsi1", "g1pk", "g1sk"
            pk_value = f"{self.prefix}L"
        values: dict[str, Any] = {":p": _s(pk_value)}
        kwargs: dict[str, Any] = {"IndexName": index, "KeyConditionExpression": f"{pk_name} = :p"}
        if marker:
            values[":m"] = _s(marker_key(marker))
            kwargs["KeyConditionExpression"] += f" AND {sk_name} > :m"
        if status is not None:
            values[":st"] = _s(status)
            kwargs.update(FilterExpression="#st = :st", ExpressionAttributeNames={"#st": "st"})
        kwargs["ExpressionAttributeValues"] = values
        headers: list[ExecutionHeader] = []
        more = False
        for item in self._query("execution listing", **kwargs):
            if limit is not None and len(headers) >= limit:
                more = True
                break
            headers.append(_header_from(item))
        return ExecutionPage(headers, page_marker(headers[-1]) if more and headers else None)

    def close(self) -> None:
        """Close the client's connection pool."""
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


def _header_from(item: Item) -> ExecutionHeader:
    """Return the header stored in a header item (``doc`` plus the separate input)."""
    return ExecutionHeader.from_dict(
        {**json.loads(item["doc"]["S"]), "input_payload": item["inp"]["S"]}
    )


def make_client(options: dict[str, str]) -> Any:
    """Make a DynamoDB client from URL options (``region``, ``endpoint_url``, ``profile``)."""
    return aws_client(
        "dynamodb",
        region=options.get("region") or None,
        endpoint_url=options.get("endpoint_url") or None,
        profile=options.get("profile") or None,
        max_attempts=5,
        read_timeout=10,
    )
