"""Serving the app with uvicorn: in the foreground, or on a background thread."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from durable_ext._deps import require
from durable_ext.errors import ConfigError
from durable_ext.http.service import LocalService

__all__ = ["ServerThread", "check_bind", "serve"]


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback address unless asked for explicitly (the API has no auth)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not allow_remote:
        raise ConfigError(
            f"refusing to bind {host!r}: the API has no authentication; bind 127.0.0.1 and "
            "put an authenticating proxy in front (docs/http-api.md), or pass --allow-remote"
        )


def _config(service: LocalService, host: str, port: int, log_level: str,
            wrap: Callable[[Any], Any] | None = None) -> Any:
    uvicorn = require("uvicorn", extra="serve")
    from durable_ext.http.app import create_app

    app = create_app(service)
    # A RequestResponse Invoke may be waiting for a long execution: do not let it hold
    # shutdown for longer than a few seconds.
    return uvicorn.Config(wrap(app) if wrap else app, host=host, port=port,
                          log_level=log_level, access_log=False, lifespan="off",
                          timeout_graceful_shutdown=5)


def serve(service: LocalService, host: str = "127.0.0.1", port: int = 9000, *,
          log_level: str = "warning", allow_remote: bool = False) -> None:
    """Serve ``service`` in the foreground until interrupted."""
    check_bind(host, allow_remote)
    uvicorn = require("uvicorn", extra="serve")
    service.set_endpoint(f"http://{host if host != '0.0.0.0' else '127.0.0.1'}:{port}")
    service.start_driver()
    try:
        uvicorn.Server(_config(service, host, port, log_level)).run()
    finally:
        service.close()


class ServerThread:
    """The API on a background thread, on a free loopback port (tests, benchmarks, embedding).

    Args:
        service: What to serve; it is closed with the server.
        host: Loopback address to bind.
        port: 0 picks a free port.
        wrap: ASGI middleware to put in front of the API (an auth layer, a proxy).
        drive: Run the service's driver thread; False leaves invocations and timers to
            the caller (``service.runtime.run_until_idle()``), for deterministic tests.

    Example:
        >>> with ServerThread(LocalService("memory://")) as srv:  # doctest: +SKIP
        ...     boto3.client("lambda", endpoint_url=srv.url)

    """

    def __init__(self, service: LocalService, host: str = "127.0.0.1", port: int = 0, *,
                 wrap: Callable[[Any], Any] | None = None, drive: bool = True) -> None:
        check_bind(host, allow_remote=False)
        self.service = service
        self._wrap = wrap
        self._drive = drive
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint URL for boto3's ``endpoint_url``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Start serving; returns once the server accepts connections."""
        uvicorn = require("uvicorn", extra="serve")
        # uvicorn binds (port 0: the kernel picks a free port, no race) and we read the
        # port back. Handing it a pre-bound socket instead loses TCP_NODELAY on accepted
        # connections, which costs ~40 ms per request in delayed ACKs.
        self._server = uvicorn.Server(_config(self.service, self.host, self.port, "warning",
                                                self._wrap))
        self._thread = threading.Thread(target=self._server.run, name="durable-ext-http",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the HTTP API did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        self.service.set_endpoint(self.url)
        if self._drive:
            self.service.start_driver()
        return self

    def stop(self) -> None:
        """Stop serving, then close the service."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.service.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
