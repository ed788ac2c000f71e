"""Commits above DynamoDB's transaction limits, still all or nothing, through a redo record.

A batch too large for one ``TransactWriteItems`` (100 items, 4 MB: a map or parallel
checkpointing hundreds of children at once) is written as chunk items that nothing reads
yet (``R#<rev:012>#<cid>#<n:05>``, 300 KB each); then the conditional header update, the
commit point, marks it pending; then its items are applied with ``BatchWriteItem`` and the
mark is removed, and the chunks deleted. A reader that finds the mark (the writer died
midway) rolls the batch forward first, so nobody sees half of it. Such a batch costs
``2 + 2 * ceil(chunks / 25) + ceil(items / 25)`` write requests.
"""

from __future__ import annotations

import json
from typing import Any

from durable_ext.backends._dynamodb_items import Write, batch_write_requests, num_attr, str_attr
from durable_ext.backends._dynamodb_table import TableBase
from durable_ext.backends._remote import dumps
from durable_ext.backends.store import CommitBatch
from durable_ext.errors import StoreError

__all__ = ["CHUNK_BYTES", "RedoBase"]

CHUNK_BYTES = 300 * 1024


def _chunk_prefix(rev: int, cid: str) -> str:
    return f"R#{rev:012d}#{cid}#"


class RedoBase(TableBase):
    """Large batches committed through a redo record, and rolled forward by any reader."""

    def _commit_large(self, batch: CommitBatch, cid: str, writes: list[Write]) -> list[str] | None:
        """Commit ``batch`` through a redo record; None on success, else the reason codes."""
        h = batch.header
        body = dumps(batch.to_dict()).encode()
        chunks = [body[i : i + CHUNK_BYTES] for i in range(0, len(body), CHUNK_BYTES)]
        prefix = _chunk_prefix(h.revision, cid)
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
        pend = {"rev": num_attr(h.revision), "n": num_attr(len(chunks)), "cid": str_attr(cid)}
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
        writes: list[Write] | None = None,
    ) -> None:
        """Apply a committed large batch's items, then clear the pending mark."""
        rev, cid, n = int(pend["rev"]["N"]), pend["cid"]["S"], int(pend["n"]["N"])
        prefix = _chunk_prefix(rev, cid)
        chunk_keys = [self._key(exec_id, f"{prefix}{i:05d}") for i in range(n)]
        if batch is None:
            parts = {
                item["sk"]["S"]: item["body"]["B"]
                for item in self._query(
                    f"redo record of {exec_id}",
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :r)",
                    ExpressionAttributeValues={
                        ":pk": str_attr(self._pk(exec_id)),
                        ":r": str_attr(prefix),
                    },
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
        self._batch_write(f"apply of large batch r{rev} of {exec_id}", batch_write_requests(writes))
        # a failed condition: another reader finished applying it first
        self._update_if(
            f"apply of large batch r{rev} of {exec_id}",
            Key=self._key(exec_id, "H"),
            UpdateExpression="REMOVE pend",
            ConditionExpression="pend.cid = :cid",
            ExpressionAttributeValues={":cid": str_attr(cid)},
        )
        self._batch_write(
            f"cleanup of {exec_id}", [{"DeleteRequest": {"Key": k}} for k in chunk_keys]
        )

    def _roll_forward(self, exec_id: str, pend: dict[str, Any]) -> None:
        """Finish a large batch a writer committed but did not finish applying."""
        self._apply_redo(exec_id, None, pend)
