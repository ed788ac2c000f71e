"""The console's Starlette app: pages rendered from templates, and a few JSON actions.

Pages (``GET``): the executions list at ``/``, one execution at ``/execution?arn=...``,
one of its operations with its payloads decoded at ``/operation?arn=...&op=ID`` (loaded
when a timeline line is opened), its raw history at ``/history?arn=...``; ``fragment=``
answers only the part the page's script swaps in. ``GET /api/state?arn=...`` says whether anything
changed (status and last event id), so a page polls cheaply.

Actions (``POST /api/ACTION`` with a JSON body: ``stop``, ``pause``, ``resume``,
``delete``, ``rerun``, ``callback``) pass the HTTP API's guards
(:class:`~durable_ext.http.guard.RequestGuard`): the Host must be this server, a
cross-site Origin is refused, and so are the content types a form can send, so another
web page cannot act through the visitor's browser. With a token
(:class:`ConsoleSettings`), every request needs the console's cookie, set by opening the
URL printed at start (``?token=...``).

Every payload is attacker-controlled text: templates autoescape, the script inserts only
server-rendered fragments and sets text with ``textContent``, and the
Content-Security-Policy allows no inline script or style.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from durable_ext._deps import require

require("starlette", extra="console")
require("jinja2", extra="console")

import jinja2  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402

from durable_ext.console.views import (  # noqa: E402
    PAGE_SIZES,
    SHOWN_CHARS,
    STATUSES,
    ListQuery,
    execution_view,
    last_event_id,
    list_view,
    operation_detail,
)
from durable_ext.errors import (  # noqa: E402
    ConflictError,
    InvalidParameterValueError,
    NotFoundError,
    service_code,
)
from durable_ext.serializers.readable import Decoder  # noqa: E402

if TYPE_CHECKING:
    from durable_ext.runtime.control import ControlPlane

__all__ = ["COOKIE", "ConsoleSettings", "Settler", "create_console_app"]

COOKIE = "durable_ext_console"
_HERE = Path(__file__).parent
_STATIC = {"console.css": "text/css; charset=utf-8",
           "console.js": "text/javascript; charset=utf-8"}
_HEADERS = {
    # No inline script or style at all: a payload that slipped past escaping still runs nothing.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",  # frame-ancestors, for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # execution ARNs are in the URLs
    "Cache-Control": "no-store",
}
_HISTORY_PAGE = 200
_EVENT_DEPTH = 32
_ACTION_BODY_MAX = 65_536
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSettings:
    """How the console reads payloads, where it lives, and who may use it.

    Attributes:
        decoder: Decodes payloads (the handler's serdes, keys and types).
        prefix: Path the console is served under (``""`` alone, ``/console`` beside the API).
        token: When set, requests need the cookie that ``?token=TOKEN`` sets.
        on_change: Called with an execution's ARN after an action that lets it run on
            (a callback, a resume, a re-run): a local runtime runs it on; None when a
            service or Lambda runs executions by itself.
        refresh_seconds: How often open pages look for changes.

    """

    decoder: Decoder
    prefix: str = ""
    token: str | None = None
    on_change: Callable[[str], None] | None = None
    refresh_seconds: float = 1.5

    def __post_init__(self) -> None:
        if self.prefix and (not self.prefix.startswith("/") or self.prefix.endswith("/")):
            raise ValueError(f"prefix must start with / and not end with one, got {self.prefix!r}")
        if self.token is not None and len(self.token) < 16:
            raise ValueError("token must be at least 16 characters")
        if self.refresh_seconds <= 0:
            raise ValueError(f"refresh_seconds must be positive, got {self.refresh_seconds}")


class Settler:
    """Runs executions of a local runtime on after actions, one at a time, off the requests.

    The CLI's ``callback`` and ``resume`` do the same in the foreground; here a page waits
    for nothing and shows the execution moving as its history grows.
    """

    def __init__(self, plane: ControlPlane, timeout: float = 300.0) -> None:
        self._plane = plane
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="durable-ext-console")

    def __call__(self, arn: str) -> None:
        """Let ``arn`` run on until it waits for outside input or ends (in the background)."""
        future = self._pool.submit(self._plane.settle, arn, self._timeout)
        future.add_done_callback(_log_failure)

    def close(self) -> None:
        """Wait for the execution being run on, then stop."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _log_failure(future: Any) -> None:
    exc = future.exception()
    if exc is not None:
        _log.error("running an execution on after a console action failed: %s: %s",
                   type(exc).__name__, exc)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # every template, whatever its name: payloads are hostile
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["iso"] = lambda v: v.isoformat() if v is not None else ""
    env.filters["dollars"] = _dollars
    return env


def _dollars(value: float) -> str:
    """Show cents for dollars, and enough digits for the fractions of a cent one run costs."""
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.8f}".rstrip("0").rstrip(".") if value else "$0"


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def create_console_app(plane: ControlPlane, settings: ConsoleSettings) -> ASGIApp:
    """Build the console over ``plane`` (not guarded: put a RequestGuard in front).

    Example:
        >>> from durable_ext.runtime import Runtime
        >>> with Runtime("memory://") as rt:
        ...     app = create_console_app(rt, ConsoleSettings(decoder=Decoder()))

    """
    env = _environment()
    base = settings.prefix
    static = {name: ((_HERE / "static" / name).read_bytes(), media)
              for name, media in _STATIC.items()}

    def url(path: str, params: Any = ()) -> str:
        query = urlencode(list(params.items()) if isinstance(params, Mapping) else params)
        return f"{base}{path}" + (f"?{query}" if query else "")

    env.globals.update(url=url, statuses=STATUSES, page_sizes=PAGE_SIZES,
                       refresh_ms=int(settings.refresh_seconds * 1000))

    def page(name: str, status: int = 200, **context: Any) -> Response:
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def failure(exc: Exception) -> Response:
        code = service_code(exc)
        status = 400 if isinstance(exc, InvalidParameterValueError) else code.status
        if status >= 500:
            _log.exception("console page failed")
            message = f"internal error: {type(exc).__name__}"
        else:
            message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        return page("error.html", status, message=message)

    async def executions(request: Request) -> Response:
        try:
            query = ListQuery.parse(request.query_params.get, request.query_params.getlist)
            view = await run_in_threadpool(list_view, plane, query, now=_now(plane))
        except Exception as exc:
            return failure(exc)
        fragment = request.query_params.get("fragment") == "rows"
        template = "rows_fragment.html" if fragment else "list.html"
        return page(template, view=view, query=query)

    async def execution(request: Request) -> Response:
        try:
            arn = _arn(request.query_params.get("arn"))
            view = await run_in_threadpool(execution_view, plane, arn, settings.decoder,
                                           now=_now(plane))
        except Exception as exc:
            return failure(exc)
        fragment = request.query_params.get("fragment") == "main"
        return page("execution_main.html" if fragment else "execution.html", view=view)

    async def operation(request: Request) -> Response:
        try:
            arn = _arn(request.query_params.get("arn"))
            op = _text_param(request.query_params.get("op"), "op")
            detail = await run_in_threadpool(operation_detail, plane, arn, op,
                                             settings.decoder, now=_now(plane))
        except Exception as exc:
            return failure(exc)
        fragment = request.query_params.get("fragment") == "detail"
        return page("operation_detail.html" if fragment else "operation.html",
                    d=detail)

    async def history(request: Request) -> Response:
        try:
            arn = _arn(request.query_params.get("arn"))
            total = await run_in_threadpool(last_event_id, plane, arn)
            start = _offset(request.query_params.get("event"), total)
            shown = await run_in_threadpool(_history_page, plane, arn, start)
        except Exception as exc:
            return failure(exc)
        return page("history.html", arn=arn, start=start, total=total,
                    page_size=_HISTORY_PAGE,
                    events=[(e.get("EventId"), json.dumps(_cut(e), indent=2, ensure_ascii=False,
                                                          default=str)) for e in shown])

    async def state(request: Request) -> Response:
        try:
            arn = _arn(request.query_params.get("arn"))
            desc = await run_in_threadpool(plane.describe, arn)
            last = await run_in_threadpool(lambda: plane.history(
                arn, include_execution_data=False, max_items=1, reverse_order=True))
        except NotFoundError:
            return JSONResponse({"status": "DELETED", "events": 0}, headers=_HEADERS)
        except Exception as exc:
            return _action_error(exc)
        events = last.get("Events") or [{}]
        return JSONResponse({"status": desc["Status"], "events": events[0].get("EventId", 0)},
                            headers=_HEADERS)

    async def asset(request: Request) -> Response:
        found = static.get(request.path_params["name"])
        if found is None:
            return page("error.html", 404, message="no such file")
        return Response(found[0], media_type=found[1],
                        headers={**_HEADERS, "Cache-Control": "max-age=3600"})

    async def action(request: Request) -> Response:
        name = request.path_params["action"]
        handler = _ACTIONS.get(name)
        if handler is None:
            return JSONResponse({"message": f"no action {name!r}"}, 404, headers=_HEADERS)
        try:
            body = await _json_body(request)
            out = await run_in_threadpool(handler, plane, body)
        except Exception as exc:
            return _action_error(exc)
        if out.changed is not None and settings.on_change is not None:
            settings.on_change(out.changed)
        reply: dict[str, Any] = {"message": out.message}
        if out.location is not None:
            reply["location"] = url(*out.location)
        return JSONResponse(reply, headers=_HEADERS)

    routes = [
        Route(base + "/", executions, methods=["GET"]),
        Route(base + "/execution", execution, methods=["GET"]),
        Route(base + "/operation", operation, methods=["GET"]),
        Route(base + "/history", history, methods=["GET"]),
        Route(base + "/api/state", state, methods=["GET"]),
        Route(base + "/api/{action}", action, methods=["POST"]),
        Route(base + "/static/{name}", asset, methods=["GET"]),
    ]
    if base:
        routes.append(Route(base, lambda r: RedirectResponse(base + "/", headers=_HEADERS),
                            methods=["GET"]))
    app: ASGIApp = Starlette(routes=routes)
    if settings.token is not None:
        app = _TokenGate(app, settings.token, base or "/")
    return app


