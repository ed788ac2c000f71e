"""Print the ratio table of a pytest-benchmark JSON file of bench_serdes.py.

Usage: python benchmarks/report.py serdes.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    with open(path) as fh:
        data = json.load(fh)
    rows: dict[str, dict[str, tuple[float, int]]] = defaultdict(dict)
    for b in data["benchmarks"]:
        info = b["extra_info"]
        if "family" not in info or "serializer" not in info:
            continue  # another suite's benchmark in the same JSON file
        rows[info["family"]][info["serializer"]] = (b["stats"]["median"], info["size"])
    print(
        "| payload | serializer | round trip (median) | size (chars) | time vs floor "
        "| speed-up vs sdk-extended | size vs sdk-extended |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for family, sers in rows.items():
        floor_t = sers["floor"][0]
        ext_t, ext_size = sers["sdk-extended"]
        for name, (t, size) in sers.items():
            print(
                f"| {family} | {name} | {t * 1e6:,.1f} us | {size:,} | {t / floor_t:.2f}x "
                f"| {ext_t / t:.1f}x | {size / ext_size:.3f}x |"
            )


if __name__ == "__main__":
    main(sys.argv[1])
