"""StoreContract: the behaviour every :class:`~durable_ext.backends.store.Store` must have.

Reuse it for any store (built-in or third-party) by subclassing and providing a ``store``
fixture that returns a fresh, empty store::

    import pytest
    from durable_ext.testing.contract import StoreContract

    class TestRedisStore(StoreContract):
        @pytest.fixture
        def store(self, redis_server):
            s = RedisStore.from_spec(parse_store(redis_server.url))
            yield s
            s.close()

Each test builds its records with the helpers below, so the suite needs nothing but the
Store protocol. A store that several processes share should also override ``other``, a
fixture returning a second, independent handle on the same backing store (the secret
test checks both agree); by default it is the same object.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from durable_ext.backends.store import (
    SECRET_BYTES,
    CommitBatch,
    DueEntry,
    ExecutionHeader,
    HistoryEvent,
    OperationRecord,
    Store,
)
from durable_ext.errors import ConflictError, NotFoundError, StoreError

__all__ = ["StoreContract", "make_create", "next_batch"]


def make_create(
    function_name: str = "fn",
    name: str | None = None,
    start_ms: int = 1000,
    input_payload: str = "{}",
) -> CommitBatch:
    """Build a creation batch like the engine writes (EXECUTION op, event, invoke due)."""
    eid = str(uuid.uuid4())
    name = name or eid
    fn_arn = f"arn:aws:lambda:us-east-1:1:function:{function_name}"
    arn = f"{fn_arn}:$LATEST/durable-execution/{name}/{eid}"
    header = ExecutionHeader(
        arn=arn,
        execution_id=eid,
        function_name=function_name,
        name=name,
        status="RUNNING",
        start_ms=start_ms,
        revision=1,
        input_payload=input_payload,
        op_count=1,
        event_count=1,
        state={"gate": "IDLE"},
    )
    op = OperationRecord(
        op_id=eid, index=0, touched=0, data={"Id": eid, "Type": "EXECUTION", "Status": "STARTED"}
    )
    ev = HistoryEvent(
        event_id=1, data={"EventType": "ExecutionStarted", "EventTimestamp": start_ms}
    )
    due = DueEntry(arn=arn, key="invoke", kind="invoke", due_ms=start_ms)
    return CommitBatch(
        header=header, expected_revision=0, operations=[op], events=[ev], due_set=[due]
    )


def next_batch(
    header: ExecutionHeader,
    *,
    ops: int = 1,
    events: int = 1,
    due_set: list[DueEntry] | None = None,
    due_clear: list[str] | None = None,
    touch: list[tuple[str, int]] | None = None,
    **changes: Any,
) -> CommitBatch:
    """Build a follow-up commit adding ``ops`` new steps and ``events`` events."""
    seq = header.seq_counter
    records = []
    for i in range(ops):
        seq += 1
        index = header.op_count + i
        records.append(
            OperationRecord(
                op_id=f"op-{index}",
                index=index,
                touched=seq,
                data={"Id": f"op-{index}", "Type": "STEP", "Status": "STARTED"},
            )
        )
    for op_id, index in touch or []:
        seq += 1
        records.append(
            OperationRecord(
                op_id=op_id,
                index=index,
                touched=seq,
                data={"Id": op_id, "Type": "STEP", "Status": "SUCCEEDED"},
            )
        )
    evs = [
        HistoryEvent(
            event_id=header.event_count + 1 + i,
            data={"EventType": "StepStarted", "EventTimestamp": 0},
        )
        for i in range(events)
    ]
    new = header.evolve(
        revision=header.revision + 1,
        op_count=header.op_count + ops,
        event_count=header.event_count + events,
        seq_counter=seq,
        **changes,
    )
    return CommitBatch(
        header=new,
        expected_revision=header.revision,
        operations=records,
        events=evs,
        due_set=due_set or [],
        due_clear=due_clear or [],
    )


class StoreContract:
    """Mixin of tests; subclasses provide a ``store`` fixture."""

    def test_create_then_read_back(self, store: Store) -> None:
        """A created execution reads back exactly."""
        b = make_create()
        res = store.create(b)
        assert res.created
        assert store.header(b.header.arn) == b.header
        assert [r.op_id for r in store.operations(b.header.arn)] == [b.header.execution_id]
        assert [e.event_id for e in store.events(b.header.arn)] == [1]
        assert [d.key for d in store.due(arn=b.header.arn)] == ["invoke"]

    def test_unknown_arn_is_not_found(self, store: Store) -> None:
        """Reads and commits of an unknown ARN raise NotFoundError."""
        arn = make_create().header.arn
        with pytest.raises(NotFoundError):
            store.header(arn)
        with pytest.raises(NotFoundError):
            store.commit(next_batch(make_create().header))

    def test_same_name_returns_existing(self, store: Store) -> None:
        """Creating an existing (function, name) returns the first execution."""
        first = make_create(name="order-1", input_payload='{"a":1}')
        store.create(first)
        again = store.create(make_create(name="order-1", input_payload='{"a":2}'))
        assert not again.created
        assert again.header.arn == first.header.arn
        assert again.header.input_payload == '{"a":1}'
        other_fn = store.create(make_create(function_name="other", name="order-1"))
        assert other_fn.created

    def test_commit_appends_and_bumps_revision(self, store: Store) -> None:
        """A commit appends its records and bumps the revision."""
        b = make_create()
        store.create(b)
        c = next_batch(b.header, ops=2, events=3)
        store.commit(c)
        h = store.header(b.header.arn)
        assert h.revision == 2
        assert h.event_count == 4
        assert [r.op_id for r in store.operations(h.arn)] == [h.execution_id, "op-1", "op-2"]
        assert [e.event_id for e in store.events(h.arn)] == [1, 2, 3, 4]

    def test_stale_revision_conflicts_and_changes_nothing(self, store: Store) -> None:
        """A commit from a stale revision raises ConflictError and writes nothing."""
        b = make_create()
        store.create(b)
        store.commit(next_batch(b.header))
        with pytest.raises(ConflictError):
            store.commit(next_batch(b.header, ops=5, events=5))
        h = store.header(b.header.arn)
        assert h.revision == 2
        assert len(store.operations(h.arn)) == 2
        assert len(store.events(h.arn)) == 2

    def test_event_gap_is_rejected(self, store: Store) -> None:
        """Event ids must continue the sequence without gaps."""
        b = make_create()
        store.create(b)
        bad = next_batch(b.header)
        gap = CommitBatch(
            header=bad.header,
            expected_revision=bad.expected_revision,
            events=[HistoryEvent(event_id=7, data={})],
        )
        with pytest.raises(StoreError):
            store.commit(gap)
        assert store.header(b.header.arn).revision == 1

    def test_operations_by_id_in_creation_order(self, store: Store) -> None:
        """Operations fetched by id come back in creation order."""
        b = make_create()
        store.create(b)
        store.commit(next_batch(b.header, ops=3))
        arn = b.header.arn
        got = store.operations(arn, ["op-3", "op-1", "missing"])
        assert [r.op_id for r in got] == ["op-1", "op-3"]

    def test_touched_after_is_the_delta(self, store: Store) -> None:
        """touched_after returns what changed after a sequence number."""
        b = make_create()
        store.create(b)
        store.commit(next_batch(b.header, ops=3))
        h = store.header(b.header.arn)
        assert [r.op_id for r in store.touched_after(h.arn, 0)] == ["op-1", "op-2", "op-3"]
        assert [r.op_id for r in store.touched_after(h.arn, 2)] == ["op-3"]
        store.commit(next_batch(h, ops=0, events=0, touch=[("op-1", 1)]))
        h2 = store.header(h.arn)
        delta = store.touched_after(h2.arn, 3)
        assert [(r.op_id, r.data["Status"]) for r in delta] == [("op-1", "SUCCEEDED")]
        assert [r.op_id for r in store.touched_after(h2.arn, 0)] == ["op-1", "op-2", "op-3"]

    def test_events_paging_both_ways(self, store: Store) -> None:
        """Events page forwards and backwards."""
        b = make_create()
        store.create(b)
        store.commit(next_batch(b.header, ops=0, events=9))
        arn = b.header.arn
        assert [e.event_id for e in store.events(arn, after=3, limit=4)] == [4, 5, 6, 7]
        assert [e.event_id for e in store.events(arn, reverse=True, limit=3)] == [10, 9, 8]
        assert [e.event_id for e in store.events(arn, after=8, reverse=True, limit=3)] == [7, 6, 5]

    def test_due_index(self, store: Store) -> None:
        """Due entries are filtered by time and kind, replaced and cleared by key."""
        b = make_create(start_ms=100)
        store.create(b)
        arn = b.header.arn
        wake = DueEntry(arn=arn, key="wake:x", kind="wake", due_ms=5000, data={"op": "x"})
        store.commit(next_batch(b.header, ops=0, events=0, due_set=[wake]))
        assert [d.key for d in store.due(1000)] == ["invoke"]
        assert [d.key for d in store.due(6000)] == ["invoke", "wake:x"]
        assert [d.key for d in store.due(None, kinds=["wake"])] == ["wake:x"]
        assert store.due(None, kinds=["wake"])[0].data == {"op": "x"}
        h = store.header(arn)
        moved = DueEntry(arn=arn, key="wake:x", kind="wake", due_ms=9000)
        store.commit(next_batch(h, ops=0, events=0, due_set=[moved], due_clear=["invoke"]))
        assert [(d.key, d.due_ms) for d in store.due(None, arn=arn)] == [("wake:x", 9000)]

    def test_list_newest_first_with_filters_and_marker(self, store: Store) -> None:
        """Listing is newest first, filtered and paged by marker."""
        made = [
            make_create(function_name="fa" if i % 2 else "fb", start_ms=1000 + i) for i in range(5)
        ]
        for b in made:
            store.create(b)
        done = made[0].header
        store.commit(next_batch(done, ops=0, events=0, status="SUCCEEDED"))
        page = store.list_executions(limit=2)
        assert [h.start_ms for h in page.headers] == [1004, 1003]
        assert page.next_marker
        rest = store.list_executions(marker=page.next_marker)
        assert [h.start_ms for h in rest.headers] == [1002, 1001, 1000]
        assert rest.next_marker is None
        assert {h.start_ms for h in store.list_executions(function_name="fa").headers} == {
            1001,
            1003,
        }
        assert [h.arn for h in store.list_executions(status="SUCCEEDED").headers] == [done.arn]

    def test_delete_removes_the_execution_and_frees_its_name(self, store: Store) -> None:
        """Delete drops header, records, events, due entries, listing and name claim."""
        keep = make_create(name="kept")
        store.create(keep)
        b = make_create(name="order-9")
        store.create(b)
        arn = b.header.arn
        wake = DueEntry(arn=arn, key="wake:x", kind="wake", due_ms=5000)
        store.commit(next_batch(b.header, due_set=[wake], status="SUCCEEDED"))
        assert store.delete(arn) is True
        with pytest.raises(NotFoundError):
            store.header(arn)
        assert not [d for d in store.due(None) if d.arn == arn]
        assert [h.arn for h in store.list_executions().headers] == [keep.header.arn]
        assert store.list_executions(status="SUCCEEDED").headers == []
        assert store.delete(arn) is False
        again = store.create(make_create(name="order-9"))
        assert again.created and again.header.arn != arn
        assert store.header(keep.header.arn) == keep.header

    def test_concurrent_commits_serialise(self, store: Store) -> None:
        """Concurrent writers serialise: every accepted commit is kept, in order."""
        b = make_create()
        store.create(b)
        arn = b.header.arn
        wins: list[int] = []
        lock = threading.Lock()

        def writer() -> None:
            for _ in range(200):
                h = store.header(arn)
                try:
                    store.commit(next_batch(h, ops=1, events=1))
                except ConflictError:
                    continue
                with lock:
                    wins.append(1)
                if len(wins) >= 40:
                    return

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        h = store.header(arn)
        assert h.revision == 1 + len(wins)
        assert [e.event_id for e in store.events(arn)] == list(range(1, h.event_count + 1))
        assert len(store.operations(arn)) == 1 + len(wins)

    @pytest.fixture
    def other(self, store: Store) -> Store:
        """Return a second handle on the backing store of ``store`` (override if shared)."""
        return store

    def test_secret_is_made_once_and_shared(self, store: Store, other: Store) -> None:
        """The MAC secret is 32 bytes, made once, the same for every caller and handle."""
        got: list[bytes] = []

        def ask(s: Store) -> None:
            got.append(s.secret())

        threads = [threading.Thread(target=ask, args=(s,)) for s in (store, other) * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(got) == 6 and len(set(got)) == 1
        assert len(got[0]) == SECRET_BYTES
        assert store.secret() == other.secret() == got[0]
        assert store.list_executions().headers == []  # it is no execution

