"""``durable-ext decode``: a checkpoint payload as readable JSON, with the handler's serdes."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from durable_ext.errors import ConfigError
from durable_ext.serializers.readable import Decoder

__all__ = ["add_decoder_options", "decoder_from_args", "load_object", "register"]

#: the most a payload read from stdin may be (a checkpoint is at most 256 KiB; S3 pointers
#: and exported payloads stay far below this)
MAX_STDIN_CHARS = 8 << 20


def add_decoder_options(p: argparse.ArgumentParser) -> None:
    """Add ``--serdes`` and ``--types``: how payloads are decoded for display."""
    p.add_argument("--serdes", default=None, metavar="SPEC",
                   help="decode payloads with this serializer spec, keys and buckets included "
                        "(e.g. msgpack+zstd+kms:alias/orders+s3://bucket)")
    p.add_argument("--types", default=None, metavar="MODULE:ATTR",
                   help="a list of classes (or a SerDes) to decode objects with; other "
                        "objects are shown by type tag and fields")


def decoder_from_args(args: argparse.Namespace, *, default: bool = False) -> Decoder | None:
    """Return the decoder ``--serdes``/``--types`` ask for (the default one if ``default``)."""
    spec, target = getattr(args, "serdes", None), getattr(args, "types", None)
    if spec is None and target is None and not default:
        return None
    if target is None:
        return Decoder(spec)
    found = load_object(target)
    if isinstance(found, (list, tuple)):
        return Decoder(spec, types=list(found))
    if spec is not None:
        raise ConfigError(f"--types {target} is a SerDes: give it without --serdes")
    return Decoder(found)


def load_object(target: str) -> Any:
    """Return the object ``MODULE:ATTR`` names (``ConfigError`` when it cannot be loaded)."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"expected MODULE:ATTR, got {target!r}")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {target!r}: {exc}") from None
    return obj


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``decode`` to the ``durable-ext`` parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "decode", help="show a checkpoint payload as readable JSON")
    p.add_argument("payload", nargs="?", default="-",
                   help="the payload string, or - to read it from stdin (the default)")
    p.add_argument("--execution-arn", default="", help="the execution it belongs to "
                   "(encrypted payloads are bound to it)")
    p.add_argument("--operation-id", default="", help="the operation it belongs to")
    add_decoder_options(p)
    p.set_defaults(func=_decode)
    return p


def _decode(args: argparse.Namespace) -> int:
    if args.payload == "-":
        text = sys.stdin.read(MAX_STDIN_CHARS + 1)
        if len(text) > MAX_STDIN_CHARS:
            raise ConfigError(f"stdin holds more than {MAX_STDIN_CHARS} characters: "
                              "not a checkpoint payload")
        text = text.rstrip("\n")
    else:
        text = args.payload
    decoder = decoder_from_args(args, default=True)
    assert decoder is not None
    view = decoder.payload(text, operation_id=args.operation_id,
                           execution_arn=args.execution_arn)
    print(json.dumps(view, indent=2, ensure_ascii=False))
    return 0 if view is not None and "Value" in view else 1
