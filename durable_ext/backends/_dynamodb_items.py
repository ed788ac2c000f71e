"""How the DynamoDB store's records become items, and the writes that put them.

Pure encoding, no requests: attribute values, item keys under a store's prefix, the header
item and its conditional update (the compare-and-set of a commit), the items of a batch's
operations, events and due entries, and item sizes as DynamoDB counts them. The layout
itself is drawn in :mod:`durable_ext.backends._dynamodb_schema`.
"""

from __future__ import annotations

import json
from typing import Any

from durable_ext.backends._dynamodb_schema import TTL_ATTRIBUTE
from durable_ext.backends._remote import dumps, list_key
from durable_ext.backends.store import CommitBatch, ExecutionHeader
from durable_ext.errors import StoreError

__all__ = [
    "MAX_ITEM_BYTES",
    "Item",
    "Write",
    "batch_write_requests",
    "execution_key",
    "execution_pk",
    "header_from",
    "header_item",
    "header_update",
    "item_size",
    "num_attr",
    "record_writes",
    "str_attr",
    "transact_writes",
]

Item = dict[str, dict[str, Any]]
Write = tuple[str, Item]
"""``("put", item)`` or ``("delete", key)``."""

MAX_ITEM_BYTES = 400 * 1024


def str_attr(value: str) -> dict[str, str]:
    """Return ``value`` as a DynamoDB string attribute value."""
    return {"S": value}


def num_attr(value: int) -> dict[str, str]:
    """Return ``value`` as a DynamoDB number attribute value."""
    return {"N": str(int(value))}


def item_size(item: Item) -> int:
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


def execution_pk(prefix: str, exec_id: str) -> str:
    """Return the partition key of every item of one execution."""
    return f"{prefix}X#{exec_id}"


def execution_key(prefix: str, exec_id: str, sk: str) -> Item:
    """Return the key of one item of an execution."""
    return {"pk": str_attr(execution_pk(prefix, exec_id)), "sk": str_attr(sk)}


def header_item(h: ExecutionHeader, *, prefix: str, cid: str, expires: int | None) -> Item:
    """Return the header item of ``h``, written by commit ``cid``."""
    lk = list_key(h.start_ms, h.arn)
    item: Item = {
        **execution_key(prefix, h.execution_id, "H"),
        "rev": num_attr(h.revision),
        "st": str_attr(h.status),
        # the input never changes: it lives in its own attribute, written once, so a
        # commit never rewrites it (and never counts its size twice)
        "doc": str_attr(dumps({**h.to_dict(), "input_payload": None})),
        "inp": str_attr(h.input_payload),
        "cid": str_attr(cid),
        "ev": num_attr(h.event_count),
        "g1pk": str_attr(f"{prefix}L"),
        "g1sk": str_attr(lk),
        "g2pk": str_attr(f"{prefix}F#{h.function_name}"),
        "g2sk": str_attr(lk),
    }
    if expires is not None:
        item[TTL_ATTRIBUTE] = num_attr(expires)
    return item


def header_from(item: Item) -> ExecutionHeader:
    """Return the header stored in a header item (``doc`` plus the separate input)."""
    return ExecutionHeader.from_dict(
        {**json.loads(item["doc"]["S"]), "input_payload": item["inp"]["S"]}
    )


def record_writes(batch: CommitBatch, *, prefix: str, expires: int | None) -> list[Write]:
    """List the batch's puts and deletes but the header: ``("put"|"delete", item)``."""
    h = batch.header
    eid = h.execution_id
    out: dict[str, Write] = {}

    def put(sk: str, **attrs: dict[str, Any]) -> None:
        item: Item = {**execution_key(prefix, eid, sk), **attrs}
        if expires is not None:
            item[TTL_ATTRIBUTE] = num_attr(expires)
        out[sk] = ("put", item)

    for op in batch.operations:
        put(f"O#{op.op_id}", t=num_attr(op.touched), d=str_attr(dumps(op.to_dict())))
    for ev in batch.events:
        put(f"E#{ev.event_id:012d}", d=str_attr(dumps(ev.data)))
    for key in batch.due_clear:
        out[f"D#{key}"] = ("delete", execution_key(prefix, eid, f"D#{key}"))
    for d in batch.due_set:
        put(
            f"D#{d.key}",
            kind=str_attr(d.kind),
            d=str_attr(dumps(d.to_dict())),
            g1pk=str_attr(f"{prefix}D"),
            g1sk=str_attr(f"{d.due_ms:015d}|{eid}|{d.key}"),
        )
    writes = list(out.values())
    for action, item in writes:
        if action == "put" and item_size(item) > MAX_ITEM_BYTES:
            raise StoreError(
                f"record {item['sk']['S']!r} of {h.arn} is {item_size(item) // 1024} KB, above "
                f"DynamoDB's 400 KB item limit; nothing was written"
            )
    return writes


def header_update(
    batch: CommitBatch,
    *,
    table: str,
    prefix: str,
    cid: str,
    expires: int | None,
    pend: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the conditional header update that commits ``batch`` (a transaction item).

    ``pend`` is the pending mark of a batch committed through a redo record.
    """
    h = batch.header
    item = header_item(h, prefix=prefix, cid=cid, expires=expires)
    names = {"#rev": "rev", "#st": "st", "#doc": "doc", "#cid": "cid", "#ev": "ev"}
    values: dict[str, Any] = {
        ":rev": item["rev"],
        ":st": item["st"],
        ":doc": item["doc"],
        ":cid": item["cid"],
        ":ev": item["ev"],
        ":x": num_attr(batch.expected_revision),
    }
    sets = ["#rev = :rev", "#st = :st", "#doc = :doc", "#cid = :cid", "#ev = :ev"]
    condition = "#rev = :x AND attribute_not_exists(#pend)"
    if batch.events:
        # event ids continue the stored sequence without a gap
        values[":ev0"] = num_attr(batch.events[0].event_id - 1)
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
            "TableName": table,
            "Key": execution_key(prefix, h.execution_id, "H"),
            "UpdateExpression": "SET " + ", ".join(sets),
            # the compare-and-set: a writer computed from an older revision loses, and
            # nothing commits on top of a large batch that is still being applied
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def transact_writes(table: str, writes: list[Write]) -> list[dict[str, Any]]:
    """Return ``writes`` as ``TransactWriteItems`` items."""
    return [
        {"Put": {"TableName": table, "Item": item}}
        if action == "put"
        else {"Delete": {"TableName": table, "Key": item}}
        for action, item in writes
    ]


def batch_write_requests(writes: list[Write]) -> list[dict[str, Any]]:
    """Return ``writes`` as ``BatchWriteItem`` requests."""
    return [
        {"PutRequest": {"Item": item}} if action == "put" else {"DeleteRequest": {"Key": item}}
        for action, item in writes
    ]
