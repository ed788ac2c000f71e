"""The Starlette app: the Lambda durable-execution REST API over a :class:`LocalService`.

Routes are the ones botocore's Lambda model gives (``Invoke`` under ``/2015-03-31``, the
durable-execution operations under ``/2025-12-01``). An execution ARN contains ``/``, so
botocore percent-encodes it into one path segment; routing therefore runs on the raw
(still encoded) path and each segment is decoded on its own.

Every request first passes the guards of :mod:`durable_ext.http.guard` (Host, cross-site
refusal, body limits, SigV4). Every malformed input is answered with a 4xx in the error
format, never a 500: bodies are strict UTF-8 and JSON nests at most
:data:`~durable_ext.http.wire.MAX_JSON_DEPTH` levels.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

from durable_ext._deps import require

require("starlette", extra="serve")

from starlette.applications import Starlette  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402

from durable_ext.backends.store import ExecutionStatus  # noqa: E402
from durable_ext.engine.arns import split_qualifier, version_of  # noqa: E402
from durable_ext.errors import service_code  # noqa: E402
from durable_ext.http.codec import codec_routes  # noqa: E402
from durable_ext.http.guard import (  # noqa: E402
    AUTH_SCOPE_KEY,
    DEFAULT_LIMIT,
    GuardConfig,
    RequestGuard,
    error_response,
)
from durable_ext.http.service import LocalService  # noqa: E402
from durable_ext.http.wire import (  # noqa: E402
    ApiError,
    check_shape,
    decode_utf8,
    dumps,
    lambda_model,
    operation_to_wire,
    parse_json,
)
from durable_ext.runtime.listing import SCAN_CAP, list_filtered  # noqa: E402
from durable_ext.serializers.readable import Decoder, ViewBudget  # noqa: E402

__all__ = ["DECODED_HEADER", "create_app", "to_api_error"]

DECODED_HEADER = "X-Durable-Ext-Decoded"
"""Asks for decoded views, as ``decoded=true`` in the query does (for clients that set
headers more easily than query parameters, such as boto3's event hooks)."""

_V = "/2025-12-01"
_EXECUTION_STATUSES = frozenset(s.value for s in ExecutionStatus)
_DEFAULT_PAGE = 100
_ID_MAX = 1024
"""The model's longest DurableExecutionArn and CallbackId."""
_FUNCTION_MAX = 256
_CALLBACK_ID = re.compile(r"[A-Za-z0-9+/=_-]+")
_CLIENT_TOKEN = re.compile(r"[\x21-\x7e]{1,64}")

Endpoint = Callable[[Request], Awaitable[Response]]
_log = logging.getLogger(__name__)


def to_api_error(exc: BaseException) -> ApiError:
    """Translate a framework error into the service's error code (the one table)."""
    if isinstance(exc, ApiError):
        return exc
    known = service_code(exc)
    if known.code == "ServiceException" and known.status == 500:
        return ApiError(known.code, f"internal error: {type(exc).__name__}")
    # NotFoundError is a KeyError, whose str() adds quotes; the message is args[0].
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return ApiError(known.code, message, known.status)


def _json(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(value), status_code=status, media_type="application/json",
                    headers=dict(headers or {}))


def _endpoint(fn: Endpoint) -> Endpoint:
    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except Exception as exc:
            err = to_api_error(exc)
            if err.code == "ServiceException":
                _log.exception("%s %s failed", request.method, request.url.path)
            return error_response(err)

    wrapped.__name__ = fn.__name__
    return wrapped


# ---------------------------------------------------------------- request parsing


def _segment(request: Request, name: str, label: str, longest: int = _ID_MAX) -> str:
    value = unquote(str(request.path_params[name]))
    if not 1 <= len(value) <= longest:
        raise ApiError("InvalidParameterValueException",
                       f"{label} must be 1 to {longest} characters, got {len(value)}")
    return value


def _callback_id(request: Request) -> str:
    cid = _segment(request, "callback", "CallbackId")
    if not _CALLBACK_ID.fullmatch(cid):
        raise ApiError("InvalidParameterValueException",
                       "CallbackId must be base64 text ([A-Za-z0-9+/=_-])")
    return cid


def _bool(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise ApiError("InvalidParameterValueException", f"{name} must be true or false, got {raw!r}")


def _decoder_asked(request: Request, service: LocalService) -> Decoder | None:
    """Return the decoder when the request asks for decoded views (and they are on)."""
    header = request.headers.get(DECODED_HEADER)
    asked = _bool(request, "decoded", False) or (header or "").lower() == "true"
    if header is not None and header.lower() not in ("true", "false"):
        raise ApiError("InvalidParameterValueException",
                       f"{DECODED_HEADER} must be true or false, got {header[:16]!r}")
    if not asked:
        return None
    if service.decoder is None:
        raise ApiError("InvalidParameterValueException",
                       "decoded views are off on this server; start it with --decode SPEC "
                       "(or --codec SPEC)")
    return service.decoder


def _decoded_execution(decoder: Decoder, desc: dict[str, Any]) -> dict[str, Any]:
    arn = str(desc.get("DurableExecutionArn", ""))
    budget = ViewBudget()
    for key in ("InputPayload", "Result"):
        if isinstance(desc.get(key), str):
            desc[f"Decoded{key}"] = decoder.payload(desc[key], execution_arn=arn, budget=budget)
    return desc


def _int(request: Request, name: str, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    # int() would also take "1_000", " 7" and non-ASCII digits; the API takes none of them.
    digits = raw[1:] if raw.startswith("-") else raw
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 10):
        raise ApiError("InvalidParameterValueException",
                       f"{name} must be an integer, got {raw[:64]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError("InvalidParameterValueException",
                       f"{name} must be between {low} and {high}, got {value}")
    return value


async def _parse(raw: bytes, where: str) -> Any:
    # A body of several MB takes a while to parse: off the event loop, which keeps
    # answering everything else meanwhile.
    if len(raw) > DEFAULT_LIMIT:
        return await run_in_threadpool(parse_json, raw, where)
    return parse_json(raw, where)


async def _body_json(request: Request, *, allow_empty: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return None
        raise ApiError("InvalidRequestContentException", "the request body is empty")
    return await _parse(raw, "request body")


def _error_object(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError("InvalidRequestContentException", f"{where}: expected an ErrorObject")
    error = {k: v for k, v in value.items() if v is not None}
    check_shape(error, "ErrorObject", where)
    return error


# ---------------------------------------------------------------- the API


def create_app(service: LocalService, *, guard: GuardConfig | None = None) -> ASGIApp:
    """Build the ASGI app speaking the Lambda durable-execution API for ``service``.

    ``guard`` says which hosts and origins it answers and whether requests must be
    signed; the default answers loopback names only, unsigned.

    Example:
        >>> svc = LocalService("memory://")
        >>> app = create_app(svc)
        >>> svc.close()

    """
    rt = service.control
    background: set[asyncio.Future[Any]] = set()  # keeps fire-and-forget tasks alive
    lambda_model()  # loaded now, not while the first checkpoint waits for it

    @_endpoint
    async def invoke(request: Request) -> Response:
        segment = _segment(request, "function", "FunctionName", _FUNCTION_MAX)
        qualifier = request.query_params.get("Qualifier") or split_qualifier(segment)[1]
        function = service.resolve(segment, qualifier)
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            raise ApiError("InvalidParameterValueException",
                           f"X-Amz-Invocation-Type must be RequestResponse, Event or DryRun, "
                           f"got {kind!r}")
        if kind == "DryRun":
            return Response(status_code=204)
        payload = await request.body()
        if payload.strip():
            await _parse(payload, "request body")
        else:
            payload = b""  # no payload: the function gets {}
        version = {"X-Amz-Executed-Version": "$LATEST"}
        if service.is_plain(function):
            if kind == "Event":
                # accepted now, run in the background (Lambda's asynchronous invoke)
                task = asyncio.ensure_future(
                    run_in_threadpool(service.invoke_plain, function, payload))
                background.add(task)
                task.add_done_callback(background.discard)
                return Response(b"", 202, headers=version)
            res = await run_in_threadpool(service.invoke_plain, function, payload)
            headers = dict(version)
            if res.function_error:
                headers["X-Amz-Function-Error"] = res.function_error
            return Response(res.payload, 200, headers=headers, media_type="application/json")
        name = request.headers.get("X-Amz-Durable-Execution-Name") or None
        target = f"{function}:{qualifier}" if qualifier else function
        trace = request.headers.get("X-Amzn-Trace-Id")  # the caller's trace, continued
        arn = await run_in_threadpool(service.start, target, payload, name, trace)
        headers = {"X-Amz-Executed-Version": version_of(arn), "X-Amz-Durable-Execution-Arn": arn}
        if kind == "Event":
            return Response(b"", 202, headers=headers)
        outcome = await _wait_for_outcome(service, arn)
        if outcome is None:
            body = {"errorType": "Sandbox.Timedout",
                    "errorMessage": f"execution still running after {service.sync_timeout:.0f} "
                                    "seconds; use InvocationType=Event for long executions"}
            headers["X-Amz-Function-Error"] = "Unhandled"
            return Response(json.dumps(body).encode(), 200, headers=headers,
                            media_type="application/json")
        if outcome.function_error:
            headers["X-Amz-Function-Error"] = outcome.function_error
        return Response(outcome.payload, 200, headers=headers, media_type="application/json")

    @_endpoint
    async def get_execution(request: Request) -> Response:
        arn = _segment(request, "arn", "DurableExecutionArn")
        include = _bool(request, "IncludeExecutionData", True)
        desc = await run_in_threadpool(rt.describe, arn)
        if not include:
            for key in ("InputPayload", "Result", "Error"):
                desc.pop(key, None)
            if "PauseDetails" in desc:
                desc["PauseDetails"] = {k: v for k, v in desc["PauseDetails"].items()
                                        if k != "Reason"}
        desc["ExecutionDataIncluded"] = include
        decoder = _decoder_asked(request, service)
        if decoder is not None:
            desc = await run_in_threadpool(_decoded_execution, decoder, desc)
        return _json(desc)

    @_endpoint
    async def history(request: Request) -> Response:
        arn = _segment(request, "arn", "DurableExecutionArn")
        page = await run_in_threadpool(
            rt.history,
            arn,
            include_execution_data=_bool(request, "IncludeExecutionData", True),
            max_items=_int(request, "MaxItems", 0, 1000) or _DEFAULT_PAGE,
            marker=request.query_params.get("Marker") or None,
            reverse_order=_bool(request, "ReverseOrder", False),
        )
        decoder = _decoder_asked(request, service)
        if decoder is not None:
            page = await run_in_threadpool(decoder.history, page, execution_arn=arn)
        return _json(page)

    @_endpoint
    async def state(request: Request) -> Response:
        arn = _segment(request, "arn", "DurableExecutionArn")
        token = request.query_params.get("CheckpointToken")
        if not token:
            raise ApiError("InvalidParameterValueException", "CheckpointToken is required")
        ops, marker = await run_in_threadpool(
            service.get_state, arn, token,
            request.query_params.get("Marker") or None,
            _int(request, "MaxItems", 0, 1000) or None,
        )
        out: dict[str, Any] = {"Operations": [operation_to_wire(o) for o in ops]}
        if marker:
            out["NextMarker"] = marker
        return _json(out)

    @_endpoint
    async def checkpoint(request: Request) -> Response:
        arn = _segment(request, "arn", "DurableExecutionArn")
        body = await _body_json(request, allow_empty=False)
        if not isinstance(body, dict):
            raise ApiError("InvalidRequestContentException", "expected a JSON object")
        token = body.get("CheckpointToken")
        if not isinstance(token, str) or not token:
            raise ApiError("InvalidParameterValueException", "CheckpointToken is required")
        check_shape({**body, "DurableExecutionArn": arn}, "CheckpointDurableExecutionRequest",
                    "CheckpointDurableExecution body")
        updates = body.get("Updates") or []
        client_token = body.get("ClientToken") or None
        if client_token is not None and not (isinstance(client_token, str)
                                             and _CLIENT_TOKEN.fullmatch(client_token)):
            raise ApiError("InvalidParameterValueException",
                           "ClientToken must be 1-64 printable ASCII characters")
        res = await run_in_threadpool(service.checkpoint, arn, token, updates,
                                      client_token)
        state: dict[str, Any] = {"Operations": [operation_to_wire(o) for o in res.operations]}
        if res.next_marker:
            state["NextMarker"] = res.next_marker
        out: dict[str, Any] = {"NewExecutionState": state}
        if res.token is not None:
            out["CheckpointToken"] = res.token
        return _json(out)

    @_endpoint
    async def stop(request: Request) -> Response:
        arn = _segment(request, "arn", "DurableExecutionArn")
        error = _error_object(await _body_json(request), "StopDurableExecution body")
        out = await run_in_threadpool(rt.stop, arn, error)
        service.notify()
        return _json(out)

    async def _control_body(request: Request, shape: str, where: str) -> dict[str, Any]:
        arn = _segment(request, "arn", "DurableExecutionArn")
        body = await _body_json(request)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ApiError("InvalidRequestContentException", f"{where}: expected a JSON object")
        check_shape({**body, "DurableExecutionArn": arn}, shape, where)
        client_token = body.get("ClientToken")
        if client_token is not None and not _CLIENT_TOKEN.fullmatch(client_token):
            raise ApiError("InvalidParameterValueException",
                           "ClientToken must be 1-64 printable ASCII characters")
        return {**body, "DurableExecutionArn": arn}

    @_endpoint
    async def pause(request: Request) -> Response:
        body = await _control_body(request, "PauseDurableExecutionRequest",
                                   "PauseDurableExecution body")
        await run_in_threadpool(
            rt.pause, body["DurableExecutionArn"], body.get("Reason"), body.get("ClientToken"),
            body.get("ExecutionTimeoutPaused", True),
        )
        service.notify()
        return _json({}, 202)

    @_endpoint
    async def resume(request: Request) -> Response:
        body = await _control_body(request, "ResumeDurableExecutionRequest",
                                   "ResumeDurableExecution body")
        await run_in_threadpool(
            rt.resume, body["DurableExecutionArn"], body.get("Reason"), body.get("ClientToken"),
        )
        service.notify()
        return _json({}, 202)

    @_endpoint
    async def delete(request: Request) -> Response:
        arn = _segment(request, "arn", "DurableExecutionArn")
        out = await run_in_threadpool(rt.delete, arn)
        return _json(out, 202)

    @_endpoint
    async def list_by_function(request: Request) -> Response:
        function = service.resolve(_segment(request, "function", "FunctionName", _FUNCTION_MAX),
                                   request.query_params.get("Qualifier"))
        page = await run_in_threadpool(_list_page, service, function, request)
        return _json(page)

    @_endpoint
    async def callback_succeed(request: Request) -> Response:
        cid = _callback_id(request)
        # The result is handed to the handler as text, verbatim (not parsed as JSON).
        result = decode_utf8(await request.body(), "the callback result",
                             "InvalidParameterValueException")
        await run_in_threadpool(rt.send_callback_success, cid, result)
        service.notify()
        return _json({})

    @_endpoint
    async def callback_fail(request: Request) -> Response:
        cid = _callback_id(request)
        error = _error_object(await _body_json(request), "SendDurableExecutionCallbackFailure body")
        await run_in_threadpool(rt.send_callback_failure, cid, error)
        service.notify()
        return _json({})

    @_endpoint
    async def callback_heartbeat(request: Request) -> Response:
        cid = _callback_id(request)
        await run_in_threadpool(rt.send_callback_heartbeat, cid)
        return _json({})

    async def health(request: Request) -> Response:
        if request.scope.get(AUTH_SCOPE_KEY) == "":
            return _json({"status": "ok"})  # unsigned, with authentication on: names stay private
        return _json({"status": "ok", "functions": service.functions()})

    async def unknown(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        if status == 405:
            return error_response(ApiError("UnknownOperationException",
                                           f"{request.method} is not allowed on this path", 405))
        return error_response(ApiError("UnknownOperationException",
                                       f"no operation at {request.method} {request.url.path}"))

    async def internal(request: Request, exc: Exception) -> Response:
        # Only reached by a failure outside an endpoint; it is logged where it is raised.
        return error_response(to_api_error(exc))

    arn = _V + "/durable-executions/{arn}"
    cb = _V + "/durable-execution-callbacks/{callback}"
    routes = [
        Route("/2015-03-31/functions/{function}/invocations", invoke, methods=["POST"]),
        Route(arn, get_execution, methods=["GET"]),
        Route(arn + "/history", history, methods=["GET"]),
        Route(arn + "/state", state, methods=["GET"]),
        Route(arn + "/checkpoint", checkpoint, methods=["POST"]),
        Route(arn + "/stop", stop, methods=["POST"]),
        Route(arn + "/pause", pause, methods=["POST"]),
        Route(arn + "/resume", resume, methods=["POST"]),
        Route(arn, delete, methods=["DELETE"]),
        Route(_V + "/functions/{function}/durable-executions", list_by_function, methods=["GET"]),
        Route(cb + "/succeed", callback_succeed, methods=["POST"]),
        Route(cb + "/fail", callback_fail, methods=["POST"]),
        Route(cb + "/heartbeat", callback_heartbeat, methods=["POST"]),
        Route("/_durable_ext/health", health, methods=["GET"]),
        *codec_routes(service.codec, _endpoint),
    ]
    app = Starlette(routes=routes,
                    exception_handlers={HTTPException: unknown, Exception: internal})
    return RequestGuard(_RawPathRouting(app), guard or GuardConfig())


async def _wait_for_outcome(service: LocalService, arn: str) -> Any:
    """Poll the execution until it ends or the sync-invoke limit passes."""
    import anyio

    loop_time = anyio.current_time
    deadline = loop_time() + service.sync_timeout
    delay = 0.002
    while True:
        outcome = await run_in_threadpool(service.outcome, arn)
        if outcome is not None or loop_time() >= deadline:
            return outcome
        await anyio.sleep(delay)
        delay = min(delay * 1.5, 0.05)


def _list_page(service: LocalService, function: str, request: Request) -> dict[str, Any]:
    """ListDurableExecutionsByFunction with the model's filters, newest first by default."""
    rt = service.control
    params = request.query_params
    statuses = params.getlist("Statuses")
    for s in statuses:
        if s not in _EXECUTION_STATUSES:
            known = sorted(_EXECUTION_STATUSES)
            raise ApiError("InvalidParameterValueException",
                           f"Statuses: unknown status {s!r}; expected one of {known}")
    after = _timestamp(params.get("StartedAfter"), "StartedAfter")
    before = _timestamp(params.get("StartedBefore"), "StartedBefore")
    return list_filtered(
        rt, function_name=function, statuses=statuses,
        name=params.get("DurableExecutionName") or None,
        started_after=after, started_before=before, reverse=_bool(request, "ReverseOrder", False),
        max_items=_int(request, "MaxItems", 0, 1000) or _DEFAULT_PAGE,
        marker=params.get("Marker") or None, scan_cap=SCAN_CAP)


def _timestamp(raw: str | None, name: str) -> float | None:
    if raw is None or raw == "":
        return None
    from datetime import datetime

    try:
        value = float(raw)
    except ValueError:
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError):
            value = math.nan
    if not math.isfinite(value):
        raise ApiError("InvalidParameterValueException",
                       f"{name} must be a timestamp, got {raw[:64]!r}")
    return value


class _RawPathRouting:
    """Route on the raw path so an encoded ``/`` stays inside its segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("raw_path"):
            scope = dict(scope)
            scope["path"] = scope["raw_path"].decode("latin-1").split("?", 1)[0]
        await self.app(scope, receive, send)
