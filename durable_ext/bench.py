"""``durable-ext bench``: compare serializer specs on your own payload.

Loads one sample value (a JSON file, a pickle file, or a Python expression), runs it
through the SDK's default serializer and through each spec, and prints per spec the
checkpoint size, the time to serialize and to deserialize, their ratios to the SDK's
default, whether the value comes back equal, and whether it fits one checkpoint::

    durable-ext bench orders.json
    durable-ext bench --expr "[{'id': uuid.uuid4(), 'at': datetime.datetime.now()}] * 500"
    durable-ext bench sample.pkl --spec msgpack --spec "msgpack+zstd:9" --json

A pickle file runs code from that file when it is loaded: only load your own.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import decimal
import json
import math
import pickle
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from aws_durable_execution_sdk_python.constants import CHECKPOINT_SIZE_LIMIT_BYTES
from aws_durable_execution_sdk_python.serdes import (
    ExtendedTypeSerDes,
    JsonSerDes,
    SerDes,
    SerDesContext,
)

from durable_ext.errors import ConfigError, DurableExtError

__all__ = [
    "DEFAULT_SPECS",
    "BenchResult",
    "load_sample",
    "main",
    "measure",
    "print_table",
    "register",
    "run",
    "run_bench",
]

#: specs compared when none are given; those whose library is missing are skipped
DEFAULT_SPECS = ("json", "json+zlib", "msgpack", "msgpack+zlib", "msgpack+zstd")
#: the SDK's own serializers, named as in benchmarks/bench_serdes.py
SDK_DEFAULT = "sdk-extended"
SDK_JSON = "sdk-json"
_CTX = SerDesContext(operation_id="bench-operation", durable_execution_arn="arn:bench:execution")
# modules an --expr may use without importing them
_EXPR_GLOBALS: dict[str, Any] = {
    "datetime": datetime, "decimal": decimal, "uuid": uuid, "Decimal": decimal.Decimal,
    "UUID": uuid.UUID, "math": math,
}
EXIT_OK, EXIT_SPEC_FAILED, EXIT_USAGE = 0, 1, 2


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BenchResult:
    """One row: a spec measured on the sample (``error`` set when it could not run)."""

    spec: str
    size: int | None = None
    serialize_s: float | None = None
    deserialize_s: float | None = None
    round_trip: bool | None = None
    error: str | None = None

    @property
    def fits(self) -> bool | None:
        """Whether the checkpoint string fits the SDK's 256 KiB checkpoint limit."""
        return None if self.size is None else self.size <= CHECKPOINT_SIZE_LIMIT_BYTES

    @property
    def total_s(self) -> float | None:
        """Serialize plus deserialize time, per operation."""
        if self.serialize_s is None or self.deserialize_s is None:
            return None
        return self.serialize_s + self.deserialize_s


# -- the sample -------------------------------------------------------------------------


def load_sample(path: str | None = None, *, expr: str | None = None,
                kind: str | None = None) -> Any:
    """Return the sample value from a file (JSON or pickle) or a Python expression.

    Args:
        path: A ``.json`` file, or a ``.pkl``/``.pickle`` file (or any file with
            ``kind``). ``-`` reads JSON from standard input.
        expr: A Python expression; ``datetime``, ``decimal``, ``uuid``, ``math``,
            ``Decimal`` and ``UUID`` are in scope.
        kind: ``"json"`` or ``"pickle"``, overriding the file extension.

    Raises:
        ConfigError: Neither or both sources given, the file is missing or unreadable,
            or the expression fails; the message says which and where.

    """
    if (path is None) == (expr is None):
        raise ConfigError("give exactly one sample: a JSON or pickle file, or --expr EXPRESSION")
    if expr is not None:
        try:
            return eval(expr, dict(_EXPR_GLOBALS))  # the user's own expression, on purpose
        except Exception as exc:
            raise ConfigError(f"--expr failed: {type(exc).__name__}: {exc}") from exc
    assert path is not None
    if kind is None:
        kind = "pickle" if Path(path).suffix.lower() in {".pkl", ".pickle"} else "json"
    if kind not in {"json", "pickle"}:
        raise ConfigError(f"--as must be 'json' or 'pickle', got {kind!r}")
    try:
        if path == "-":
            return json.load(sys.stdin)
        if kind == "pickle":
            with open(path, "rb") as fh:
                return pickle.load(fh)  # the user's own file, named on purpose
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"sample file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg} "
            "(use --as pickle for a pickle file)"
        ) from None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise ConfigError(f"{path}: cannot load the {kind} sample: {exc}") from exc