def _now(plane: ControlPlane) -> dt.datetime:
    """Return the time on the plane's clock (a local runtime's may be virtual)."""
    clock = getattr(plane, "clock", None)
    now_ms = getattr(clock, "now_ms", None)
    if callable(now_ms):
        return dt.datetime.fromtimestamp(now_ms() / 1000, dt.UTC)
    return dt.datetime.now(dt.UTC)


def _arn(value: str | None) -> str:
    if not value or len(value) > 1024 or not value.startswith("arn:"):
        raise InvalidParameterValueError("expected ?arn= an execution ARN")
    return value


def _optional_arn(value: str | None) -> str | None:
    return None if value is None else _arn(value)


def _text_param(value: str | None, name: str, longest: int = 1024) -> str:
    if not value or len(value) > longest:
        raise InvalidParameterValueError(f"expected ?{name}= of 1 to {longest} characters")
    return value


def _offset(value: str | None, total: int) -> int:
    """Return where the history page starts: the page holding event number ``value``."""
    if not value:
        return 0
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise InvalidParameterValueError("event must be an event number")
    index = min(max(int(value) - 1, 0), max(total - 1, 0))
    return index - index % _HISTORY_PAGE


def _history_page(plane: ControlPlane, arn: str, start: int) -> list[dict[str, Any]]:
    """Return the page of events from index ``start``, holding one page at a time.

    Markers are opaque (the service's on ``lambda://``), so the pages before are read
    and dropped, never kept.
    """
    marker: str | None = None
    skipped = 0
    while True:
        found = plane.history(arn, include_execution_data=True, max_items=_HISTORY_PAGE,
                              marker=marker)
        events: list[dict[str, Any]] = found["Events"]
        marker = found.get("NextMarker")
        if skipped + len(events) > start or not marker or not events:
            return events[start - skipped:] if skipped <= start else []
        skipped += len(events)


