"""The local service behind the HTTP API: a Runtime, its driver thread, and invocation.

:class:`LocalService` owns a :class:`~durable_ext.runtime.Runtime` on any backend URL and
a single driver thread that runs invocations and timers as they become due, woken at once
when a request creates work. Functions are served ``inline`` (the handler runs in the
server process and checkpoints through the engine directly) or over ``http`` (the
handler runs in a warm worker process and checkpoints through this server's API with the
SDK's own ``LambdaClient``, as on Lambda).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from durable_ext.backends.store import TERMINAL_STATUSES, Store
from durable_ext.engine import CheckpointResult, DueKind, normalize_input
from durable_ext.errors import ConfigError
from durable_ext.events.sinks import EventSink
from durable_ext.http.invokers import RemoteHandler, WorkerPool
from durable_ext.http.wire import ApiError

if TYPE_CHECKING:
    from durable_ext.http.codec import Codec
    from durable_ext.serializers.readable import Decoder
from durable_ext.runtime import ControlPlane, Runtime, VirtualClock
from durable_ext.runtime.handlers import HandlerRef, reference_of
from durable_ext.runtime.runtime import function_of

__all__ = ["InvokeResult", "LocalService", "WakeableClock"]

Isolation = Literal["inline", "http"]

_IDLE_POLL = 0.25
"""Longest the driver sleeps without a known timer (a bound, not a poll for work)."""


class WakeableClock:
    """Wall-clock time whose sleeps end early when new work arrives."""

    def __init__(self, wake: threading.Event) -> None:
        self._wake = wake

    def now_ms(self) -> int:
        """Return the wall-clock time, epoch ms."""
        return int(time.time() * 1000)

    def sleep_until(self, due_ms: int, max_seconds: float) -> None:
        """Sleep until ``due_ms`` (at most ``max_seconds``), or until woken."""
        delay = min((due_ms - self.now_ms()) / 1000, max_seconds)
        if delay > 0 and self._wake.wait(delay):
            self._wake.clear()


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """What Invoke answers: status code, ARN, payload and the function error flag."""

    status: int
    arn: str | None = None
    payload: bytes = b""
    function_error: str | None = None


class LocalService:
    """Serve registered durable functions with the Lambda durable-execution semantics.

    Args:
        backend: Store URL (``memory://``, ``file://PATH``, ``redis://...``) or a Store.
        virtual_time: Waits and retry delays complete at once (a :class:`VirtualClock`).
        region: Region in ARNs.
        account: Account id in ARNs.
        invocation_timeout: Seconds one invocation may run.
        workers: Most warm handler processes for functions served over ``http``. The
            service has one driver, so invocations run one at a time; more than one
            worker only matters to code that calls the pool from several threads.
        sync_timeout: Longest a RequestResponse Invoke waits for its execution to end.
        event_sinks: Where status-change events go (:mod:`durable_ext.events`).

    Example:
        >>> with LocalService("memory://") as svc:
        ...     svc.functions()
        []

    """

    def __init__(
        self,
        backend: str | Store = "memory://",
        *,
        virtual_time: bool = False,
        region: str = "us-east-1",
        account: str = "123456789012",
        invocation_timeout: float = 900.0,
        workers: int = 1,
        sync_timeout: float = 900.0,
        event_sinks: Sequence[EventSink] = (),
    ) -> None:
        self._wake = threading.Event()
        clock: Any = VirtualClock() if virtual_time else WakeableClock(self._wake)
        self.runtime = Runtime(backend, clock=clock, region=region, account=account,
                               invocation_timeout=invocation_timeout, event_sinks=event_sinks)
        self.region = region
        self.sync_timeout = sync_timeout
        self._workers = workers
        self._invocation_timeout = invocation_timeout
        self._pool: WorkerPool | None = None
        self._endpoint_url: str | None = None
        self._pending_http: dict[str, HandlerRef] = {}
        self._worker_credentials: tuple[str, str] | None = None
        self._stop = threading.Event()
        self._driver: threading.Thread | None = None
        #: the codec server's decoder, when turned on (see enable_codec)
        self.codec: Codec | None = None
        #: decodes payloads for responses that ask for it (see enable_decoded_views)
        self.decoder: Decoder | None = None
        self.driver_error: BaseException | None = None

    # ------------------------------------------------------------------ functions

    def register(self, name: str, handler: Any, *, isolation: Isolation = "inline",
                 durable: bool = True) -> None:
        """Serve ``handler`` (an object or ``"module:attr"``) as function ``name``.

        ``isolation="http"`` runs each invocation in a warm worker process that
        checkpoints over this server's HTTP API (the server's URL must be known: see
        :meth:`set_endpoint`); ``"inline"`` runs it in the server process.
        """
        if isolation not in ("inline", "http"):
            raise ConfigError(f"isolation must be 'inline' or 'http', got {isolation!r}")
        if not durable or isolation == "inline":
            self.runtime.register(name, handler, durable=durable)
        else:
            ref = reference_of(handler)
            if ref is None:
                raise ConfigError(
                    f"handler {handler!r} of {name!r} is not importable by reference; "
                    "serve it as 'module:attr' to run it in a worker process"
                )
            if self._endpoint_url is None:
                self._pending_http[name] = ref
            else:
                self.runtime.register(name, RemoteHandler(self._worker_pool(), ref), ref=ref)
        self._wake.set()

    def set_endpoint(
        self, endpoint_url: str, *, credentials: tuple[str, str] | None = None
    ) -> None:
        """Where ``http`` workers reach this server; registers functions waiting for it.

        ``credentials`` (access key id, secret) is the key workers sign their checkpoints
        with when the server verifies signatures; handlers' own AWS credentials stay theirs.
        """
        self._endpoint_url = endpoint_url
        self._worker_credentials = credentials
        for name, ref in self._pending_http.items():
            self.runtime.register(name, RemoteHandler(self._worker_pool(), ref), ref=ref)
        self._pending_http.clear()
        self._wake.set()

    def _worker_pool(self) -> WorkerPool:
        if self._pool is None:
            assert self._endpoint_url is not None
            self._pool = WorkerPool(self._endpoint_url, region=self.region, size=self._workers,
                                    timeout=self._invocation_timeout,
                                    credentials=self._worker_credentials)
        return self._pool

    def functions(self) -> list[str]:
        """Names of the served functions."""
        return [*self.runtime.functions(), *self._pending_http]

    def resolve(self, function_name: str, qualifier: str | None = None) -> str:
        """``fn``, ``fn:qualifier``, a partial or full function ARN -> a served name.

        Raises:
            ApiError: ``ResourceNotFoundException`` for a function that is not served.

        """
        name = function_name
        if ":" in name:
            parts = name.split(":")
            if parts[0] == "arn":
                name = parts[6] if len(parts) > 6 else ""
            elif len(parts) >= 3 and parts[1] == "function":  # ACCOUNT:function:NAME
                name = parts[2]
            else:
                name = parts[0]
        unknown_qualifier = bool(qualifier) and name in self.runtime.functions() and \
            self.runtime.resolve_version(f"{name}:{qualifier}") is None
        if name not in self.runtime.functions() or unknown_qualifier:
            raise ApiError(
                "ResourceNotFoundException",
                f"Function not found: {self.runtime.engine.function_arn(name or function_name)}"
                + (f":{qualifier}" if qualifier else ""),
            )
        return name

    # ------------------------------------------------------------------ invoke

    def start(self, function_name: str, payload: bytes, name: str | None,
              trace: str | None = None) -> str:
        """Start (or find, by name) an execution of a durable function; its ARN.

        ``trace`` is the request's ``X-Amzn-Trace-Id``: the execution continues it.
        """
        text = _payload_text(payload)
        arn = self.runtime.start(function_name, normalize_input(text), name=name, trace=trace)
        self._wake.set()
        return arn

    def invoke_plain(self, function_name: str, payload: bytes) -> InvokeResult:
        """Invoke a plain (non-durable) function once, synchronously."""
        out = self.runtime.call_plain(function_name, json.loads(_payload_text(payload)))
        if out.error is not None:
            body = {"errorType": out.error.get("ErrorType"),
                    "errorMessage": out.error.get("ErrorMessage")}
            return InvokeResult(200, None, json.dumps(body).encode(), "Unhandled")
        return InvokeResult(200, None, json.dumps(out.result).encode())

    def is_plain(self, function_name: str) -> bool:
        """Whether ``function_name`` is served as a plain (non-durable) function."""
        return self.runtime.is_plain(function_name)

    def outcome(self, arn: str) -> InvokeResult | None:
        """Return the RequestResponse answer of a finished execution; None while it runs."""
        desc = self.runtime.describe(arn)
        status = desc["Status"]
        if status not in TERMINAL_STATUSES:
            return None
        if status == "SUCCEEDED":
            result = desc.get("Result")
            return InvokeResult(200, arn, (result or "null").encode())
        err = desc.get("Error") or {}
        body = {
            "errorType": err.get("ErrorType") or f"Execution.{status.title().replace('_', '')}",
            "errorMessage": err.get("ErrorMessage") or f"Execution {status}",
        }
        if err.get("StackTrace"):
            body["stackTrace"] = err["StackTrace"]
        return InvokeResult(200, arn, json.dumps(body).encode(), "Unhandled")

    @property
    def control(self) -> ControlPlane:
        """The control plane the API's control operations go to (this service's runtime)."""
        return self.runtime

    def checkpoint(
        self, arn: str, token: str, updates: Sequence[Mapping[str, Any]],
        client_token: str | None = None,
    ) -> CheckpointResult:
        """CheckpointDurableExecution, from a handler's SDK."""
        return self.runtime.engine.checkpoint(arn, token, updates, client_token)

    def get_state(
        self, arn: str, token: str, marker: str | None, max_items: int | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """GetDurableExecutionState, from a handler's SDK."""
        return self.runtime.engine.get_state(arn, token, marker, max_items)

    def notify(self) -> None:
        """Wake the driver: new work may be due (a callback, a stop, a checkpoint)."""
        self._wake.set()

    # ------------------------------------------------------------------ driver

    def start_driver(self) -> None:
        """Start the thread that runs invocations and timers."""
        if self._driver is not None:
            return
        self._stop.clear()
        self._driver = threading.Thread(target=self._drive, name="durable-ext-driver",
                                        daemon=True)
        self._driver.start()

    def _next_timer_delay(self) -> float:
        mine = set(self.runtime.functions())
        for entry in self.runtime.store.due(None, kinds=DueKind.ACTIVE, limit=64):
            if function_of(entry.arn) in mine:
                delay = float(entry.due_ms - int(self.runtime.clock.now_ms())) / 1000
                return max(0.0, min(delay, _IDLE_POLL))
        return _IDLE_POLL

    def _drive(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.runtime.run_until_idle(timeout=_IDLE_POLL)
                delay = self._next_timer_delay()
            except Exception as exc:  # keep serving; the error is kept for inspection
                self.driver_error = exc
                delay = _IDLE_POLL
            # A timer that is still due right after a pass belongs to work in flight
            # elsewhere; a short pause keeps the loop from spinning on it.
            self._wake.wait(max(delay, 0.002))

    def enable_codec(self, serdes: Any = None, *, types: Sequence[type] | None = None,
                     options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Turn on the codec server with the handlers' serdes (a spec string or a SerDes).

        It decodes and encodes with whatever keys and buckets ``serdes`` is given, for
        anyone who passes the server's guard: enable it on a server as private as those.
        """
        from durable_ext.http.codec import Codec
        from durable_ext.serializers.readable import Decoder

        self.codec = Codec(Decoder(serdes, types=types, options=options))
        if self.decoder is None:
            # Whoever may call the codec server can decode any payload already: the
            # decoded views of executions give away nothing more.
            self.decoder = self.codec.decoder

    def enable_decoded_views(self, serdes: Any = None, *,
                             types: Sequence[type] | None = None,
                             options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Let GetDurableExecution and its history answer decoded views, on request.

        A request with ``decoded=true`` (query) or ``X-Durable-Ext-Decoded: true`` gets
        ``Decoded...`` views beside the payloads, decoded with ``serdes`` (a spec string
        or a SerDes, with its keys and buckets); every other response stays as Lambda
        answers it. Anyone who passes the server's guard may ask: enable it on a server
        as private as those keys.
        """
        from durable_ext.serializers.readable import Decoder

        self.decoder = Decoder(serdes, types=types, options=options)

    def close(self) -> None:
        """Stop the driver, the workers and the runtime."""
        self._stop.set()
        self._wake.set()
        if self._driver is not None:
            self._driver.join(timeout=10)
            self._driver = None
        if self._pool is not None:
            self._pool.close()
        self.runtime.close()

    def __enter__(self) -> LocalService:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _payload_text(payload: bytes) -> str:
    """Return the Invoke payload as JSON text (empty means ``{}``), or the service's error."""
    try:
        text = payload.decode() if payload.strip() else "{}"
        json.loads(text)
    except ValueError:
        raise ApiError("InvalidRequestContentException",
                       "Could not parse request body into json") from None
    return text
