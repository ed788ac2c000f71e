"""Where the browser is and how tests use it (shared by conftest and the tests)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("DURABLE_EXT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 15_000
"""Longest any one wait in a browser test takes (page loads, expectations)."""
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"


def screenshot(page: Any, name: str) -> Path:
    """Take a screenshot; into docs/console/NAME.png with ``DURABLE_EXT_SCREENSHOTS=1``.

    Otherwise it goes to a temporary directory, so a test run leaves the committed
    pictures alone.
    """
    shots = DOCS if os.environ.get("DURABLE_EXT_SCREENSHOTS") == "1" else \
        Path(tempfile.gettempdir()) / "durable-ext-console-shots"
    shots.mkdir(parents=True, exist_ok=True)
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 1000  # a picture, not an empty file
    return path
