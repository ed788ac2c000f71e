"""Ratios of bench_serdes.py runs before and after a change, side by side.

Each run is one pytest-benchmark JSON file. A ratio is computed within each run (never
across runs, whose absolute times move with the machine's load), then shown as its range
over the runs of each side, with the change of its mean::

    python benchmarks/compare.py --before b1.json b2.json --after a1.json a2.json

Per family and pipeline (``msgpack``, ``msgpack+zstd``): time vs the floor (lower is
better), the speed-up vs ``sdk-extended`` (higher is better), and the checkpoint string's
length (deterministic, so one value a side). A ratio that moved more than 5% the wrong
way is flagged.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

#: (family, serializer) -> (median seconds, checkpoint string length)
Run = dict[tuple[str, str], tuple[float, int]]

THRESHOLD = 0.05
PIPELINES = ("msgpack", "msgpack+zstd")


def load(path: str) -> Run:
    with open(path) as fh:
        data = json.load(fh)
    run: Run = {}
    for b in data["benchmarks"]:
        info = b["extra_info"]
        if "family" in info and "serializer" in info:
            run[info["family"], info["serializer"]] = (b["stats"]["median"], info["size"])
    return run


def _time(run: Run, family: str, serializer: str) -> float | None:
    row = run.get((family, serializer))
    return row[0] if row else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b is not None else None


def _range(values: list[float], unit: str = "x", fmt: str = ",.2f") -> str:
    lo, hi = f"{min(values):{fmt}}", f"{max(values):{fmt}}"
    return f"{lo}{unit}" if lo == hi else f"{lo}{unit}-{hi}{unit}"


def _row(
    name: str,
    f: Callable[[Run], float | None],
    before: list[Run],
    after: list[Run],
    higher_better: bool,
) -> str | None:
    b = [v for v in map(f, before) if v is not None]
    a = [v for v in map(f, after) if v is not None]
    if not b or not a:
        return None
    change = (sum(a) / len(a)) / (sum(b) / len(b))
    worse = change < 1 - THRESHOLD if higher_better else change > 1 + THRESHOLD
    flag = "worse by more than 5%" if worse else ""
    unit, fmt = ("", ",.0f") if name.endswith("chars") else ("x", ",.2f")
    return f"| {name} | {_range(b, unit, fmt)} | {_range(a, unit, fmt)} | {change:.3f} | {flag} |"


def report(before: list[Run], after: list[Run]) -> list[str]:
    """Markdown table lines comparing the ratios of ``before`` and ``after`` runs."""
    families = list(dict.fromkeys(fam for run in before + after for fam, _ in run))
    lines = [
        "| family / pipeline / ratio | before | after | change of the mean | |",
        "|---|---:|---:|---:|---|",
    ]
    for fam in families:
        for ser in PIPELINES:

            def vs_floor(r: Run, fam: str = fam, ser: str = ser) -> float | None:
                return _ratio(_time(r, fam, ser), _time(r, fam, "floor"))

            def speed_up(r: Run, fam: str = fam, ser: str = ser) -> float | None:
                return _ratio(_time(r, fam, "sdk-extended"), _time(r, fam, ser))

            def chars(r: Run, fam: str = fam, ser: str = ser) -> float | None:
                row = r.get((fam, ser))
                return float(row[1]) if row else None

            for name, f, higher_better in (
                ("time vs floor", vs_floor, False),
                ("speed-up vs sdk-extended", speed_up, True),
                ("chars", chars, False),
            ):
                line = _row(f"{fam} / {ser} / {name}", f, before, after, higher_better)
                if line:
                    lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", nargs="+", required=True, metavar="JSON")
    parser.add_argument("--after", nargs="+", required=True, metavar="JSON")
    args = parser.parse_args()
    print("\n".join(report([load(p) for p in args.before], [load(p) for p in args.after])))


if __name__ == "__main__":
    main()