def _cut(value: Any, depth: int = 0) -> Any:
    """Return an event as the page shows it: long texts cut, deep nesting elided.

    A payload may be megabytes and an error object nested deep; the raw history of the
    API has them whole.
    """
    if isinstance(value, str):
        if len(value) <= SHOWN_CHARS:
            return value
        return f"{value[:SHOWN_CHARS]}… (cut: {len(value)} characters)"
    if depth >= _EVENT_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {k: _cut(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v, depth + 1) for v in value]
    return value


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > _ACTION_BODY_MAX:
        raise InvalidParameterValueError(f"the request is larger than {_ACTION_BODY_MAX} bytes")
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise InvalidParameterValueError("actions take a JSON body (application/json)")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # 64 KiB of "[" nests past the parser's stack
        raise InvalidParameterValueError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidParameterValueError("the body must be a JSON object")
    return body


def _action_error(exc: Exception) -> Response:
    if isinstance(exc, ConflictError):
        status = 409  # the execution's status refuses it (pause an ended one...)
    elif isinstance(exc, InvalidParameterValueError):
        status = 400
    else:
        status = service_code(exc).status
    if status >= 500:
        _log.exception("console action failed")
        return JSONResponse({"message": f"internal error: {type(exc).__name__}"}, status,
                            headers=_HEADERS)
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return JSONResponse({"message": message}, status, headers=_HEADERS)


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class _Outcome:
    message: str
    changed: str | None = None  # an execution that may now run on
    location: tuple[str, dict[str, str]] | None = None  # where the page goes next


