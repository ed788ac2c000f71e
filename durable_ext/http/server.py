"""Serving the app with uvicorn: in the foreground, or on a background thread."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from durable_ext._deps import require
from durable_ext.errors import ConfigError
from durable_ext.http.service import LocalService

if TYPE_CHECKING:
    from durable_ext.http.guard import GuardConfig

__all__ = ["BackgroundServer", "ServerThread", "check_bind", "serve"]



def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def check_bind(host: str, allow_remote: bool, *, signed: bool = False) -> str | None:
    """Refuse a non-loopback address unless asked for explicitly; the warning to print.

    Returns:
        A warning when a non-loopback address is allowed without SigV4 authentication
        (anyone who reaches it may then start, stop and read executions), else None.

    """
    if _is_loopback(host):
        return None
    if not allow_remote:
        raise ConfigError(
            f"refusing to bind {host!r} without --allow-remote: with no authentication "
            "(--auth sigv4), anyone who reaches it can start, stop and read executions; "
            "bind 127.0.0.1, or pass --allow-remote --auth sigv4 (docs/http-api.md)"
        )
    if not signed:
        return (f"warning: serving on {host!r} without --auth sigv4: anyone who can reach "
                "it can start, stop and read executions")
    return None


def _endpoint(host: str, port: int) -> str:
    """Where worker processes reach a server bound to ``host`` (wildcards: loopback)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{target}]:{port}" if ":" in target else f"http://{target}:{port}"


def _worker_credentials(guard: GuardConfig | None) -> tuple[str, str] | None:
    """Return the key workers sign checkpoints with: one the server verifies (or none)."""
    return guard.auth.worker_credentials if guard is not None and guard.auth is not None \
        else None


def _config(service: LocalService, host: str, port: int, log_level: str,
            wrap: Callable[[Any], Any] | None = None, guard: GuardConfig | None = None) -> Any:
    uvicorn = require("uvicorn", extra="serve")
    from durable_ext.http.app import create_app
    from durable_ext.http.guard import GuardConfig

    app = create_app(service, guard=guard or GuardConfig.build(bind=host))
    # A RequestResponse Invoke may be waiting for a long execution: do not let it hold
    # shutdown for longer than a few seconds.
    return uvicorn.Config(wrap(app) if wrap else app, host=host, port=port,
                          log_level=log_level, access_log=False, lifespan="off",
                          timeout_graceful_shutdown=5)


def serve(service: LocalService, host: str = "127.0.0.1", port: int = 9000, *,
          log_level: str = "warning", allow_remote: bool = False,
          guard: GuardConfig | None = None, wrap: Callable[[Any], Any] | None = None) -> None:
    """Serve ``service`` in the foreground until interrupted.

    ``guard`` (default: loopback names and ``host``, unsigned) says which hosts and
    origins are answered and whether requests must be signed; with SigV4, worker
    processes of functions registered before this call sign with its first key.
    ``wrap`` puts ASGI middleware in front of the API (the console beside it).
    """
    check_bind(host, allow_remote, signed=guard is not None and guard.auth is not None)
    uvicorn = require("uvicorn", extra="serve")
    service.set_endpoint(_endpoint(host, port), credentials=_worker_credentials(guard))
    service.start_driver()
    try:
        uvicorn.Server(_config(service, host, port, log_level, wrap, guard)).run()
    finally:
        service.close()


class BackgroundServer:
    """A uvicorn server on a background thread: started, waited for, stopped.

    Args:
        what: Says what it serves in the error when it does not start.
        thread_name: Name of the thread it runs on.

    """

    def __init__(self, what: str, thread_name: str) -> None:
        self._what = what
        self._thread_name = thread_name
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, config: Any, timeout: float = 10.0) -> int:
        """Serve ``config`` (a ``uvicorn.Config``); the port it listens on, once it does."""
        uvicorn = require("uvicorn", extra="serve")
        # uvicorn binds (port 0: the kernel picks a free port, no race) and we read the
        # port back. Handing it a pre-bound socket instead loses TCP_NODELAY on accepted
        # connections, which costs ~40 ms per request in delayed ACKs.
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=self._thread_name,
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._what} did not start on {config.host}:{config.port}")
            time.sleep(0.01)
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread (bounded)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class ServerThread:
    """The API on a background thread, on a free loopback port (tests, benchmarks, embedding).

    Args:
        service: What to serve; it is closed with the server.
        host: Loopback address to bind.
        port: 0 picks a free port.
        wrap: ASGI middleware to put in front of the API (an auth layer, a proxy).
        drive: Run the service's driver thread; False leaves invocations and timers to
            the caller (``service.runtime.run_until_idle()``), for deterministic tests.
        guard: Hosts, origins and SigV4 keys (default: loopback names, unsigned). With
            SigV4, worker processes of functions registered before :meth:`start` sign
            with its first key.

    Example:
        >>> with ServerThread(LocalService("memory://")) as srv:  # doctest: +SKIP
        ...     boto3.client("lambda", endpoint_url=srv.url)

    """

    def __init__(self, service: LocalService, host: str = "127.0.0.1", port: int = 0, *,
                 wrap: Callable[[Any], Any] | None = None, drive: bool = True,
                 guard: GuardConfig | None = None) -> None:
        check_bind(host, allow_remote=False)
        self.service = service
        self._wrap = wrap
        self._guard = guard
        self._drive = drive
        self.host = host
        self.port = port
        self._runner = BackgroundServer("the HTTP API", "durable-ext-http")

    @property
    def url(self) -> str:
        """The endpoint URL for boto3's ``endpoint_url``."""
        return _endpoint(self.host, self.port)

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Start serving; returns once the server accepts connections."""
        try:
            self.port = self._runner.start(_config(self.service, self.host, self.port,
                                                   "warning", self._wrap, self._guard), timeout)
        except RuntimeError:
            self.service.close()
            raise
        self.service.set_endpoint(self.url, credentials=_worker_credentials(self._guard))
        if self._drive:
            self.service.start_driver()
        return self

    def stop(self) -> None:
        """Stop serving, then close the service."""
        self._runner.stop()
        self.service.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
