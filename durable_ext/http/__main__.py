"""``python -m durable_ext.http serve ...``: the same as ``durable-ext serve``."""

from __future__ import annotations

import argparse
import sys

from durable_ext.errors import ConfigError, NotFoundError


def main(argv: list[str] | None = None) -> int:
    """Parse ``serve`` arguments and run the server; the exit code."""
    from durable_ext.cli import UsageError
    from durable_ext.http.cli import register

    parser = argparse.ArgumentParser(prog="python -m durable_ext.http")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (UsageError, ConfigError, NotFoundError) as exc:
        print(f"durable-ext: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