def _field(body: Mapping[str, Any], name: str, *, required: bool = True,
           longest: int = 1024) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidParameterValueError(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > longest:
        raise InvalidParameterValueError(f"{name} must be text of at most {longest} characters")
    return value


def _stop(plane: ControlPlane, body: Mapping[str, Any]) -> _Outcome:
    arn = _arn(_field(body, "arn"))
    message = _field(body, "message", required=False)
    plane.stop(arn, {"ErrorMessage": message} if message else None)
    return _Outcome("stopped")


def _pause(plane: ControlPlane, body: Mapping[str, Any]) -> _Outcome:
    arn = _arn(_field(body, "arn"))
    plane.pause(arn, _field(body, "reason", required=False))
    return _Outcome("pause requested")


def _resume(plane: ControlPlane, body: Mapping[str, Any]) -> _Outcome:
    arn = _arn(_field(body, "arn"))
    plane.resume(arn)
    return _Outcome("resumed", changed=arn)


def _delete(plane: ControlPlane, body: Mapping[str, Any]) -> _Outcome:
    arn = _arn(_field(body, "arn"))
    plane.delete(arn)
    return _Outcome("deleted", location=("/", {}))


def _rerun(plane: ControlPlane, body: Mapping[str, Any]) -> _Outcome:
    from durable_ext.engine.arns import version_of
    from durable_ext.runtime.runtime import Runtime

    arn = _arn(_field(body, "arn"))
    desc = plane.describe(arn)
    function = str(desc.get("FunctionArn") or "").rsplit(":", 1)[-1]
    version = version_of(arn)
    if isinstance(plane, Runtime):
        plane.ensure_handler(arn)  # a re-run of an execution another process started
    name = f"{str(desc.get('DurableExecutionName') or 'run')[:40]}-rerun-{secrets.token_hex(4)}"
    target = function if version == "$LATEST" else f"{function}:{version}"
    new = plane.start(target, desc.get("InputPayload"), name=name)
    return _Outcome(f"started {name}", changed=new, location=("/execution", {"arn": new}))


def _callback(plane: ControlPlane, body: Mapping[str, Any]) -> _Outcome:
    callback_id = str(_field(body, "callback_id", longest=4096))
    outcome = _field(body, "outcome")
    payload = _field(body, "payload", required=False, longest=_ACTION_BODY_MAX)
    if outcome == "succeed":
        plane.send_callback_success(callback_id, payload)  # as given, like any sender
    elif outcome == "fail":
        plane.send_callback_failure(callback_id, _error_object(payload))
    elif outcome == "heartbeat":
        plane.send_callback_heartbeat(callback_id)
        return _Outcome("heartbeat sent")
    else:
        raise InvalidParameterValueError("outcome must be succeed, fail or heartbeat")
    # The callback id is MACed and names its execution: that one runs on, whatever the
    # body claims. Only a plane that cannot read its ids (the service's) takes the body's.
    arn = plane.execution_of_callback(callback_id) or _optional_arn(_field(body, "arn",
                                                                           required=False))
    said = "callback succeeded" if outcome == "succeed" else "callback failed"
    return _Outcome(said, changed=arn)


def _error_object(payload: str | None) -> dict[str, Any]:
    """Return the ErrorObject a failure sends: the payload's JSON object, or its text."""
    if not payload:
        return {"ErrorMessage": "failed from the console"}
    try:
        parsed = json.loads(payload)
    except ValueError:
        return {"ErrorMessage": payload}
    return parsed if isinstance(parsed, dict) else {"ErrorMessage": str(parsed)}


_ACTIONS: dict[str, Callable[[ControlPlane, Mapping[str, Any]], _Outcome]] = {
    "stop": _stop, "pause": _pause, "resume": _resume, "delete": _delete,
    "rerun": _rerun, "callback": _callback,
}


# ---------------------------------------------------------------- token


class _TokenGate:
    """Let through requests carrying the console's cookie; ``?token=`` sets it.

    The cookie is HttpOnly and SameSite=Strict: another site's page can neither read it
    nor make the browser send it.
    """

    def __init__(self, app: ASGIApp, token: str, path: str) -> None:
        self.app = app
        self._token = token.encode()
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token")
        if given is not None and self._matches(given):
            target = request.url.remove_query_params("token")
            # The token is in this URL: the answer must be neither cached nor named as
            # a Referer (nothing loads from it, but a proxy or an extension may look).
            response: Response = RedirectResponse(str(target.path) + (
                f"?{target.query}" if target.query else ""), 303, headers=_HEADERS)
            response.set_cookie(COOKIE, given, httponly=True, samesite="strict",
                                path=self._path)
            await response(scope, receive, send)
            return
        if self._matches(request.cookies.get(COOKIE, "")):
            await self.app(scope, receive, send)
            return
        await _forbidden(scope, receive, send)

    def _matches(self, value: str) -> bool:
        return hmac.compare_digest(value.encode(), self._token)


async def _forbidden(scope: Scope, receive: Receive, send: Send) -> None:
    text = ("This console needs its token: open the URL it printed when it started "
            "(…/?token=...).")
    await HTMLResponse(f"<!doctype html><title>Forbidden</title><p>{text}</p>", 403,
                       headers=_HEADERS)(scope, receive, send)

