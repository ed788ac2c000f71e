"""Callback results: what an outside system sends, handed to the handler as the SDK does.

The SDK gives a callback's result to the handler as the text the outside system sent
(``PassThroughSerDes``): payment providers, webhooks and people clicking a link send what
they send, JSON or not. :func:`~durable_ext.default_serdes` therefore leaves callbacks
alone, and :class:`CallbackSerDes` is the opt-in for callbacks whose senders use
durable_ext too: a payload framed by a durable_ext pipeline is decoded by it, anything else
is handed over as the text it is, so no outside sender can fail the execution in the
serializer.
"""

from __future__ import annotations

import binascii
from typing import Any

from aws_durable_execution_sdk_python.serdes import SerDes

from durable_ext.registry import SERIALIZERS
from durable_ext.serializers.base import SerDesContext
from durable_ext.serializers.frames import ARMOR_PREFIX, MAGIC, TEXT_PREFIX, repad, stage_name_of

__all__ = ["CallbackSerDes", "is_framed"]


def is_framed(text: str) -> bool:
    """Whether ``text`` is a durable_ext payload (a frame in either armor), not outside text.

    The whole string must decode (base64 armor) or encode (text armor) to bytes that start
    with the header of a frame of a known stage (built in or registered); natural text
    (``"wQ== is a key"``, a latin-1 sentence after a 0xC1 byte) does not.
    """
    if not isinstance(text, str) or len(text) < 4:
        return False
    if text[0] == TEXT_PREFIX:
        try:
            raw = text.encode("latin-1")
        except UnicodeEncodeError:
            return False
    elif text[0] == ARMOR_PREFIX:
        try:
            raw = binascii.a2b_base64(repad(text), strict_mode=True)
        except (binascii.Error, ValueError):
            return False
    else:
        return False
    if len(raw) < 4 or raw[0] != MAGIC or not 0 < raw[1] <= 32 or len(raw) <= 2 + raw[1]:
        return False
    name = stage_name_of(raw[2 : 2 + raw[1]])
    return name is not None and name in SERIALIZERS.names()


class CallbackSerDes(SerDes[Any]):
    """Decode callback results framed by ``serdes``; hand anything else over as text.

    Example:
        >>> import durable_ext
        >>> cb = CallbackSerDes(durable_ext.serdes("msgpack"))
        >>> ctx = SerDesContext()
        >>> cb.deserialize("successful", ctx)
        'successful'
        >>> cb.deserialize(cb.serialize({"ok": (1, 2)}, ctx), ctx)
        {'ok': (1, 2)}

    """

    def __init__(self, serdes: SerDes[Any]) -> None:
        self.serdes = serdes

    def __repr__(self) -> str:
        return f"CallbackSerDes({self.serdes!r})"

    def serialize(self, value: Any, serdes_context: SerDesContext) -> str:
        """Encode ``value`` as a durable_ext sender would (the wrapped serdes)."""
        text: str = self.serdes.serialize(value, serdes_context)
        return text

    def deserialize(self, data: str, serdes_context: SerDesContext) -> Any:
        """Decode a durable_ext payload; return any other payload unchanged."""
        if is_framed(data):
            return self.serdes.deserialize(data, serdes_context)
        return data
