"""Checkpoint string sizes of the text families, and the checkpoint-limit case.

Prints a Markdown table: characters of ``msgpack``, ``msgpack+zstd``, the SDK's
``JsonSerDes`` and ``ExtendedTypeSerDes`` per text family (the SDK measures checkpoint
strings by their length), msgpack / min(sdk-json, sdk-extended), the armor each pipeline
chose, and the bytes ``msgpack`` and ``sdk-json`` take in a request body (botocore writes
JSON with ``ensure_ascii``: six bytes for every character past ASCII). Then runs a
handler whose child context returns ``text_prose_250k`` through ``msgpack`` on a memory
runtime and reports what the SDK checkpointed: the result itself, or an empty payload with
``ReplayChildren`` (a result over the SDK's 256 KiB checkpoint limit is rebuilt by running
the children again).

The payloads are imported from this file's directory by path, so the same families can be
measured against another checkout of durable_ext on ``PYTHONPATH``::

    python benchmarks/text_sizes.py
    PYTHONPATH=/path/to/other/checkout python benchmarks/text_sizes.py
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python.constants import CHECKPOINT_SIZE_LIMIT_BYTES
from aws_durable_execution_sdk_python.serdes import ExtendedTypeSerDes, JsonSerDes, SerDesContext

import durable_ext

_spec = importlib.util.spec_from_file_location("payloads", Path(__file__).with_name("payloads.py"))
assert _spec is not None and _spec.loader is not None
payloads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(payloads)

CTX = SerDesContext("op", "arn")
LIMIT_CASE = "text_prose_250k"


def _armor(text: str) -> str:
    # the first characters of frames.py's text and base64 armors
    if text[:1] == "\xc1":
        return "text"
    if text[:1] == "w":
        return "base64"
    return "json"


def _wire(text: str) -> int:
    """Bytes of ``text`` in a botocore JSON request body (``json.dumps``, ASCII-only)."""
    return len(json.dumps(text)) - 2


def size_table() -> None:
    sides: dict[str, Any] = {
        "msgpack": durable_ext.serdes("msgpack"),
        "msgpack+zstd": durable_ext.serdes("msgpack+zstd"),
        "sdk-json": JsonSerDes(),
        "sdk-extended": ExtendedTypeSerDes(),
    }
    print(
        "| payload | UTF-8 bytes | msgpack | msgpack+zstd | sdk-json | sdk-extended "
        "| msgpack / min(sdk) | msgpack+zstd / min(sdk) | armor (msgpack, +zstd) "
        "| request bytes msgpack / sdk-json |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for family, make in payloads.TEXT_FAMILIES.items():
        value = make()
        out = {name: s.serialize(value, CTX) for name, s in sides.items()}
        for name, s in sides.items():
            assert s.deserialize(out[name], CTX) == value, (family, name)
        n = {name: len(text) for name, text in out.items()}
        sdk = min(n["sdk-json"], n["sdk-extended"])
        print(
            f"| {family} | {len(value.encode()):,} | {n['msgpack']:,} | {n['msgpack+zstd']:,} "
            f"| {n['sdk-json']:,} | {n['sdk-extended']:,} | {n['msgpack'] / sdk:.3f}x "
            f"| {n['msgpack+zstd'] / sdk:.3f}x "
            f"| {_armor(out['msgpack'])}, {_armor(out['msgpack+zstd'])} "
            f"| {_wire(out['msgpack']):,} / {_wire(out['sdk-json']):,} "
            f"= {_wire(out['msgpack']) / _wire(out['sdk-json']):.3f}x |"
        )


def limit_case() -> None:
    """Checkpoint a 250 KB text child-context result through msgpack on a memory runtime."""
    from aws_durable_execution_sdk_python import DurableContext, durable_execution
    from aws_durable_execution_sdk_python.config import ChildConfig

    from durable_ext.runtime import Runtime, VirtualClock

    text = payloads.TEXT_FAMILIES[LIMIT_CASE]()
    pipeline = durable_ext.serdes("msgpack")

    @durable_execution
    def handler(event: dict[str, Any], ctx: DurableContext) -> int:
        out = ctx.run_in_child_context(
            lambda _child: text, name="render", config=ChildConfig(serdes=pipeline)
        )
        return len(out)

    with Runtime(backend="memory://", clock=VirtualClock()) as rt:
        rt.register("limit", handler)
        arn = rt.start("limit", {})
        rt.run_until_idle()
        status = rt.describe(arn)["Status"]
        ops = rt.engine.store.operations(arn)
    records = ops.values() if isinstance(ops, dict) else ops
    (context,) = [r.data for r in records if r.data.get("Type") == "CONTEXT"]
    details = context.get("ContextDetails") or {}
    stored = details.get("Result") or ""
    print(
        f"\n{LIMIT_CASE}: {len(text):,} characters, {len(text.encode()):,} UTF-8 bytes; "
        f"sdk-json {len(JsonSerDes().serialize(text, CTX)):,} characters "
        f"(limit {CHECKPOINT_SIZE_LIMIT_BYTES:,}); "
        f"msgpack {len(pipeline.serialize(text, CTX)):,} characters"
    )
    print(
        f"child context checkpointed through msgpack: execution {status}, "
        f"ReplayChildren={bool(details.get('ReplayChildren'))}, "
        f"stored result {len(stored):,} characters"
    )


if __name__ == "__main__":
    print(f"durable_ext from {Path(durable_ext.__file__).parent}", file=sys.stderr)
    size_table()
    limit_case()
