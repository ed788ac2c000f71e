"""Running invocations in warm handler processes that talk to the server over HTTP.

:class:`RemoteHandler` is what the server registers with its :class:`Runtime` for a
function served with ``isolation="http"``: the runtime calls it like an in-process
handler, and it forwards the invocation (the plain Lambda event) to a worker process
from a :class:`WorkerPool`. The worker runs the real handler, whose SDK checkpoints
through the server's HTTP API with its own ``LambdaClient``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from typing import IO, Any

from durable_ext.errors import ConfigError
from durable_ext.http.sigv4 import ACCESS_KEY_ENV, SECRET_KEY_ENV
from durable_ext.runtime.handlers import HandlerRef

__all__ = ["IMPORT_PATH", "LAMBDA_KEY_ID", "LAMBDA_SECRET", "RemoteHandler", "WorkerPool"]

#: the environment variables that give workers the key they sign checkpoints with
LAMBDA_KEY_ID = "DURABLE_EXT_LAMBDA_ACCESS_KEY_ID"
LAMBDA_SECRET = "DURABLE_EXT_LAMBDA_SECRET_ACCESS_KEY"
#: where workers import handlers from: the server's import path, appended to theirs
IMPORT_PATH = "DURABLE_EXT_WORKER_PATH"


def _error_class(name: str) -> type[Exception]:
    # The runtime records ``type(exc).__name__`` as the ErrorType; the service names a
    # crashed or timed-out sandbox with dotted types, which no Python class name has.
    return type(name, (RuntimeError,), {"__module__": __name__})


RuntimeExitError = _error_class("Runtime.ExitError")
SandboxTimeoutError = _error_class("Sandbox.Timedout")


class _Worker:
    """One warm handler process and the pipes to it."""

    def __init__(self, env: dict[str, str]) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        self.proc = subprocess.Popen(
            # -P: the working directory is not put ahead of the standard library either.
            [sys.executable, "-P", "-m", "durable_ext.http.worker", str(to_child_r),
             str(from_child_w)],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._out: IO[str] = os.fdopen(to_child_w, "w", encoding="utf-8")
        self._in: IO[str] = os.fdopen(from_child_r, "r", encoding="utf-8")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send one request; the reply, or None when the process died or timed out."""
        try:
            self._out.write(json.dumps(request) + "\n")
            self._out.flush()
        except OSError:
            return None
        ready, _, _ = select.select([self._in], [], [], max(0.0, timeout))
        if not ready:
            return {"timeout": True}
        line = self._in.readline()
        if not line:
            return None
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        for stream in (self._out, self._in):
            with contextlib.suppress(OSError):
                stream.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class WorkerPool:
    """Warm handler processes whose SDK talks to ``endpoint_url`` (the server).

    Args:
        endpoint_url: The server's URL, given to workers as ``AWS_ENDPOINT_URL_LAMBDA``.
        region: Region for the workers' boto3 clients.
        size: At most this many processes run invocations at once.
        timeout: Seconds an invocation may run before its process is killed.

    """

    def __init__(self, endpoint_url: str, *, region: str = "us-east-1", size: int = 4,
                 timeout: float = 900.0, credentials: tuple[str, str] | None = None) -> None:
        if size < 1:
            raise ConfigError(f"worker pool size must be at least 1, got {size}")
        self.endpoint_url = endpoint_url
        self.timeout = timeout
        self._env = self._environment(endpoint_url, region, credentials)
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def _environment(endpoint_url: str, region: str,
                     credentials: tuple[str, str] | None) -> dict[str, str]:
        # The server's own API keys are not the handlers' to read.
        env = {k: v for k, v in os.environ.items() if k not in (ACCESS_KEY_ENV, SECRET_KEY_ENV)}
        env["AWS_ENDPOINT_URL_LAMBDA"] = endpoint_url
        env.setdefault("AWS_DEFAULT_REGION", region)
        if credentials is not None:
            # For the SDK's Lambda client only (see durable_ext.http.worker): the
            # handler's own AWS calls keep the credentials they would have anyway.
            env[LAMBDA_KEY_ID], env[LAMBDA_SECRET] = credentials
        # botocore signs every request; the local server does not check signatures, so
        # placeholder credentials spare workers a credential lookup.
        if "AWS_ACCESS_KEY_ID" not in env and "AWS_PROFILE" not in env:
            env["AWS_ACCESS_KEY_ID"] = "local"
            env["AWS_SECRET_ACCESS_KEY"] = "local"
        # Workers import handlers by module path, from wherever the server can import them;
        # the worker appends these to its path (PYTHONPATH would put them ahead of the
        # standard library).
        paths = [p for p in sys.path if p]
        env[IMPORT_PATH] = os.pathsep.join(dict.fromkeys([os.getcwd(), *paths]))
        return env

    def _checkout(self) -> _Worker:
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                worker = _Worker(self._env)
                with self._lock:
                    self._all.append(worker)
                return worker
            if worker.alive():
                return worker
            self._discard(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.close()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)

    def invoke(self, handler: HandlerRef, event: dict[str, Any],
               context: dict[str, Any]) -> dict[str, Any]:
        """Run one invocation of ``handler`` on ``event``; its output.

        Raises:
            Exception: the handler's error (its ErrorType as the class name), or
                ``Runtime.ExitError`` / ``Sandbox.Timedout`` when the process died or
                ran out of time.

        """
        if self._closed:
            raise ConfigError("the worker pool is closed")
        with self._slots:
            worker = self._checkout()
            started = time.monotonic()
            reply = worker.call({"handler": handler.target, "root": handler.root,
                                 "event": event, "context": context}, self.timeout)
            if reply is None or reply.get("timeout"):
                code: int | None = None
                if reply is None:
                    # EOF on the pipe can arrive before the exit status: reap it first.
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        code = worker.proc.wait(5)
                self._discard(worker)
                if reply is not None:
                    raise SandboxTimeoutError(
                        f"Task timed out after {time.monotonic() - started:.2f} seconds")
                how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                raise RuntimeExitError(f"Error: Runtime exited with {how}")
            self._idle.put(worker)
        if "error" in reply:
            err = reply["error"]
            kind = _error_class(str(err.get("ErrorType") or "Exception"))
            raise kind(err.get("ErrorMessage", ""))
        output: dict[str, Any] = reply["output"]
        return output

    def close(self) -> None:
        """Stop every worker process."""
        self._closed = True
        with self._lock:
            workers, self._all = list(self._all), []
        for worker in workers:
            worker.close()


class RemoteHandler:
    """A handler the runtime calls in-process that runs the real one in a worker.

    Args:
        pool: Where invocations run.
        ref: The real handler.

    """

    def __init__(self, pool: WorkerPool, ref: HandlerRef) -> None:
        self.pool = pool
        self.ref = ref
        self.path = ref.target

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        """Run one invocation in a worker; the handler's output."""
        # The runtime hands over the SDK's input object; the worker gets the plain
        # Lambda event, exactly what the service would send.
        wire = event.to_json_dict() if hasattr(event, "to_json_dict") else dict(event)
        ctx = asdict(context) if hasattr(context, "__dataclass_fields__") else {}
        return self.pool.invoke(self.ref, dict(wire), ctx)

    def __repr__(self) -> str:
        return f"RemoteHandler({self.path!r})"
