"""The bounds of decoding msgpack bodies, beyond what the C unpacker checks itself.

A large body, or any body of a payload past ``COUNTED_BODY_BYTES``, gets hooks that count
every array and map (and its slots) against the payload's one ``max_items`` count; bodies
nested in extension types are counted per thread, in depth and in the bytes held by the
bodies being decoded at once, against its ``max_depth`` and ``max_bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durable_ext.serializers.limits import DecodeBudget


def _counting_hooks(
    budget: DecodeBudget, list_hook: Callable[[list[Any]], Any] | None
) -> dict[str, Any]:
    # Every array and map (and its slots) counts against the payload's max_items, so a
    # payload of empty containers (1 byte each, ~60 bytes of Python object each) is bounded
    # however many bodies it spreads them over.
    def spend(n: int) -> None:
        budget.spend_items(n + 1, "a msgpack body")

    def on_list(items: list[Any]) -> Any:
        spend(len(items))
        return items if list_hook is None else list_hook(items)

    def on_map(items: dict[Any, Any]) -> Any:
        spend(len(items))
        return items

    n = max(budget.items_left, 0)
    return {"list_hook": on_list, "object_hook": on_map, "max_array_len": n, "max_map_len": n}


class _NestedState:
    """Per thread: the nesting of extension bodies being decoded, and their live bytes.

    Every body nested in an extension type is a copy and a native ``unpackb`` call (about
    40 KB of C stack): the depth and the bytes held by the bodies being decoded at once are
    what a hostile payload would inflate.
    """

    __slots__ = ("budget", "depth", "live")

    def __init__(self) -> None:
        self.depth = 0
        self.live = 0
        self.budget: DecodeBudget | None = None

