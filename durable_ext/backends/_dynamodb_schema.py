"""The DynamoDB table of the DynamoDB store: its definition, creation and verification.

One table holds everything (single-table design)::

    item            pk                    sk                 other attributes
    header          X#<execution id>      H                  rev, ev, st, doc, inp, cid, g1*, g2*,
                                                             [pend], [exp]
    operation       X#<execution id>      O#<op id>          t (touched seq), d
    event           X#<execution id>      E#<event id:012>   d
    due entry       X#<execution id>      D#<key>            d, g1pk, g1sk
    redo chunk      X#<execution id>      R#<rev:012>#<n>    body   (only for batches above
                                                                     the transaction limits)
    name claim      N#<function>#<name>   N                  arn, [exp]

    LSI  touched  (pk, t)      ops by touched sequence: the delta query, strongly consistent
    GSI  gsi1     (g1pk, g1sk) "D" -> due entries by "<due_ms:015>|<execution id>|<key>";
                               "L" -> headers by "<inverted start_ms>|<arn>" (listing)
    GSI  gsi2     (g2pk, g2sk) "F#<function>" -> headers by the same listing key
    TTL  exp      set on every item of an execution once it is finished (``ttl`` option)

Every partition-key value starts with the store's ``prefix`` option, so several stores
can share a table.
"""

from __future__ import annotations

import time
from typing import Any

from durable_ext.errors import ConfigError, StoreError

__all__ = ["TABLE_SPEC", "create_table", "describe_problems", "verify_table"]

_S = "S"
_N = "N"

TABLE_SPEC: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": _S},
        {"AttributeName": "sk", "AttributeType": _S},
        {"AttributeName": "t", "AttributeType": _N},
        {"AttributeName": "g1pk", "AttributeType": _S},
        {"AttributeName": "g1sk", "AttributeType": _S},
        {"AttributeName": "g2pk", "AttributeType": _S},
        {"AttributeName": "g2sk", "AttributeType": _S},
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "LocalSecondaryIndexes": [
        {
            "IndexName": "touched",
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "t", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": f"{short}pk", "KeyType": "HASH"},
                {"AttributeName": f"{short}sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
        for name, short in (("gsi1", "g1"), ("gsi2", "g2"))
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
"""Arguments of ``CreateTable`` (plus ``TableName``)."""

TTL_ATTRIBUTE = "exp"


def _keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


def describe_problems(table: dict[str, Any]) -> list[str]:
    """List what differs between a ``DescribeTable`` result and :data:`TABLE_SPEC`."""
    problems = []
    if _keys(table.get("KeySchema", [])) != _keys(TABLE_SPEC["KeySchema"]):
        problems.append(
            f"key schema is {_keys(table.get('KeySchema', []))}, expected "
            f"{_keys(TABLE_SPEC['KeySchema'])}"
        )
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    for attr in TABLE_SPEC["AttributeDefinitions"]:
        found = types.get(attr["AttributeName"])
        if found is not None and found != attr["AttributeType"]:
            problems.append(
                f"attribute {attr['AttributeName']} has type {found}, "
                f"expected {attr['AttributeType']}"
            )
    for group in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes"):
        have = {i["IndexName"]: i for i in table.get(group) or []}
        for want in TABLE_SPEC[group]:
            got = have.get(want["IndexName"])
            if got is None:
                problems.append(f"index {want['IndexName']} is missing")
                continue
            if _keys(got["KeySchema"]) != _keys(want["KeySchema"]):
                problems.append(
                    f"index {want['IndexName']} has keys {_keys(got['KeySchema'])}, "
                    f"expected {_keys(want['KeySchema'])}"
                )
            if (got.get("Projection") or {}).get("ProjectionType") != "ALL":
                problems.append(f"index {want['IndexName']} must project ALL attributes")
    return problems


def verify_table(client: Any, table: str) -> None:
    """Raise a clear error when ``table`` is missing or has another schema."""
    from botocore.exceptions import ClientError

    try:
        desc = client.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise ConfigError(
                f"DynamoDB table {table!r} does not exist; create it with "
                f"`durable-ext backend init dynamodb://{table}?region=...`"
            ) from exc
        raise StoreError(f"cannot describe DynamoDB table {table!r}: {exc}") from exc
    problems = describe_problems(desc)
    if problems:
        raise ConfigError(
            f"DynamoDB table {table!r} does not have the durable_ext schema: "
            + "; ".join(problems)
            + ". Use another table name, or recreate it with `durable-ext backend init`."
        )


def create_table(client: Any, table: str, *, wait_seconds: float = 60.0) -> bool:
    """Create ``table`` with its indexes and TTL; False if it already existed (verified)."""
    from botocore.exceptions import ClientError

    created = True
    try:
        client.create_table(TableName=table, **TABLE_SPEC)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise StoreError(f"cannot create DynamoDB table {table!r}: {exc}") from exc
        created = False
    deadline = time.monotonic() + wait_seconds
    while True:
        status = client.describe_table(TableName=table)["Table"].get("TableStatus")
        if status == "ACTIVE":
            break
        if time.monotonic() > deadline:
            raise StoreError(
                f"DynamoDB table {table!r} is still {status} after {wait_seconds:.0f}s"
            )
        time.sleep(0.5)
    verify_table(client, table)
    ttl = client.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    return created
