"""Print the ratio tables of bench_checkpoint.py and bench_runtime.py results.

Usage: python benchmarks/bench_runtime_report.py results.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:,.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.0f} us"


def checkpoint_table(rows: list[dict[str, Any]]) -> None:
    by: dict[int, dict[str, float]] = defaultdict(dict)
    for r in rows:
        by[r["extra_info"]["n"]][r["extra_info"]["store"]] = r["stats"]["median"]
    stores = ["memory", "file", "file-nofsync", "sdk-memory", "sdk-filesystem"]
    print(
        "| operations | " + " | ".join(stores) + " | sdk-filesystem / file-nofsync "
        "| sdk-filesystem / file | sdk-memory / memory |"
    )
    print("|---:|" + "---:|" * (len(stores) + 3))
    for n in sorted(by):
        t = by[n]
        cells = " | ".join(_fmt(t[s]) if s in t else "-" for s in stores)
        print(
            f"| {n:,} | {cells} | {t['sdk-filesystem'] / t['file-nofsync']:,.0f}x "
            f"| {t['sdk-filesystem'] / t['file']:,.0f}x | {t['sdk-memory'] / t['memory']:,.1f}x |"
        )
    first, last = min(by), max(by)
    for s in ("memory", "file", "file-nofsync"):
        print(f"\n{s}: {last:,} ops / {first:,} ops = {by[last][s] / by[first][s]:.2f}x", end="")
    print()


def suite_table(rows: list[dict[str, Any]], suite: str, base: str) -> None:
    t = {
        r["extra_info"]["side"]: r["stats"]["median"]
        for r in rows
        if r["extra_info"].get("suite") == suite
    }
    print(f"\n| {suite} | median | vs {base} |")
    print("|---|---:|---:|")
    for side, v in t.items():
        print(f"| {side} | {_fmt(v)} | {v / t[base]:.2f}x |")


def main(path: str) -> None:
    with open(path) as fh:
        data = json.load(fh)
    rows = data["benchmarks"]
    cp = [r for r in rows if r["extra_info"].get("suite") == "checkpoint"]
    if cp:
        checkpoint_table(cp)
    if any(r["extra_info"].get("suite") == "e2e-100" for r in rows):
        suite_table(rows, "e2e-100", "floor")
    if any(r["extra_info"].get("suite") == "waits-1000" for r in rows):
        suite_table(rows, "waits-1000", "testing-runner")


if __name__ == "__main__":
    main(sys.argv[1])
