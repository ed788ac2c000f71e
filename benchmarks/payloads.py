"""Payload families shared by the serializer benchmarks and `durable-ext bench`."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal
from typing import Any


def small_plain() -> dict[str, Any]:
    return {
        "order_id": "o-1842",
        "customer": "c-77",
        "qty": 3,
        "price": 19.99,
        "express": True,
        "tags": ["gift", "eu"],
        "note": None,
    }


def small_mixed() -> dict[str, Any]:
    return {
        "order_id": uuid.UUID("6f1d8a3e-2b7c-4c55-9a1e-7d3f0b2c9e41"),
        "placed_at": dt.datetime(2025, 3, 14, 9, 26, 53, 589_793, tzinfo=dt.UTC),
        "ship_by": dt.date(2025, 3, 18),
        "total": Decimal("1234.56"),
        "dims": (30, 20, 15),
        "flags": ("fragile", "gift"),
        "qty": 3,
        "customer": "c-77",
    }


def orders(n: int = 1000) -> list[dict[str, Any]]:
    rng = random.Random(7)
    base = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return [
        {
            "id": uuid.UUID(int=rng.getrandbits(128)),
            "placed_at": base + dt.timedelta(seconds=rng.randrange(10**7)),
            "amount": Decimal(rng.randrange(100, 10**6)) / 100,
            "sku": f"sku-{rng.randrange(500)}",
            "qty": rng.randrange(1, 9),
            "status": rng.choice(["new", "paid", "shipped"]),
            "dims": (rng.randrange(50), rng.randrange(50)),
        }
        for _ in range(n)
    ]


def blob(size: int = 100 * 1024) -> bytes:
    return random.Random(3).randbytes(size)


def nested(target_bytes: int = 1024 * 1024) -> dict[str, Any]:
    """A JSON-typed tree of roughly ``target_bytes`` when written as JSON."""
    rng = random.Random(11)
    tree: dict[str, Any] = {}
    size = 0
    i = 0
    while size < target_bytes:
        node = {
            "name": f"node-{i}",
            "weight": rng.random(),
            "count": rng.randrange(10**6),
            "children": [{"k": j, "v": f"value-{rng.randrange(10**4)}"} for j in range(5)],
        }
        tree[f"n{i}"] = node
        size += 190
        i += 1
    return tree


FAMILIES = {
    "small_plain": small_plain,
    "small_mixed": small_mixed,
    "orders_1000": orders,
    "blob_100k": blob,
    "nested_1m": nested,
}
#: families whose values plain JSON can carry (JsonSerDes is measured only on these)
JSON_FAMILIES = {"small_plain", "nested_1m"}
MIXED_FAMILIES = {"small_mixed", "orders_1000"}
