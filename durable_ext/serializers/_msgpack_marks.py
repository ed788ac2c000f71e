"""Container markers: how tuples, sets and frozensets travel as msgpack arrays.

Such a container is packed as an array of its items plus a 3-byte marker at the end, so
its items go through the same C pack call as the rest of the value. Payloads holding
markers are the marked layout; their decoder reads each marker as a ``_ContainerMark``
and its list hook, called by the C unpacker for every array, turns a marked array back
into its container.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durable_ext.serializers._msgpack_ext import EXT_MARK, ExtType


class _ContainerMark:
    """What a container marker decodes to, until the list hook rebuilds its array."""

    __slots__ = ("build", "kind")

    def __init__(self, kind: str, build: Callable[[list[Any]], Any]) -> None:
        self.kind = kind
        self.build = build

    def __repr__(self) -> str:
        return f"<durable_ext {self.kind} marker>"


# The markers the packer's default hook appends; their bodies say which container.
_TUPLE_END = ExtType(EXT_MARK, b"\x00")
_SET_END = ExtType(EXT_MARK, b"\x01")
_FROZENSET_END = ExtType(EXT_MARK, b"\x02")
_MARKS: dict[bytes, _ContainerMark] = {
    _TUPLE_END.data: _ContainerMark("tuple", tuple),
    _SET_END.data: _ContainerMark("set", set),
    _FROZENSET_END.data: _ContainerMark("frozenset", frozenset),
}


def _container_rebuilder(open_marks: list[int]) -> Callable[[list[Any]], Any]:
    # The list hook of one marked body: called by the C unpacker for every array. It counts
    # the markers it consumes, so a marker a corrupt body left elsewhere is caught.
    def rebuild(items: list[Any]) -> Any:
        if items:
            last = items[-1]
            if type(last) is _ContainerMark:
                del items[-1]
                open_marks[0] -= 1
                return last.build(items)
        return items

    return rebuild
