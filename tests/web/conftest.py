"""A served daemon per test: the real web app over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.scheduler.harness import Harness
from tests.support.browser import chromium
from tests.support.project import minimal_project
from tests.web.served import serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, inside minimal's weekday 08:00-11:00 window
API_KEY = "test-api-key"


@dataclass
class Site:
    """A daemon that ticks when told, and an HTTP client on its web app."""

    harness: Harness
    http: httpx.Client

    @property
    def api(self) -> dict[str, str]:
        """Headers that carry the API key."""
        return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Site]:
    """The minimal funnel (double opt-in), served for real."""
    harness = Harness(db_url, minimal_project(tmp_path / "project"), START, api_key=API_KEY,
                      webhook_key=API_KEY)
    try:
        with serve(harness) as http:
            yield Site(harness, http)
    finally:
        harness.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless chromium for a browser test module's tests (skipped without it: tests/support/browser.py)."""
    with chromium() as launched:
        yield launched