# -- measuring --------------------------------------------------------------------------


def _per_call(func: Callable[[], object], budget_s: float, max_calls: int) -> float:
    """Median seconds per call, timed in batches long enough for the clock's resolution."""
    start = time.perf_counter()
    func()  # warm up: caches, lazy imports, first allocation
    once = max(time.perf_counter() - start, 1e-9)
    batch = max(1, min(max_calls, int(0.002 / once)))
    samples: list[float] = []
    calls = 0
    deadline = time.perf_counter() + budget_s
    # bounded both ways: at least three batches, at most max_calls calls or the budget
    while len(samples) < 3 or (calls < max_calls and time.perf_counter() < deadline):
        t0 = time.perf_counter()
        for _ in range(batch):
            func()
        samples.append((time.perf_counter() - t0) / batch)
        calls += batch
        if len(samples) >= 1000:
            break
    return statistics.median(samples)


def _build(spec: str) -> SerDes[Any]:
    if spec == SDK_DEFAULT:
        return ExtendedTypeSerDes()  # type: ignore[no-untyped-call]
    if spec == SDK_JSON:
        return JsonSerDes()
    from durable_ext.serializers.pipeline import build_pipeline

    return build_pipeline(spec)


def measure(
    value: Any, spec: str, *, budget_s: float = 0.2, max_calls: int = 100_000
) -> BenchResult:
    """Measure one spec on ``value``; failures become a row with ``error`` set.

    ``spec`` is a pipeline spec, or ``"sdk-extended"`` (``ExtendedTypeSerDes``, the
    SDK's default) / ``"sdk-json"`` (``JsonSerDes``) for the SDK's own serializers.
    """
    try:
        serdes = _build(spec)
    except (DurableExtError, ImportError, ValueError) as exc:
        return BenchResult(spec=spec, error=f"cannot build: {exc}")
    try:
        text = serdes.serialize(value, _CTX)
    except Exception as exc:  # a format that cannot carry this value is a result, not a crash
        return BenchResult(spec=spec, error=f"cannot serialize this value: {_short(exc)}")
    if not isinstance(text, str):
        return BenchResult(spec=spec, error=f"serialize returned {type(text).__name__}, not str")
    try:
        back = serdes.deserialize(text, _CTX)
    except Exception as exc:
        return BenchResult(spec=spec, size=len(text), error=f"cannot read back: {_short(exc)}")
    try:
        same = bool(back == value)
    except Exception:  # values whose == raises (e.g. arrays) count as not comparable
        same = False
    return BenchResult(
        spec=spec,
        size=len(text),
        serialize_s=_per_call(lambda: serdes.serialize(value, _CTX), budget_s, max_calls),
        deserialize_s=_per_call(lambda: serdes.deserialize(text, _CTX), budget_s, max_calls),
        round_trip=same,
    )


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 160 else text[:157] + "..."


def _is_plain_json(value: Any) -> bool:
    try:
        return bool(json.loads(json.dumps(value)) == value)
    except (TypeError, ValueError):
        return False


def _available(spec: str) -> bool:
    from durable_ext.registry import SERIALIZERS
    from durable_ext.spec import parse_pipeline

    try:
        for stage in parse_pipeline(spec).stages:
            SERIALIZERS.load(stage.name)
    except ImportError:
        return False
    return True


def run_bench(value: Any, specs: Sequence[str] | None = None, *, budget_s: float = 0.2,
              max_calls: int = 100_000) -> tuple[list[BenchResult], list[str]]:
    """Measure the SDK's serializers and ``specs`` on ``value``.

    Returns the rows (the SDK's default first, the baseline of every ratio) and notes
    on default specs skipped because their library is not installed.
    """
    notes: list[str] = []
    if specs:
        chosen = list(dict.fromkeys(specs))
    else:
        chosen = []
        for spec in DEFAULT_SPECS:
            if _available(spec):
                chosen.append(spec)
            else:
                notes.append(f"skipped {spec!r}: its library is not installed")
    baselines = [SDK_DEFAULT] + ([SDK_JSON] if _is_plain_json(value) else [])
    chosen = [s for s in chosen if s not in baselines]
    rows = [measure(value, s, budget_s=budget_s, max_calls=max_calls) for s in baselines + chosen]
    return rows, notes


