"""``durable-ext s3``: clean up the objects the ``s3`` stage wrote for finished executions."""

from __future__ import annotations

import argparse
import json
from typing import Any

from durable_ext.serializers.s3 import DEFAULT_PREFIX, delete_execution_objects, lifecycle_rule

__all__ = ["register"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``s3 cleanup`` and ``s3 lifecycle-rule`` to the ``durable-ext`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "s3", help="clean up objects of the s3 offload stage"
    )
    sub = parser.add_subparsers(dest="s3_command", required=True)
    cleanup = sub.add_parser(
        "cleanup", help="delete every object written for one execution (safe to repeat)"
    )
    cleanup.add_argument("bucket")
    cleanup.add_argument("execution_arn")
    cleanup.add_argument("--prefix", default=DEFAULT_PREFIX)
    cleanup.add_argument("--endpoint-url", default=None, help="S3 endpoint (default: AWS)")
    cleanup.set_defaults(func=_cleanup)
    rule = sub.add_parser(
        "lifecycle-rule", help="print a bucket lifecycle rule that expires the objects"
    )
    rule.add_argument("--days", type=int, required=True)
    rule.add_argument("--prefix", default=DEFAULT_PREFIX)
    rule.set_defaults(func=_rule)
    return parser


def _cleanup(args: argparse.Namespace) -> int:
    from durable_ext._aws import make_client

    client = make_client("s3", endpoint_url=args.endpoint_url) if args.endpoint_url else None
    deleted = delete_execution_objects(
        args.bucket, args.execution_arn, prefix=args.prefix, client=client
    )
    print(f"deleted {deleted} object(s) under s3://{args.bucket}/{args.prefix}")
    return 0


def _rule(args: argparse.Namespace) -> int:
    print(json.dumps({"Rules": [lifecycle_rule(args.days, args.prefix)]}, indent=2))
    return 0
