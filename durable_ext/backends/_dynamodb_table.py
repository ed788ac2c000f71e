"""The DynamoDB store's requests to its one table.

Botocore errors become the store's errors (throttling and network errors retryable),
idempotent requests are retried, queries are read page by page, batch reads and writes
are split into DynamoDB's groups with their unprocessed keys resent, and every write
request sent is counted. :class:`TableBase` holds these requests and binds the item
encoding of :mod:`durable_ext.backends._dynamodb_items` to the store's prefix and TTL.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, TypeVar

from durable_ext._aws import AwsFailure
from durable_ext._aws import make_client as aws_client
from durable_ext._aws import translated as aws_translated
from durable_ext.backends._dynamodb_items import (
    Item,
    Write,
    execution_key,
    execution_pk,
    header_item,
    header_update,
    record_writes,
    str_attr,
)
from durable_ext.backends._remote import RemoteStore, terminal
from durable_ext.backends.store import CommitBatch, ExecutionHeader
from durable_ext.errors import ConfigError, StoreError, StoreUnavailableError

__all__ = ["TableBase", "condition_failed", "make_client", "translated"]

T = TypeVar("T")


def _failure(exc: StoreError, code: str) -> dict[str, Any] | None:
    """Return the DynamoDB response behind ``exc`` if it failed with ``code``, else None."""
    from botocore.exceptions import ClientError

    cause = exc.__cause__
    if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") == code:
        response: dict[str, Any] = dict(cause.response)
        return response
    return None


def condition_failed(exc: StoreError) -> bool:
    """Whether ``exc`` is a request refused because its condition did not hold."""
    return _failure(exc, "ConditionalCheckFailedException") is not None


def translated(what: str, table: str) -> AbstractContextManager[None]:
    """Botocore errors -> the store's errors; throttling and network errors are retryable."""

    def error(failure: AwsFailure) -> Exception:
        if failure.retryable:
            return StoreUnavailableError(
                f"DynamoDB {failure.label} during {what} on {table}: {failure.message}"
            )
        if failure.code == "ResourceNotFoundException":
            return ConfigError(
                f"DynamoDB table {table!r} does not exist (during {what}); create it with "
                f"`durable-ext backend init dynamodb://{table}`"
            )
        return StoreError(f"DynamoDB {failure.label} during {what} on {table}: {failure.message}")

    return aws_translated(error)


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


class TableBase(RemoteStore):
    """The requests a DynamoDB store makes to its table, and its items under its prefix.

    The store sets ``client`` (a low-level boto3 DynamoDB client), ``table``, ``prefix``,
    ``ttl`` (seconds a finished execution is kept; 0 keeps it forever) and
    ``write_requests``.
    """

    client: Any
    table: str
    prefix: str
    ttl: float
    write_requests: int

    def _errors(self, what: str) -> AbstractContextManager[None]:
        return translated(what, self.table)

    def _call(self, what: str, fn: Callable[[], T], *, write: bool = False) -> T:
        if not write:
            return super()._call(what, fn)

        def counted() -> T:
            self.write_requests += 1  # every attempt is a request sent
            return fn()

        return super()._call(what, counted)

    def _claim_secret(self, offer: str) -> str:
        key = {"pk": str_attr(f"{self.prefix}S#secret"), "sk": str_attr("S")}
        # attribute_not_exists: the first process to ask makes the secret
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.put_item(
                TableName=self.table,
                Item={**key, "v": str_attr(offer)},
                ConditionExpression="attribute_not_exists(pk)",
            )
        item = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        value: str = item["Item"]["v"]["S"]
        return value

    # ------------------------------------------------------------------ items

    def _pk(self, exec_id: str) -> str:
        return execution_pk(self.prefix, exec_id)

    def _key(self, exec_id: str, sk: str) -> Item:
        return execution_key(self.prefix, exec_id, sk)

    def _expiry(self, header: ExecutionHeader) -> int | None:
        if self.ttl <= 0 or not terminal(header):
            return None
        return int(time.time() + self.ttl)

    def _header_item(self, h: ExecutionHeader, cid: str) -> Item:
        return header_item(h, prefix=self.prefix, cid=cid, expires=self._expiry(h))

    def _writes(self, batch: CommitBatch) -> list[Write]:
        return record_writes(batch, prefix=self.prefix, expires=self._expiry(batch.header))

    def _header_update(
        self, batch: CommitBatch, cid: str, pend: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return header_update(
            batch,
            table=self.table,
            prefix=self.prefix,
            cid=cid,
            expires=self._expiry(batch.header),
            pend=pend,
        )

    # ------------------------------------------------------------------ requests

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

    def _raw_header(self, exec_id: str) -> Item | None:
        got = self._call(
            f"read of execution {exec_id}",
            lambda: self.client.get_item(
                TableName=self.table, Key=self._key(exec_id, "H"), ConsistentRead=True
            ),
        )
        item: Item | None = got.get("Item")
        return item

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

    def close(self) -> None:
        """Close the client's connection pool."""
        close = getattr(self.client, "close", None)
        if close is not None:
            close()
