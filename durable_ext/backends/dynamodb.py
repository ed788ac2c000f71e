"""DynamoDBStore: executions in one DynamoDB table (``dynamodb://TABLE?region=...``).

This module is the Store API; the table layout is in
:mod:`durable_ext.backends._dynamodb_schema` (and docs/fleet.md), how records become items
in :mod:`~durable_ext.backends._dynamodb_items`, the requests to the table in
:mod:`~durable_ext.backends._dynamodb_table` and the commit of large batches in
:mod:`~durable_ext.backends._dynamodb_redo`.

A checkpoint batch is **one** ``TransactWriteItems`` request: a conditional update of the
header item (``rev = :expected``, the compare-and-set) plus a put per touched operation,
per new event and per due entry set, and a delete per due entry cleared. It writes only
what the batch holds, so its cost does not grow with the execution.

Limits, and what happens above them:

* **400 KB per item.** Each record is one item; the SDK keeps checkpoint payloads under
  256 KB, so records fit. A record above the limit is refused with a
  :class:`~durable_ext.errors.StoreError` naming it, before anything is written.
* **100 items / 4 MB per transaction.** A larger batch (a map or parallel checkpointing
  hundreds of children at once) is committed through a redo record, still all or
  nothing: written as chunks first, made pending by the conditional header update (the
  commit point), then applied; a reader that finds it pending finishes it first. Such a
  batch costs ``2 + 2 * ceil(chunks / 25) + ceil(items / 25)`` write requests (chunks of
  300 KB).

URL options: ``region``, ``endpoint_url``, ``profile``, ``prefix`` (prefix of every
partition key, so stores can share a table), ``ttl`` (how long finished executions are
kept: seconds or ``15m``/``12h``/``14d``; default 0 = forever) and ``verify`` (``false``
skips the ``DescribeTable`` check made when the store opens).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from functools import partial
from typing import Any, ClassVar

from durable_ext.backends._base import page_marker
from durable_ext.backends._dynamodb_items import (
    MAX_ITEM_BYTES,
    Item,
    header_from,
    item_size,
    num_attr,
    str_attr,
    transact_writes,
)
from durable_ext.backends._dynamodb_redo import RedoBase
from durable_ext.backends._dynamodb_schema import TTL_ATTRIBUTE, verify_table
from durable_ext.backends._dynamodb_table import condition_failed, translated
from durable_ext.backends._dynamodb_table import make_client as make_client
from durable_ext.backends._remote import (
    execution_id_of,
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
from durable_ext.errors import ConfigError, ConflictError, NotFoundError, StoreError
from durable_ext.spec import StoreSpec

__all__ = ["DynamoDBStore"]

MAX_TX_ITEMS = 100
MAX_TX_BYTES = 4 * 1024 * 1024 - 64 * 1024  # a margin for DynamoDB's own per-item overhead
_OPTIONS = ("region", "endpoint_url", "profile", "prefix", "ttl", "verify")



class DynamoDBStore(RedoBase):
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
            with translated("DescribeTable", table):
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

    def create(self, batch: CommitBatch) -> CreateResult:
        """Claim the name and write the execution in one transaction."""
        h = batch.header
        self._check(batch)
        cid = uuid.uuid4().hex
        header = self._header_item(h, cid)
        name_item: Item = {
            "pk": str_attr(f"{self.prefix}N#{h.function_name}#{h.name}"),
            "sk": str_attr("N"),
            "arn": str_attr(h.arn),
        }
        writes = self._writes(batch)
        if len(writes) + 2 > MAX_TX_ITEMS:
            raise StoreError(f"create of {h.arn}: {len(writes) + 2} items exceed one transaction")
        cond = {"ConditionExpression": "attribute_not_exists(pk)"}
        items = [
            # execution-name idempotency: only one creator of (function, name) wins
            {"Put": {"TableName": self.table, "Item": name_item, **cond}},
            {"Put": {"TableName": self.table, "Item": header, **cond}},
            *transact_writes(self.table, writes),
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
        size = item_size(self._header_item(h, cid)) + sum(item_size(i) for _, i in writes)
        if item_size(self._header_item(h, cid)) > MAX_ITEM_BYTES:
            raise StoreError(f"header of {h.arn} is above DynamoDB's 400 KB item limit")
        large = len(writes) + 1 > MAX_TX_ITEMS or size > MAX_TX_BYTES
        for _ in range(3):
            if large:
                reasons = self._commit_large(batch, cid, writes)
            else:
                reasons = self._transact(
                    f"commit of {h.arn}", [update, *transact_writes(self.table, writes)], cid
                )
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
            ExpressionAttributeValues={":t": num_attr(exp)},
        ):
            return  # already stamped by an earlier terminal commit
        rewrite: list[dict[str, Any]] = []
        for item in self._query(
            f"expiry of {h.arn}",
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": str_attr(self._pk(h.execution_id))},
            ConsistentRead=True,
        ):
            sk = item["sk"]["S"]
            if TTL_ATTRIBUTE in item or sk == "H":
                continue
            if sk.startswith(("O#", "E#", "R#")):
                # immutable once the execution is finished: rewriting a copy is safe
                rewrite.append({"PutRequest": {"Item": {**item, TTL_ATTRIBUTE: num_attr(exp)}}})
            else:
                self._set_expiry(item["pk"], item["sk"], exp)
        self._batch_write(f"expiry of {h.arn}", rewrite)
        self._set_expiry(str_attr(f"{self.prefix}N#{h.function_name}#{h.name}"), str_attr("N"), exp)

    def _set_expiry(self, pk: dict[str, str], sk: dict[str, str], exp: int) -> None:
        # a failed condition: the item is gone, nothing to expire
        self._update_if(
            "expiry",
            Key={"pk": pk, "sk": sk},
            UpdateExpression="SET #e = :e",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#e": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":e": num_attr(exp)},
        )

    def delete(self, arn: str) -> bool:
        """Delete every item of ``arn``, then its name claim (if it names ``arn``), then the header.

        The header goes last: a deletion cut short leaves the execution readable (and
        DELETING), and a repeat finishes it.
        """
        try:
            h = self._settled(arn)
        except NotFoundError:
            return False
        pk = str_attr(self._pk(h.execution_id))
        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for item in self._query(
                f"delete of {arn}",
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": pk},
                ProjectionExpression="pk, sk",
                ConsistentRead=True,
            )
            if item["sk"]["S"] != "H"
        ]
        self._batch_write(f"delete of {arn}", [{"DeleteRequest": {"Key": k}} for k in keys])
        name_key = {"pk": str_attr(f"{self.prefix}N#{h.function_name}#{h.name}"),
                    "sk": str_attr("N")}
        for key, cond in ((name_key, "arn = :arn"), (self._key(h.execution_id, "H"),
                                                      "attribute_exists(pk)")):
            values = {":arn": str_attr(arn)} if ":arn" in cond else {}
            try:
                self._call(
                    f"delete of {arn}",
                    partial(self.client.delete_item, TableName=self.table, Key=key,
                            ConditionExpression=cond,
                            **({"ExpressionAttributeValues": values} if values else {})),
                    write=True,
                )
            except StoreError as exc:
                # another execution holds the name now, or a concurrent delete won
                if not condition_failed(exc):
                    raise
        return True

    # ------------------------------------------------------------------ reads

    def _settled(self, arn: str) -> ExecutionHeader:
        exec_id = execution_id_of(arn)
        for _ in range(5):
            raw = self._raw_header(exec_id)
            if raw is None:
                break
            if "pend" in raw:
                self._roll_forward(exec_id, raw["pend"]["M"])
                continue
            header = header_from(raw)
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
                            ":pk": str_attr(self._pk(exec_id)),
                            ":h": str_attr("H"),
                            ":o": str_attr("O#\U0010ffff"),
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

    def touched_after(self, arn: str, seq: int) -> list[OperationRecord]:
        """Return records with ``touched > seq`` via the ``touched`` LSI (consistent)."""
        items = list(
            self._query(
                f"delta of {arn}",
                IndexName="touched",
                KeyConditionExpression="pk = :pk AND t > :t",
                ExpressionAttributeValues={
                    ":pk": str_attr(self._pk(execution_id_of(arn))),
                    ":t": num_attr(seq),
                },
                ConsistentRead=True,
            )
        )
        if not items:
            self._settled(arn)  # an empty answer: is there such an execution at all?
        return records(i["d"]["S"] for i in items)

    def _events(self, arn: str, after: int, limit: int | None, reverse: bool) -> list[HistoryEvent]:
        """History events, a range query over ``E#<id>`` sort keys."""
        pk = str_attr(self._pk(execution_id_of(arn)))
        if reverse and after > 0:
            cond, values = (
                "pk = :pk AND sk BETWEEN :lo AND :hi",
                {":pk": pk, ":lo": str_attr("E#"), ":hi": str_attr(f"E#{after - 1:012d}")},
            )
        elif reverse:
            cond, values = "pk = :pk AND begins_with(sk, :e)", {":pk": pk, ":e": str_attr("E#")}
        else:
            cond, values = (
                "pk = :pk AND sk BETWEEN :lo AND :hi",
                {":pk": pk, ":lo": str_attr(f"E#{after + 1:012d}"), ":hi": str_attr("E#~")},
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
            values.update({n: str_attr(k) for n, k in zip(names, kinds, strict=True)})
            flt = f"#kind IN ({', '.join(names)})"
        kwargs: dict[str, Any] = {}
        if arn is not None:
            values[":pk"] = str_attr(self._pk(execution_id_of(arn)))
            values[":d"] = str_attr("D#")
            kwargs.update(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :d)", ConsistentRead=True
            )
        else:
            values[":g"] = str_attr(f"{self.prefix}D")
            cond = "g1pk = :g"
            if until_ms is not None:
                values[":u"] = str_attr(f"{int(until_ms):015d}|~")
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
        values: dict[str, Any] = {":p": str_attr(pk_value)}
        kwargs: dict[str, Any] = {"IndexName": index, "KeyConditionExpression": f"{pk_name} = :p"}
        if marker:
            values[":m"] = str_attr(marker_key(marker))
            kwargs["KeyConditionExpression"] += f" AND {sk_name} > :m"
        if status is not None:
            values[":st"] = str_attr(status)
            kwargs.update(FilterExpression="#st = :st", ExpressionAttributeNames={"#st": "st"})
        kwargs["ExpressionAttributeValues"] = values
        headers: list[ExecutionHeader] = []
        more = False
        for item in self._query("execution listing", **kwargs):
            if limit is not None and len(headers) >= limit:
                more = True
                break
            headers.append(header_from(item))
        return ExecutionPage(headers, page_marker(headers[-1]) if more and headers else None)