# -- output -----------------------------------------------------------------------------


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 10_000:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if n < 10 * 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def _table_rows(rows: list[BenchResult]) -> tuple[list[list[str]], list[str]]:
    base = rows[0]
    out: list[list[str]] = []
    footnotes: list[str] = []
    for r in rows:
        if r.error is not None:
            footnotes.append(f"{r.spec}: {r.error}")
            out.append([r.spec, _size(r.size), "-", "-", "-", "-", "-", "-",
                        f"failed [{len(footnotes)}]"])
            continue
        out.append([
            r.spec,
            _size(r.size),
            _ratio(r.size, base.size),
            _time(r.serialize_s),
            _time(r.deserialize_s),
            _ratio(r.total_s, base.total_s),
            "yes" if r.round_trip else "no",
            "yes" if r.fits else "no",
            "",
        ])
    return out, footnotes


_HEADERS = ["spec", "size", "size ratio", "serialize", "deserialize", "time ratio",
            "equal back", "fits", "note"]


def print_table(rows: list[BenchResult], notes: list[str], out: TextIO, *, title: str) -> None:
    """Print ``rows`` as a rich table (plain text when rich is not installed)."""
    body, footnotes = _table_rows(rows)
    headers = _HEADERS if footnotes else _HEADERS[:-1]
    body = [line[: len(headers)] for line in body]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title, file=out)
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
        for line in [headers, *body]:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)), file=out)
    else:
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            table.add_column(h, justify="right" if 0 < i < 6 else "left", no_wrap=True)
        for line in body:
            table.add_row(*line)
        # a pipe or file gets the whole table; a terminal gets rich's own fitting
        width = None if out.isatty() else max(200, shutil.get_terminal_size((200, 24)).columns)
        Console(file=out, width=width, highlight=False).print(table)
    for i, text in enumerate(footnotes, 1):
        print(f"[{i}] {text}", file=out)
    if any(r.fits is False for r in rows):
        print("fits: whether it fits one 256 KiB checkpoint; a larger payload needs a spec "
              "ending in an offload (e.g. +s3://bucket/prefix)", file=out)
    for note in notes:
        print(f"note: {note}", file=out)
    print(f"ratios are to the SDK's default serializer ({SDK_DEFAULT}); lower is better",
          file=out)


def _as_json(rows: list[BenchResult], notes: list[str]) -> str:
    base = rows[0]
    items = []
    for r in rows:
        item = dataclasses.asdict(r)
        item["fits_checkpoint"] = r.fits
        item["size_ratio"] = r.size / base.size if r.size and base.size else None
        item["time_ratio"] = r.total_s / base.total_s if r.total_s and base.total_s else None
        items.append(item)
    return json.dumps({"baseline": base.spec, "results": items, "notes": notes}, indent=2)


# -- command line -----------------------------------------------------------------------


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sample", nargs="?", help="a JSON file (or - for stdin) or a pickle file")
    parser.add_argument("--expr", help="a Python expression to use as the sample instead")
    parser.add_argument("--as", dest="kind", choices=["json", "pickle"],
                        help="how to read SAMPLE (default: by extension; .pkl/.pickle = pickle)")
    parser.add_argument("--spec", action="append", dest="specs", metavar="SPEC",
                        help=f"a serializer spec to compare; repeat it (default: "
                             f"{', '.join(DEFAULT_SPECS)})")
    parser.add_argument("--budget", type=float, default=0.2, metavar="SECONDS",
                        help="time spent measuring each direction of each spec (default 0.2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to the ``durable-ext`` parser's subparsers.

    The subcommand sets ``func`` to :func:`run`; call ``args.func(args)`` for the
    exit code.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="compare serializer specs on your own sample payload",
        description=(__doc__ or "").split("\n\n")[1],
    )
    _configure(parser)
    return parser


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the subcommand for parsed ``args``; return the exit code.

    0: every spec ran; 1: a requested spec could not run on the sample (its row says
    why); 2: bad usage or an unreadable sample.
    """
    out = out or sys.stdout
    if args.budget <= 0 or not math.isfinite(args.budget):
        print(f"durable-ext bench: error: --budget must be > 0 seconds, got {args.budget}",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        value = load_sample(args.sample, expr=args.expr, kind=args.kind)
    except ConfigError as exc:
        print(f"durable-ext bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rows, notes = run_bench(value, args.specs, budget_s=args.budget)
    if args.json:
        print(_as_json(rows, notes), file=out)
    else:
        source = args.sample if args.sample is not None else "--expr"
        print_table(rows, notes, out, title=f"serializers on {source} ({type(value).__name__})")
    return EXIT_SPEC_FAILED if any(r.error for r in rows[1:]) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``durable-ext bench`` with ``argv`` (default: ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(prog="durable-ext bench",
                                     description=(__doc__ or "").split("\n\n")[1])
    _configure(parser)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
