"""The codec server: decode and encode checkpoint payloads over HTTP, off by default.

Shaped like Temporal's codec server, for tools (a browser console, a script reading
histories from real Lambda) that hold payloads but not the keys or classes to read
them. ``durable-ext serve --codec SPEC`` (or :meth:`LocalService.enable_codec
<durable_ext.http.service.LocalService.enable_codec>`) turns it on, behind the same Host,
Origin, body-size and signature checks as the API; CORS answers only ``--allow-origin``
origins.

``POST /_durable_ext/codec/decode``::

    {"payloads": [{"data": "wQFt...", "executionArn": "...", "operationId": "..."}]}
    -> {"payloads": [{"Value": ..., "Encoding": "msgpack", "Chars": 22}, ...]}

``POST /_durable_ext/codec/encode``::

    {"payloads": [{"value": {...}, "executionArn": "...", "operationId": "..."}]}
    -> {"payloads": ["wQFt...", ...]}

Each request holds at most :data:`MAX_PAYLOADS` payloads within the API's body limit;
each payload decodes within the decoder's limits, and the answer's decoded views within
:data:`~durable_ext.serializers.readable.VIEW_CHARS` (past it, a payload is answered
as ``Undecoded``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from durable_ext.http.guard import CODEC_PREFIX
from durable_ext.http.wire import ApiError, dumps, parse_json
from durable_ext.serializers.base import SerDesContext
from durable_ext.serializers.readable import Decoder, ViewBudget

__all__ = ["CODEC_PATH", "MAX_PAYLOADS", "Codec", "codec_routes"]

CODEC_PATH = CODEC_PREFIX.rstrip("/")
MAX_PAYLOADS = 100


class Codec:
    """What the codec server decodes and encodes with: one decoder, one pipeline."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder

    def decode(self, items: list[dict[str, Any]]) -> list[Any]:
        """Return the readable view of each payload, all within one answer's budget."""
        budget = ViewBudget()
        return [self.decoder.payload(_string(it, "data"), operation_id=_ref(it, "operationId"),
                                     execution_arn=_ref(it, "executionArn"), budget=budget)
                for it in items]

    def encode(self, items: list[dict[str, Any]]) -> list[str]:
        """Return the checkpoint string of each value."""
        out = []
        for it in items:
            if "value" not in it:
                raise ApiError("InvalidRequestContentException", "each payload needs a value")
            ctx = SerDesContext(_ref(it, "operationId"), _ref(it, "executionArn"))
            out.append(self.decoder.serdes.serialize(it["value"], ctx))
        return out


Endpoint = Callable[[Request], Awaitable[Response]]


def codec_routes(codec: Codec | None, wrap: Callable[[Endpoint], Endpoint]) -> list[Route]:
    """Return the codec server's routes (none when it is off), each endpoint ``wrap``-ped."""
    if codec is None:
        return []

    async def decode(request: Request) -> Response:
        items = await _items(request)
        return _reply(await run_in_threadpool(codec.decode, items))

    async def encode(request: Request) -> Response:
        items = await _items(request)
        return _reply(await run_in_threadpool(codec.encode, items))

    return [Route(CODEC_PATH + "/decode", wrap(decode), methods=["POST"]),
            Route(CODEC_PATH + "/encode", wrap(encode), methods=["POST"])]


async def _items(request: Request) -> list[dict[str, Any]]:
    body = parse_json(await request.body(), "request body")
    items = body.get("payloads") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(it, dict) for it in items):
        raise ApiError("InvalidRequestContentException",
                       'expected {"payloads": [{...}, ...]}')
    if len(items) > MAX_PAYLOADS:
        raise ApiError("InvalidRequestContentException",
                       f"at most {MAX_PAYLOADS} payloads per request, got {len(items)}")
    return items


def _reply(payloads: list[Any]) -> Response:
    return Response(dumps({"payloads": payloads}), media_type="application/json")


def _string(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise ApiError("InvalidRequestContentException", f"each payload needs a string {key!r}")
    return value


def _ref(item: dict[str, Any], key: str) -> str:
    value = item.get(key, "")
    if not isinstance(value, str) or len(value) > 2048:
        raise ApiError("InvalidRequestContentException",
                       f"{key} must be a string of at most 2048 characters")
    return value
