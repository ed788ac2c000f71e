"""Raw HTTP against the API for the security and fuzz tests: any Host, any bytes, any framing.

boto3 and httpx normalise what they send; these helpers send exactly what a browser, an
attacker or a broken client would. This module holds no tests.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

HOST = "127.0.0.1"
TIMEOUT = 20.0


@dataclass
class Answer:
    """A response: status, lower-case headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def segment(value: str) -> str:
    """Percent-encode one path segment as botocore does (``/`` and ``:`` too)."""
    return quote(value, safe="")


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> Answer:
    """One request on a fresh connection; ``Host`` defaults to 127.0.0.1:port."""
    conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        sent.setdefault("host", f"{HOST}:{port}")
        if body is not None:
            sent.setdefault("content-length", str(len(body)))
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        res = conn.getresponse()
        return Answer(res.status, {k.lower(): v for k, v in res.getheaders()}, res.read())
    finally:
        conn.close()


def assert_error(answer: Answer, status: int, code: str) -> dict[str, Any]:
    """The API's error format: the code in the header and the body, a message."""
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.headers.get("x-amzn-errortype") == code, answer.headers
    body: dict[str, Any] = answer.json()
    assert body["__type"] == code
    assert body["Type"] == ("Service" if status >= 500 else "User")
    assert isinstance(body["message"], str) and body["message"]
    return body


def head_of(raw: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers of a raw HTTP/1.1 response."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def send_until_answered(port: int, head: bytes, pieces: list[bytes]) -> tuple[bytes, int]:
    """Send ``head`` then ``pieces`` one by one; stop once an answer starts arriving.

    Returns what was received and how many body bytes had been sent by then. The last
    piece is sent only after waiting (bounded) for an answer: a server that needs the
    whole body before it answers gives none, and the wait ends empty-handed.
    """
    sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
    sent = 0
    try:
        sock.sendall(head)
        for i, piece in enumerate(pieces):
            wait = TIMEOUT if i == len(pieces) - 1 else 0.0
            ready, _, _ = select.select([sock], [], [], wait)
            if ready:
                break
            try:
                sock.sendall(piece)
            except OSError:  # the server closed after answering; the answer is readable
                break
            sent += len(piece)
        else:
            select.select([sock], [], [], TIMEOUT)
        received = b""
        sock.settimeout(TIMEOUT)
        while b"\r\n\r\n" not in received:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            received += chunk
        return received, sent
    finally:
        sock.close()
