"""Payload families shared by the serializer benchmarks and `durable-ext bench`."""

from __future__ import annotations

import datetime as dt
import functools
import json
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


# -- text-heavy payloads: strings of prose, HTML and JSON documents ------------------------

# fmt: off
_WORDS = [
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be",
    "by", "this", "are", "from", "at", "or", "an", "have", "not", "order", "customer", "payment",
    "invoice", "shipment", "warehouse", "delivery", "address", "package", "return", "refund",
    "account", "balance", "report", "summary", "quarter", "review", "approval", "request",
    "service", "team", "product", "feature", "release", "version", "update", "schedule", "meeting",
    "project", "budget", "estimate", "message", "reply", "thread", "document", "record", "status",
    "priority", "issue", "ticket", "answer", "question", "morning", "evening", "weekly", "monthly",
    "early", "late", "quickly", "carefully", "already", "again", "before", "after",
]
#: words outside ASCII, about one word in twenty-five of the prose
_WORDS_UTF8 = [
    "café", "naïve", "résumé", "façade", "Zürich", "München", "Kraków", "São", "Paulo", "Ångström",
    "déjà", "señor", "coöperate", "jalapeño", "Ørsted", "Łódź", "—", "…", "“quoted”", "it\u2019s",
]
# fmt: on
#: the generated texts are cut to these many UTF-8 bytes (about)
TEXT_SIZES = {"1k": 1_000, "16k": 16_000, "250k": 250_000}


def _cut(text: str, size: int) -> str:
    """``text`` cut to at most ``size`` UTF-8 bytes, at a character boundary."""
    return text.encode()[:size].decode(errors="ignore")


def _sentence(rng: random.Random) -> str:
    words = [
        rng.choice(_WORDS_UTF8) if rng.random() < 0.04 else rng.choice(_WORDS)
        for _ in range(rng.randrange(6, 22))
    ]
    words[0] = words[0].capitalize()
    if rng.random() < 0.3:
        words[rng.randrange(1, len(words))] += ","
    return " ".join(words) + rng.choice(".....?!")


def text_prose(size: int = 16_000) -> str:
    """Paragraphs of sentences, some words outside ASCII, cut to ``size`` UTF-8 bytes."""
    rng = random.Random(13)
    paragraphs: list[str] = []
    total = 0
    while total < size:
        p = " ".join(_sentence(rng) for _ in range(rng.randrange(3, 8)))
        paragraphs.append(p)
        total += len(p.encode()) + 2
    return _cut("\n\n".join(paragraphs), size)


def text_html(size: int = 16_000) -> str:
    """An HTML page of items with attributes, links and prose, about ``size`` UTF-8 bytes."""
    rng = random.Random(17)
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Order history</title>\n"
        '<link rel="stylesheet" href="/static/site.css">\n</head>\n<body>\n'
        '<main class="orders">\n'
    )
    tail = "</main>\n</body>\n</html>\n"
    items: list[str] = []
    total = len(head) + len(tail)
    i = 0
    while True:
        item = (
            f'<article class="order status-{rng.choice(["new", "paid", "shipped"])}" '
            f'id="order-{i}" data-sku="sku-{rng.randrange(500)}">\n'
            f'  <h2><a href="/orders/{i}?ref=history">Order {i}</a></h2>\n'
            f"  <p>{_sentence(rng)} {_sentence(rng)}</p>\n"
            f'  <span class="qty">{rng.randrange(1, 9)}</span> '
            f'<span class="price">{rng.randrange(100, 10**5) / 100:.2f} &euro;</span>\n'
            "</article>\n"
        )
        n = len(item.encode())
        if total + n // 2 > size and items:
            break
        items.append(item)
        total += n
        i += 1
    return head + "".join(items) + tail


def text_json(size: int = 16_000) -> str:
    """A JSON document held as a string (an API response kept as text), about ``size`` bytes."""
    rng = random.Random(19)
    records: list[dict[str, Any]] = []
    total = 2
    while True:
        city = rng.choice(["Zürich", "Kraków", "Lyon", "Seattle", "São Paulo", "Osaka"])
        record = {
            "id": f"c-{rng.randrange(10**6):06d}",
            "name": f"{rng.choice(_WORDS).capitalize()} {rng.choice(_WORDS).capitalize()}",
            "email": f"user{rng.randrange(10**5)}@example.com",
            "active": rng.random() < 0.8,
            "balance": rng.randrange(10**6) / 100,
            "tags": rng.sample(["vip", "eu", "us", "new", "b2b", "churn-risk"], 2),
            "address": {"city": city, "zip": f"{rng.randrange(10**5):05d}"},
            "note": _sentence(rng),
        }
        n = len(json.dumps(record, ensure_ascii=False).encode()) + 2
        if total + n // 2 > size and records:
            break
        records.append(record)
        total += n
    return json.dumps({"customers": records}, ensure_ascii=False)


TEXT_FAMILIES = {
    f"text_{kind}_{label}": functools.partial(make, size)
    for kind, make in (("prose", text_prose), ("html", text_html), ("json", text_json))
    for label, size in TEXT_SIZES.items()
}


FAMILIES = {
    "small_plain": small_plain,
    "small_mixed": small_mixed,
    "orders_1000": orders,
    "blob_100k": blob,
    "nested_1m": nested,
    **TEXT_FAMILIES,
}
#: families whose values plain JSON can carry (JsonSerDes is measured only on these)
JSON_FAMILIES = {"small_plain", "nested_1m", *TEXT_FAMILIES}
MIXED_FAMILIES = {"small_mixed", "orders_1000"}
