"""Request guards in front of the HTTP API, applied before routing and before the body is read.

In order, for every request:

1. **Host.** The ``Host`` header must name this server: a loopback name (``localhost``,
   ``127.0.0.1``, ``[::1]``), the address it binds, or a name given with ``--allow-host``;
   any port. A web page that rebinds its own DNS name to 127.0.0.1 sends its own name, so
   it can neither read nor change anything (DNS rebinding).
2. **Cross-site requests.** A request that changes state (POST, PUT, DELETE, PATCH) is
   refused when it carries an ``Origin`` that is neither this server nor one given with
   ``--allow-origin``, or, without one, ``Sec-Fetch-Site: cross-site``/``same-site``; and
   when its ``Content-Type`` is one a browser sends without a CORS preflight
   (``text/plain``, ``application/x-www-form-urlencoded``, ``multipart/form-data``).
   botocore sends JSON or no ``Content-Type`` at all. Allowed origins get CORS headers
   (and preflights answered); others get none, so a browser hides every answer from them.
3. **Body size**, as Lambda limits it (:func:`body_limit`): a ``Content-Length`` over the
   limit is answered at once, and a chunked body is counted while it arrives; either way
   the answer is sent before the rest of the body is read, and the body is never kept.
4. **SigV4** (``--auth sigv4``): the date, key and form of the signature are checked from
   the headers, and the signature itself once the (bounded) body is in.

Refusals use the API's error format (``x-amzn-ErrorType`` and a JSON body).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from durable_ext._deps import require

require("starlette", extra="serve")

import anyio  # noqa: E402
from starlette.datastructures import Headers  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from durable_ext.engine.validation import ERROR_OBJECT_LIMIT  # noqa: E402
from durable_ext.errors import ConfigError  # noqa: E402
from durable_ext.http.sigv4 import SignedRequest, SigV4Verifier  # noqa: E402
from durable_ext.http.wire import ApiError, error_body  # noqa: E402

__all__ = [
    "AUTH_SCOPE_KEY",
    "CALLBACK_RESULT_LIMIT",
    "CHECKPOINT_LIMIT",
    "DEFAULT_LIMIT",
    "ERROR_BODY_LIMIT",
    "EVENT_INVOKE_LIMIT",
    "INVOKE_LIMIT",
    "LOOPBACK_HOSTS",
    "GuardConfig",
    "RequestGuard",
    "body_limit",
    "error_response",
    "normalize_host",
    "normalize_origin",
]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})

INVOKE_LIMIT = 6_291_456
"""Lambda's synchronous Invoke payload limit (6 MB), also for ``DryRun``."""
EVENT_INVOKE_LIMIT = 1_048_576
"""Lambda's asynchronous (``Event``) Invoke payload limit (1 MB)."""
_OPERATION_PAYLOAD_MAX = 6_291_456
CHECKPOINT_LIMIT = 2 * _OPERATION_PAYLOAD_MAX + 65_536
"""A checkpoint body that can carry one update with the model's largest ``Payload`` (6 MB,
the SDK's checkpointed execution result, which JSON escaping can at most double), plus
64 KiB for the rest. The SDK sends batches of at most 750 KB otherwise."""
CALLBACK_RESULT_LIMIT = 1_048_576
"""The model's limit on a SendDurableExecutionCallbackSuccess ``Result`` (1 MB)."""
ERROR_BODY_LIMIT = ERROR_OBJECT_LIMIT + 65_536
"""An ErrorObject body (callback failure, stop): the service's 1 MB error limit, plus
room for JSON escaping of its field names and punctuation."""
DEFAULT_LIMIT = 65_536
#: the codec server's routes (durable_ext.http.codec), which take a page of payloads
CODEC_PREFIX = "/_durable_ext/codec/"
"""Every other request (reads, heartbeats, unknown routes)."""

AUTH_SCOPE_KEY = "durable_ext.principal"
"""Scope key the guard sets: the access key that signed the request, ``""`` for an unsigned
request let through (the health check), None when authentication is off."""

_DRAIN_BYTES = 16 << 20
_DRAIN_SECONDS = 10.0
_STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
_SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded",
                           "multipart/form-data"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
