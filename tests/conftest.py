"""Test-wide settings: hypothesis profiles, and the databases of the storage contract suite.

Hypothesis profiles:
- default (a developer's run): 300 random examples per property;
- ci (CI=true): the same number, derandomized, so that a run cannot turn red by chance;
  a failure found locally is pinned with @example instead;
- deep (HYPOTHESIS_PROFILE=deep): 3,000 examples, for hunting bugs before a release.

`db_url` / `db_engine` run a test once on SQLite and once on PostgreSQL
(tests/support/databases.py says when PostgreSQL tests skip and when they fail).

The suite runs on every core with `pytest -n auto` (pytest-xdist): each worker builds its own
PostgreSQL template and databases (named after PYTEST_XDIST_WORKER) and drops its template at
its own session's end; servers listen on port 0, files go to tmp_path. The ci profile keeps
no example database (derandomize), so workers share no hypothesis files either.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import Engine

from engine.store.db import make_engine
from tests.support.databases import database, drop_template
from tests.support.order import waiting_first

settings.register_profile("default", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.register_profile("deep", parent=settings.get_profile("default"), max_examples=3000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database, once on SQLite and once on PostgreSQL: the contract suite."""
    with database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine on `db_url`, disposed afterwards."""
    db_engine = make_engine(db_url)
    yield db_engine
    db_engine.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `-n auto`, each worker starts on its share of the tests that mostly wait (support/order.py)."""
    items[:] = waiting_first(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the PostgreSQL template database this process made (under xdist: each worker its own)."""
    drop_template()
