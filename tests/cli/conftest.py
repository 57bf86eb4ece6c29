"""The CLI tests' fixtures: a project folder, a database (SQLite and PostgreSQL) and a frozen clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.engine import Engine

import engine.cli.subscribers as subscribers_cli
from engine.cli import main
from engine.scheduler.clock import FrozenClock
from engine.store.tables import METADATA
from tests.support.project import minimal_project

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the minimal funnel's window: weekdays 08:00-11:00


@dataclass
class Cli:
    """Runs `funnel --project PROJECT ...` against one database."""

    project: Path
    db_url: str

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        """The result of one command; `env` adds FUNNEL_ variables."""
        return CliRunner().invoke(main, ["--project", str(self.project), *args], input=input,
                                  env={"FUNNEL_DATABASE_URL": self.db_url, **env})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The minimal funnel's project; the working folder is its parent, so files print as 'people.csv'."""
    monkeypatch.chdir(tmp_path)
    return minimal_project(tmp_path / "project")


@pytest.fixture
def cli(project: Path, db_url: str) -> Cli:
    """The CLI on the test's database (SQLite, then PostgreSQL)."""
    return Cli(project, db_url)


@pytest.fixture
def sqlite_cli(project: Path, tmp_path: Path) -> Cli:
    """The CLI on a SQLite file of its own, for behaviour that does not depend on the database."""
    return Cli(project, f"sqlite:///{tmp_path / 'funnel.db'}")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """The subscribers commands' clock, frozen at Monday 08:00 UTC."""
    frozen = FrozenClock(MONDAY)
    monkeypatch.setattr(subscribers_cli, "clock", frozen)
    return frozen


def write(path: Path, text: str) -> Path:
    """Write a test file (UTF-8, the lines as given)."""
    path.write_text(text, encoding="utf-8", newline="")
    return path


def table_rows(db_engine: Engine, table: str, **where: Any) -> list[dict[str, Any]]:
    """Every row of `table` (matching `where`), as dicts."""
    with db_engine.connect() as conn:
        found = METADATA.tables[table]
        statement = sa.select(found).where(*(found.c[k] == v for k, v in where.items()))
        return [dict(row) for row in conn.execute(statement).mappings()]
