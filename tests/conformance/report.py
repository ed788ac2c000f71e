"""Run the whole conformance suite on backends and print passed/total per category.

Usage (from the repository root)::

    python tests/conformance/report.py                       # memory:// and file://
    python tests/conformance/report.py --backend memory://   # one backend
    python tests/conformance/report.py --backend file:///tmp/conformance-store
    python tests/conformance/report.py --reference           # the testing SDK's runner

``file://`` alone gives every case a fresh store directory; ``file:///PATH`` shares one.
Prints a Markdown table (the one in README.md and docs/conformance.md) followed by every case
that did not pass, with the suite's first error for it.  Exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.cases import CATEGORIES, load_cases
from conformance.handlers import REGISTRY
from conformance.harness import CaseResult, DriverFactory, run_case, runtime_driver


def _run(
    label: str, make_driver: DriverFactory, only: set[str], *, in_process_only: bool = False
) -> list[CaseResult]:
    results = []
    started = time.monotonic()
    for case in load_cases():
        if only and case.case_id not in only and case.category not in only:
            continue
        if in_process_only and REGISTRY[case.case_id].isolation == "process":
            # The handler ends its process with os._exit: it would end this one.
            reason = "not run: crashes its process, and this runner invokes in-process"
            results.append(CaseResult(case.case_id, case.category, False, [reason]))
            continue
        results.append(run_case(case, make_driver, keep_history=False))
    elapsed = time.monotonic() - started
    print(
        f"{label}: {sum(r.passed for r in results)}/{len(results)} in {elapsed:.1f} s",
        file=sys.stderr,
    )
    return results


def _reason(result: CaseResult) -> str:
    first = result.errors[0] if result.errors else "no error reported"
    extra = len(result.errors) - 1
    return first + (f" (+{extra} more)" if extra > 0 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", action="append", help="store URL (repeatable)")
    parser.add_argument("--reference", action="store_true", help="also run on the testing SDK")
    parser.add_argument("cases", nargs="*", help="case ids or categories (default: all)")
    args = parser.parse_args(argv)
    # The SDK logs every failing step with a traceback; the table is the output here.
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger().setLevel(logging.CRITICAL)

    backends = args.backend or ([] if args.reference else ["memory://", "file://"])
    runs: dict[str, list[CaseResult]] = {}
    for url in backends:
        runs[url] = _run(url, runtime_driver(url), set(args.cases))
    if args.reference:
        from conformance.reference import reference_driver

        runs["testing SDK"] = _run(
            "testing SDK", reference_driver, set(args.cases), in_process_only=True
        )

    labels = list(runs)
    print("| category | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for category in (*CATEGORIES, "total"):
        cells = []
        for label in labels:
            results = [r for r in runs[label] if category in ("total", r.category)]
            passed = Counter(r.passed for r in results)[True]
            cells.append(f"{passed}/{len(results)}")
        if any(not c.endswith("/0") for c in cells):
            name = f"**{category}**" if category == "total" else category
            print(f"| {name} | " + " | ".join(cells) + " |")

    failed = False
    for label in labels:
        failures = [r for r in runs[label] if not r.passed]
        failed = failed or bool(failures)
        print(f"\nNot passing on {label}: {len(failures) or 'none'}")
        for result in failures:
            print(f"- {result.case_id}: {_reason(result)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
