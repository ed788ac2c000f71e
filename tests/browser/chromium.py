"""Where the browser is and how tests use it (shared by conftest and the tests)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("DURABLE_EXT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 15_000
"""Longest any one wait in a browser test takes (page loads, expectations)."""
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def screenshot(page: Any, name: str) -> None:
    """Save the page for the docs (docs/console/NAME.png)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)
