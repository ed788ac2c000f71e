"""A real headless Chromium (Debian's /usr/bin/chromium) driven through Playwright.

The browser is started once per session with a fresh profile; every test gets its own
page with bounded waits. Without chromium the tests are skipped, saying so
(``scripts/test`` installs it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from chromium import ARGS, CHROMIUM, WAIT_MS


@pytest.fixture(scope="session")
def browser_context() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; scripts/test does)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is in the test extra")
    profile = tempfile.mkdtemp(prefix="durable-ext-chromium-")
    try:
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                timeout=60_000, viewport={"width": 1400, "height": 900})
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    page = browser_context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.set_default_navigation_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"),
                                      dialog.dismiss()))
    yield page
    page.close()
    assert errors == [], errors  # no script error, and nothing a payload made pop up