_HEALTH = "/_durable_ext/health"
_EXPOSED = ("x-amzn-ErrorType, x-amzn-RequestId, X-Amz-Durable-Execution-Arn, "
            "X-Amz-Function-Error, X-Amz-Executed-Version, Retry-After")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_, ")
_BODY_LIMITS: dict[tuple[str, str], int] = {
    ("durable-executions", "checkpoint"): CHECKPOINT_LIMIT,
    ("durable-executions", "stop"): ERROR_BODY_LIMIT,
    ("durable-execution-callbacks", "succeed"): CALLBACK_RESULT_LIMIT,
    ("durable-execution-callbacks", "fail"): ERROR_BODY_LIMIT,
}


def normalize_host(value: str, where: str = "--allow-host") -> str:
    """Normalise a host name or address as the guard compares it: lower case, IPv6 in [].

    Raises:
        ConfigError: a value with a port, a scheme or characters no host name has.

    """
    name = value.strip().lower().rstrip(".")
    inner = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        if not name or any(not (c.isascii() and (c.isalnum() or c in "-._")) for c in name):
            raise ConfigError(f"{where}: expected a host name or IP address without a port, "
                              f"got {value!r}") from None
        return name
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def normalize_origin(value: str, where: str = "--allow-origin") -> str:
    """Normalise a web origin as browsers send it: ``scheme://host[:port]``, no default port.

    Raises:
        ConfigError: anything but an http(s) origin without path, query or credentials.

    """
    parts = urlsplit(value.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (parts.scheme not in ("http", "https") or not parts.hostname or port == -1
            or parts.path not in ("", "/") or parts.query or parts.fragment
            or parts.username is not None):
        raise ConfigError(f"{where}: expected an origin such as https://console.example:8443, "
                          f"got {value!r}")
    host = normalize_host(parts.hostname, where)
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardConfig:
    """Which hosts and origins the API answers, and whether requests must be signed.

    Attributes:
        allow_hosts: Host names (normalised, no port) requests may be addressed to.
        allow_origins: Web origins whose pages may change state and read answers.
        auth: Verifies SigV4 signatures; None accepts unsigned requests.
        unsigned_prefixes: Paths SigV4 does not cover because they authenticate their
            own way (the console, which browsers use, under its token).

    Example:
        >>> guard = GuardConfig.build(bind="127.0.0.1", hosts=["durable.internal"])
        >>> sorted(guard.allow_hosts)
        ['127.0.0.1', '[::1]', 'durable.internal', 'localhost']

    """

    allow_hosts: frozenset[str] = LOOPBACK_HOSTS
    allow_origins: frozenset[str] = field(default_factory=frozenset)
    auth: SigV4Verifier | None = None
    unsigned_prefixes: tuple[str, ...] = ()

    @classmethod
    def build(cls, *, bind: str = "127.0.0.1", hosts: Iterable[str] = (),
              origins: Iterable[str] = (), auth: SigV4Verifier | None = None) -> GuardConfig:
        """Loopback names, the bound address (unless a wildcard) and ``hosts``; ``origins``."""
        allowed = set(LOOPBACK_HOSTS) | {normalize_host(h) for h in hosts}
        if bind not in _WILDCARD_BINDS:
            allowed.add(normalize_host(bind, "--host"))
        return cls(allow_hosts=frozenset(allowed),
                   allow_origins=frozenset(normalize_origin(o) for o in origins), auth=auth)


def body_limit(method: str, raw_path: str, invocation_type: str | None) -> tuple[int, str]:
    """Return the most body bytes a request may send, and the error code past it."""
    parts = raw_path.split("/")
    if method == "POST" and raw_path.startswith(CODEC_PREFIX):
        return INVOKE_LIMIT, "RequestTooLargeException"  # many payloads of a history
    if method == "POST" and len(parts) == 5:
        if parts[1] == "2015-03-31" and parts[2] == "functions" and parts[4] == "invocations":
            limit = EVENT_INVOKE_LIMIT if invocation_type == "Event" else INVOKE_LIMIT
            return limit, "RequestTooLargeException"
        if parts[1] == "2025-12-01" and (parts[2], parts[4]) in _BODY_LIMITS:
            return _BODY_LIMITS[parts[2], parts[4]], "SerializedRequestEntityTooLargeException"
    return DEFAULT_LIMIT, "SerializedRequestEntityTooLargeException"


def error_response(err: ApiError, *, close: bool = False) -> Response:
    """Build the API's error format: code in ``x-amzn-ErrorType``, message in a JSON body."""
    headers = {"x-amzn-ErrorType": err.code}
    if err.code == "TooManyRequestsException":
        headers["Retry-After"] = "1"
    if close:
        headers["Connection"] = "close"
    return Response(error_body(err.code, err.message), status_code=err.status,
                    media_type="application/json", headers=headers)


class _Disconnected(Exception):
    """The client went away before its body was in."""


def _host_of(value: str | None) -> str | None:
    """Return the name in a ``Host`` header, normalised; None when missing or malformed."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        name, port = value[: end + 1], value[end + 1:]
    else:
        name, _, rest = value.partition(":")
        port = ":" + rest if ":" in value else ""
    if port and not (port[0] == ":" and 1 <= len(port) <= 6 and port[1:].isascii()
                     and port[1:].isdigit()):
        return None
    try:
        return normalize_host(name)
    except ConfigError:
        return None


class RequestGuard:
    """ASGI middleware applying :class:`GuardConfig` before the app sees a request.

    Args:
        app: The API (it receives the body the guard has already read and counted).
        config: Hosts, origins and authentication.

    """

    def __init__(self, app: ASGIApp, config: GuardConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse what the configuration does not allow; pass the rest on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        raw = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        method = scope["method"]
        declared = _content_length(headers)
        try:
            host_header = self._check_host(headers)
            origin = headers.get("origin")
            allowed = origin is not None and self._origin_allowed(origin, host_header)
            if allowed:
                send = _with_cors(send, str(origin))
            if method == "OPTIONS" and origin is not None \
                    and "access-control-request-method" in headers:
                await self._preflight(scope, receive, send, headers, allowed)
                return
            if method in _STATE_CHANGING:
                self._check_cross_site(headers, origin, allowed)
            limit, code = body_limit(method, raw_path, headers.get("x-amz-invocation-type"))
            if declared is not None and declared > limit:
                raise _too_large(code, limit)
            signed = self._check_signature_headers(headers, method, raw_path)
            body = await _read_body(receive, limit, code)
            principal: str | None = None
            if self.config.auth is not None:
                principal = ""
                if signed is not None:
                    query = scope.get("query_string", b"").decode("latin-1")
                    pairs = [(k.decode("latin-1"), v.decode("latin-1"))
                             for k, v in scope["headers"]]
                    self.config.auth.verify(signed, method, raw_path, query, pairs, body)
                    principal = signed.access_key
        except ApiError as err:
            # Draining the rest of the body is pointless when the client waits for this
            # answer before sending it, or when it announced more than is worth reading.
            drain = (headers.get("expect", "").lower() != "100-continue"
                     and (declared is None or declared <= _DRAIN_BYTES))
            await _refuse(err, receive, send, drain=drain)
            return
        except _Disconnected:
            return
        scope = {**scope, AUTH_SCOPE_KEY: principal}
        await self.app(scope, _replay(body, receive), send)

    # ------------------------------------------------------------------ checks

    def _check_host(self, headers: Headers) -> str:
        value = headers.get("host")
        name = _host_of(value)
        if name is None or name not in self.config.allow_hosts:
            raise ApiError("AccessDeniedException",
                           f"Host {_shown(value)} is not one this server answers to; allow it with "
                           "--allow-host NAME")
        return str(value).strip().lower()

    def _origin_allowed(self, origin: str, host_header: str) -> bool:
        origin = origin.strip().lower()
        if origin in (f"http://{host_header}", f"https://{host_header}"):
            return True  # same origin: a page this very server (host and port) served
        return origin in self.config.allow_origins

    def _check_cross_site(self, headers: Headers, origin: str | None, allowed: bool) -> None:
        if origin is not None and not allowed:
            raise ApiError("AccessDeniedException",
                           f"Origin {_shown(origin)} may not change state here; allow it with "
                           "--allow-origin ORIGIN")
        site = headers.get("sec-fetch-site", "").strip().lower()
        if not allowed and site in ("cross-site", "same-site"):
            raise ApiError("AccessDeniedException",
                           f"a {site} request from a web page may not change state here")
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media in _SIMPLE_TYPES:
            raise ApiError("UnsupportedMediaTypeException",
                           f"Content-Type {media} is refused (browsers send it across sites "
                           "without asking); send JSON as application/json, or no "
                           "Content-Type")

    def _check_signature_headers(self, headers: Headers, method: str,
                                 raw_path: str) -> SignedRequest | None:
        auth = self.config.auth
        if auth is None:
            return None
        if method == "GET" and raw_path == _HEALTH and "authorization" not in headers:
            return None  # load balancers probe it unsigned; it answers less (see the app)
        if _plain(raw_path) and any(raw_path == p or raw_path.startswith(p + "/")
                                    for p in self.config.unsigned_prefixes):
            return None
        return auth.check_headers(headers)

    async def _preflight(self, scope: Scope, receive: Receive, send: Send, headers: Headers,
                         allowed: bool) -> None:
        if not allowed:
            err = ApiError("AccessDeniedException",
                           f"Origin {_shown(headers.get('origin'))} is not allowed; allow it with "
                           "--allow-origin ORIGIN")
            await _refuse(err, receive, send, drain=True)
            return
        requested = headers.get("access-control-request-headers", "").lower()
        out = {"Access-Control-Allow-Methods": "GET, POST", "Access-Control-Max-Age": "600"}
        if requested and set(requested) <= _TOKEN_CHARS:
            out["Access-Control-Allow-Headers"] = requested
        await Response(status_code=204, headers=out)(scope, receive, send)


def _plain(raw_path: str) -> bool:
    """Whether a path means the same to every router: no dot segments, no odd separators.

    Only such a path may skip signatures under an unsigned prefix, so
    ``/console/../2025-12-01/...`` cannot reach the API unsigned through a router (or a
    proxy) that normalises what this guard compared.
    """
    lowered = raw_path.lower()
    if "//" in raw_path or "\\" in raw_path or any(c in lowered for c in ("%2f", "%2e", "%5c")):
        return False
    return not any(part in (".", "..") for part in raw_path.split("/"))


def _too_large(code: str, limit: int) -> ApiError:
    return ApiError(code, f"Request must be at most {limit} bytes for this operation")


def _shown(value: str | None) -> str:
    """Quote a header value for an error message, cut short (the sender chose it)."""
    return repr(value if value is None or len(value) <= 100 else value[:100] + "...")


def _content_length(headers: Headers) -> int | None:
    raw = headers.get("content-length")
    return int(raw) if raw is not None and raw.isascii() and raw.isdigit() else None


async def _read_body(receive: Receive, limit: int, code: str) -> bytes:
    """Read the whole body, counted while it arrives; refuse it once it passes ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(code, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Give the app the body already read, then the real ``receive``'s events."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _refuse(err: ApiError, receive: Receive, send: Send, *, drain: bool) -> None:
    """Answer at once; then read and drop what the client still sends, within bounds.

    Most clients (botocore too) read the answer only once they have sent the whole body;
    closing on them with unread data makes their kernel report a reset instead of the
    answer. So the answer goes out first, the response stays open while a bounded rest
    of the body is discarded (never kept), and the connection is closed after.
    """
    response = error_response(err, close=True)
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": drain})
    if not drain:
        return
    dropped = 0
    with anyio.move_on_after(_DRAIN_SECONDS):
        while dropped <= _DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                break
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _with_cors(send: Send, origin: str) -> Send:
    """Add the CORS headers that let an allowed origin's page read the answer."""
    extra = [(b"access-control-allow-origin", origin.encode("latin-1")),
             (b"access-control-expose-headers", _EXPOSED.encode()),
             (b"vary", b"Origin")]

    async def cors_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return cors_send

