"""Ratios of bench_serdes.py runs before and after a change, side by side.

Each run is one pytest-benchmark JSON file. A ratio is computed within each run (never
across runs, whose absolute times move with the machine's load), then shown as its range
over the runs of each side, with the change of its mean::

    python benchmarks/compare.py --before b1.json b2.json --after a1.json a2.json

One row per family and pipeline (``msgpack``, ``msgpack+zstd``): time vs the floor (lower
is better) and the speed-up vs ``sdk-extended`` (higher is better), each as the range over
a side's runs and the change of its mean, then the checkpoint string's length
(deterministic). A ratio whose mean moved more than 5% the wrong way is named in the last
column.
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


def _cell(f: Callable[[Run], float | None], runs: list[Run], fmt: str) -> tuple[str, float]:
    values = [v for v in map(f, runs) if v is not None]
    if not values:
        return "-", float("nan")
    lo, hi = f"{min(values):{fmt}}", f"{max(values):{fmt}}"
    return (lo if lo == hi else f"{lo}-{hi}"), sum(values) / len(values)


def report(before: list[Run], after: list[Run]) -> list[str]:
    """Markdown table lines, one per family and pipeline, of ``before`` and ``after`` runs."""
    families = list(dict.fromkeys(fam for run in before + after for fam, _ in run))
    lines = [
        "| family | pipeline | time vs floor, before | after | change "
        "| speed-up vs sdk-extended, before | after | change | chars before | chars after "
        "| worse by >5% |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for fam in families:
        for ser in PIPELINES:
            if not any((fam, ser) in r for r in before + after):
                continue

            def vs_floor(r: Run, fam: str = fam, ser: str = ser) -> float | None:
                return _ratio(_time(r, fam, ser), _time(r, fam, "floor"))

            def speed_up(r: Run, fam: str = fam, ser: str = ser) -> float | None:
                return _ratio(_time(r, fam, "sdk-extended"), _time(r, fam, ser))

            def chars(r: Run, fam: str = fam, ser: str = ser) -> float | None:
                row = r.get((fam, ser))
                return float(row[1]) if row else None

            cells: list[str] = []
            worse: list[str] = []
            for name, f, higher_better, fmt in (
                ("vs floor", vs_floor, False, ".2f"),
                ("speed-up", speed_up, True, ".1f"),
            ):
                (b, b_mean), (a, a_mean) = _cell(f, before, fmt), _cell(f, after, fmt)
                change = a_mean / b_mean
                if change < 1 - THRESHOLD if higher_better else change > 1 + THRESHOLD:
                    worse.append(name)
                cells += [f"{b}x", f"{a}x", f"{change:.2f}"]
            cells += [_cell(chars, before, ",.0f")[0], _cell(chars, after, ",.0f")[0]]
            lines.append(f"| {fam} | {ser} | {' | '.join(cells)} | {', '.join(worse)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", nargs="+", required=True, metavar="JSON")
    parser.add_argument("--after", nargs="+", required=True, metavar="JSON")
    args = parser.parse_args()
    print("\n".join(report([load(p) for p in args.before], [load(p) for p in args.after])))


if __name__ == "__main__":
    main()
