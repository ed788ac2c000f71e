"""Hostile payloads, and a child-process runner that decodes one and reports how it went.

Each builder returns a checkpoint string an attacker could put in a checkpoint or a callback
result. ``run_case`` decodes it in a fresh interpreter (a crash is an exit code there, not a
dead test run) and returns the outcome, the error text and the child's peak resident memory.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass

import msgpack
import zstandard

from durable_ext.serializers.frames import armor, frame

MiB = 1 << 20


def msgpack_frame(body: bytes, layout: int = 2, wire: bytes = b"m") -> str:
    """A bare msgpack (or, with ``wire=b"M"``, model) frame, armored."""
    return armor(frame(wire, layout, body))


def nested_ext(code: int, levels: int, inner: bytes = b"\x90") -> bytes:
    """``levels`` extension types of ``code``, each holding the next (the ext-in-ext crash)."""
    body = inner
    for _ in range(levels):
        body = msgpack.packb(msgpack.ExtType(code, body))
    return body


def nested_objects(levels: int, tag: str = "Box", code: int = 11) -> bytes:
    """Registered-object extensions ``[tag, [inner]]`` nested ``levels`` deep."""
    obj: object = []
    for _ in range(levels):
        obj = msgpack.ExtType(code, msgpack.packb([tag, [obj]]))
    return msgpack.packb(obj)


def fat_nested_ext(levels: int, size: int) -> bytes:
    """Extension types nested ``levels`` deep around ``size`` bytes: each level copies it."""
    body = msgpack.packb(b"\x00" * size)
    for _ in range(levels):
        body = msgpack.packb(msgpack.ExtType(1, body))
    return body


def empty_containers(n: int, byte: int = 0x80) -> bytes:
    """One array of ``n`` empty maps (0x80) or arrays (0x90): 1 byte each, ~60 in Python."""
    return b"\xdd" + n.to_bytes(4, "big") + bytes([byte]) * n


def zstd_frame(body: bytes, *, sized: bool = True) -> bytes:
    if sized:
        return frame(b"z", 1, zstandard.ZstdCompressor(level=19).compress(body))
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=19, write_content_size=False).stream_writer(
        out, closefd=False
    ) as w:
        w.write(body)
    return frame(b"z", 1, out.getvalue())


def zlib_frame(body: bytes) -> bytes:
    return frame(b"l", 1, zlib.compress(body, 9))


def zeros_bomb(n: int) -> bytes:
    """A msgpack bin of ``n`` zero bytes (compresses to almost nothing)."""
    return frame(b"m", 2, b"\xc6" + n.to_bytes(4, "big") + b"\x00" * n)


def compressed_zeros(codec: str, n: int) -> str:
    """:func:`zeros_bomb` behind a ``zstd``/``zstd-unsized``/``zlib`` frame, made in chunks."""
    head = frame(b"m", 2, b"\xc6" + n.to_bytes(4, "big"))
    chunk = bytes(1 << 20)
    if codec == "zlib":
        z = zlib.compressobj(9)
        parts = [z.compress(head)] + [z.compress(chunk) for _ in range(n >> 20)] + [z.flush()]
        return armor(frame(b"l", 1, b"".join(parts)))
    out = io.BytesIO()
    cctx = zstandard.ZstdCompressor(level=3, write_content_size=codec == "zstd")
    size = len(head) + n if codec == "zstd" else -1
    with cctx.stream_writer(out, size=size, closefd=False) as w:
        w.write(head)
        for _ in range(n >> 20):
            w.write(chunk)
    return armor(frame(b"z", 1, out.getvalue()))


def deep_json(levels: int) -> str:
    return "[" * levels + "]" * levels


def bracket_json(n: int) -> str:
    return "[" + ",".join(["[]"] * n) + "]"


@dataclass
class Outcome:
    returncode: int
    result: str  # "ok", or the exception's class name
    message: str
    peak_mib: float


CHILD = textwrap.dedent(
    """
    import json, sys
    from aws_durable_execution_sdk_python.serdes import SerDesContext
    import durable_ext
    spec, options, limits, payload = json.loads(sys.stdin.read())
    serdes = durable_ext.serdes(spec, options=options, limits=limits, types=SETUP(spec))
    try:
        serdes.deserialize(payload, SerDesContext("op-hostile", "arn:hostile"))
        out = ["ok", ""]
    except BaseException as exc:
        out = [type(exc).__name__, str(exc)[:2000]]
    # VmHWM, not ru_maxrss: the latter keeps the parent's peak across exec
    with open("/proc/self/status") as f:
        peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
    print(json.dumps(out + [peak]))
    """
)

SETUP_TYPES = textwrap.dedent(
    """
    def SETUP(spec):
        import dataclasses
        @dataclasses.dataclass
        class Box:
            items: list
        if spec.startswith("json"):
            return None
        if not spec.startswith("model"):
            return [Box]
        from durable_ext.serializers.model_format import ModelRegistry
        import pydantic
        class Crate(pydantic.BaseModel):
            items: list
        return ModelRegistry([Box, Crate])
    """
)


def run_case(
    payload: str,
    spec: str = "msgpack",
    *,
    options: dict[str, dict[str, object]] | None = None,
    limits: dict[str, int] | None = None,
    timeout: float = 120,
) -> Outcome:
    """Decode ``payload`` with ``serdes(spec)`` in a child process."""
    proc = subprocess.run(
        [sys.executable, "-c", SETUP_TYPES + CHILD],
        input=json.dumps([spec, options or {}, limits, payload]),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return Outcome(proc.returncode, "crash", proc.stderr[-2000:], 0.0)
    result, message, peak = json.loads(proc.stdout.strip().splitlines()[-1])
    return Outcome(0, result, message, peak)


# -- fuzzing strategies (used in a child process by tests/unit/test_decode_limits.py) ------


def hostile_payloads():  # type: ignore[no-untyped-def]
    """A hypothesis strategy of armored payloads: random ext/array/map nests behind codecs."""
    from hypothesis import strategies as st

    leaves = st.one_of(
        st.just(msgpack.packb(None)),
        st.binary(max_size=8).map(msgpack.packb),
        st.just(b"\x80"),
        st.just(b"\x90"),
    )
    ext_codes = st.sampled_from([1, 2, 3, 11, 12, 13, 15, 64])

    @st.composite
    def bodies(draw):  # type: ignore[no-untyped-def]
        body = draw(leaves)
        for _ in range(draw(st.integers(0, 60))):
            kind = draw(st.sampled_from(["ext", "array", "map", "tagged"]))
            if kind == "ext":
                body = msgpack.packb(msgpack.ExtType(draw(ext_codes), body))
            elif kind == "array":
                body = b"\x92" + body + body[: draw(st.integers(0, len(body)))] + b"\xc0"
            elif kind == "map":
                body = b"\x81\xa1k" + body
            else:
                body = msgpack.packb(msgpack.ExtType(11, b"\x92\xa3Box" + body))
        return body

    @st.composite
    def payloads(draw):  # type: ignore[no-untyped-def]
        wire = draw(st.sampled_from([b"m", b"M"]))
        data = frame(wire, draw(st.integers(1, 3)), draw(bodies()))
        for _ in range(draw(st.integers(0, 3))):
            codec = draw(st.sampled_from(["zlib", "zstd", "zstd-unsized"]))
            data = zlib_frame(data) if codec == "zlib" else zstd_frame(data, sized=codec == "zstd")
        return armor(data)

    return payloads()
