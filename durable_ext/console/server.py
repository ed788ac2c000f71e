"""Serving the console: on its own (foreground or a background thread), or beside the API.

Whichever way, requests pass the HTTP API's :class:`~durable_ext.http.guard.RequestGuard`
first (Host, cross-site refusal, body limits), configured as ``durable-ext serve`` is.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from durable_ext._deps import require
from durable_ext.console.app import ConsoleSettings, create_console_app
from durable_ext.http.guard import GuardConfig, RequestGuard
from durable_ext.http.server import BackgroundServer

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from durable_ext.runtime.control import ControlPlane

__all__ = ["ConsoleServer", "beside", "guarded_console"]


def guarded_console(plane: ControlPlane, settings: ConsoleSettings,
                    guard: GuardConfig | None = None) -> ASGIApp:
    """Return the console behind the API's guards (default: loopback names only)."""
    return RequestGuard(create_console_app(plane, settings), guard or GuardConfig())


def beside(api: ASGIApp, console: ASGIApp, prefix: str) -> ASGIApp:
    """Serve ``console`` under ``prefix`` and everything else from ``api``."""

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == prefix or path.startswith(prefix + "/"):
            await console(scope, receive, send)
        else:
            await api(scope, receive, send)

    return dispatch


class ConsoleServer:
    """The console on a background thread, on a loopback port (tests, benchmarks, embedding).

    Args:
        app: The (guarded) console.
        host: Loopback address to bind.
        port: 0 picks a free port.

    Example:
        >>> with ConsoleServer(app) as server:  # doctest: +SKIP
        ...     print(server.url)

    """

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner = BackgroundServer("the console", "durable-ext-console")

    @property
    def url(self) -> str:
        """The console's address."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ConsoleServer:
        """Start serving; returns once the server accepts connections."""
        uvicorn = require("uvicorn", extra="console")
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self.port = self._runner.start(config, timeout)
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._runner.stop()

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
