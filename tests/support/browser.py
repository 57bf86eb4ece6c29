"""Debian's chromium, headless, driven by Playwright (sync API): never a downloaded browser.

Without chromium or Playwright the browser tests skip, unless FUNNEL_REQUIRE_BROWSER=1
(set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the skip below says what to install
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
REQUIRED = os.environ.get("FUNNEL_REQUIRE_BROWSER") == "1"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


def _missing() -> str | None:
    if sync_playwright is None:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not CHROMIUM.is_file():
        return f"no browser at {CHROMIUM} (apt-get install chromium)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless chromium (a playwright Browser); skips or fails when there is none."""
    missing = _missing()
    if missing:
        if REQUIRED:
            pytest.fail(f"FUNNEL_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()
