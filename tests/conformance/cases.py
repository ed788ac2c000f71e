"""The official suite's YAML cases, loaded from the installed package."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SUITE = "aws_durable_execution_conformance_tests"

# The suite's directory names, in its own numbering order (1-x ... 10-x).
CATEGORIES = (
    "step",
    "wait",
    "child",
    "callback",
    "invoke",
    "wait_for_condition",
    "wait_for_callback",
    "parallel",
    "map",
    "plugin",
)


@dataclass(frozen=True)
class Case:
    """One requirement file of the suite."""

    case_id: str
    category: str
    path: Path
    data: dict[str, Any]

    @property
    def description(self) -> str:
        return str(self.data.get("description", ""))

    @property
    def is_async(self) -> bool:
        # validate.py reads only AsyncInvoke; the legacy ``async`` key is documentation.
        return bool(self.data.get("AsyncInvoke", False))

    @property
    def sort_key(self) -> tuple[int, int]:
        major, minor = self.case_id.split("-")
        return int(major), int(minor)


def suite_root() -> Path:
    """Directory of the installed suite's ``test_requirements``."""
    spec = importlib.util.find_spec(SUITE)
    if spec is None or spec.origin is None:
        msg = (
            f"{SUITE} is not installed; install it with `pip install --no-deps "
            "--ignore-requires-python aws-durable-execution-conformance-tests`"
        )
        raise ImportError(msg)
    return Path(spec.origin).parent / "test_requirements"


@cache
def load_cases() -> tuple[Case, ...]:
    """Every case of the suite, in suite order."""
    root = suite_root()
    cases = []
    for category in CATEGORIES:
        for path in (root / category).glob("*.yaml"):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            cases.append(Case(case_id=path.stem, category=category, path=path, data=data))
    unknown = {p.parent.name for p in root.glob("*/*.yaml")} - set(CATEGORIES)
    if unknown:
        msg = f"suite has categories this harness does not know: {sorted(unknown)}"
        raise ValueError(msg)
    return tuple(sorted(cases, key=lambda c: c.sort_key))
