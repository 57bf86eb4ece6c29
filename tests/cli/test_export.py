"""`funnel subscribers export`: streamed CSV that `subscribers import` reads back unchanged."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from engine.scheduler.clock import FrozenClock
from engine.store import queries, reports
from tests.cli.conftest import MONDAY, Cli, table_rows, write

PEOPLE = """\
email,name,locale,timezone,source,utm_source,utm_campaign,answer.level,plan,city
ann@example.com,"Lee, Ann",de,Europe/Budapest,landing,google,spring,new,pro,"Szeged
(south)"
bob@example.com,Bob,en,America/New_York,,,,,,
carl@example.com,Carl Ünal,pt-BR,UTC,partner,,,,basic,Lisbon
dora@example.com,Dora,en,UTC,,,,,,
"""


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_an_export_imports_back_into_a_new_database_unchanged(
        cli: Cli, db_engine: Engine, clock: FrozenClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "people.csv", PEOPLE)
    assert cli("subscribers", "import", "people.csv", "--funnel", "minimal").exit_code == 0
    with db_engine.begin() as conn:
        dora = queries.find_subscriber(conn, "dora@example.com")
        assert dora is not None
        queries.set_subscriber_status(conn, dora["id"], "unsubscribed", MONDAY)
    monkeypatch.setattr(reports, "STREAM_BATCH", 2)  # several pages on SQLite, several batches on PostgreSQL
    result = cli("subscribers", "export")
    assert result.exit_code == 0, result.output
    rows = parse(result.stdout)
    assert list(rows[0]) == ["email", "name", "first_name", "last_name", "locale", "timezone", "status",
                             "source", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                             "created_at", "field.city", "field.plan"]
    assert [r["email"] for r in rows] == ["ann@example.com", "bob@example.com", "carl@example.com",
                                          "dora@example.com"]
    assert rows[0] | {"created_at": ""} == {
        "email": "ann@example.com", "name": "Lee, Ann", "first_name": "", "last_name": "", "locale": "de",
        "timezone": "Europe/Budapest",
        "status": "active", "source": "landing", "utm_source": "google", "utm_medium": "",
        "utm_campaign": "spring", "utm_term": "", "utm_content": "", "created_at": "",
        "field.city": "Szeged\n(south)", "field.plan": "pro"}
    assert rows[0]["created_at"] == "2026-03-02T08:00:00Z"

    write(tmp_path / "export.csv", result.stdout)
    fresh = Cli(cli.project, f"sqlite:///{tmp_path / 'fresh.db'}")
    imported = fresh("subscribers", "import", "export.csv", "--funnel", "minimal")
    assert imported.stderr == ("not imported: the columns created_at (written by export); to keep one as a "
                               "custom field, name it field.<name>\n")
    assert imported.stdout == "3 added, 0 already in the funnel, 1 suppressed, 0 bad rows\n"
    again = parse(fresh("subscribers", "export").stdout)
    assert [r | {"created_at": ""} for r in again] == [r | {"created_at": ""} for r in rows[:3]]


def test_a_funnel_export_adds_the_position_and_writes_a_file(
        cli: Cli, clock: FrozenClock, tmp_path: Path) -> None:
    write(tmp_path / "people.csv", "email\nann@example.com\n")
    assert cli("subscribers", "import", "people.csv", "--funnel", "minimal").exit_code == 0
    result = cli("subscribers", "export", "--funnel", "minimal", "--out", "out.csv")
    assert result.stdout == "wrote 1 subscriber to out.csv\n"
    rows = parse((tmp_path / "out.csv").read_text(encoding="utf-8"))
    assert [(r["email"], r["stage"], r["segment"], r["step"]) for r in rows] == [
        ("ann@example.com", "confirming", "", "")]
    reimported = cli("subscribers", "import", "out.csv", "--funnel", "minimal")
    assert reimported.stdout == "0 added, 1 already in the funnel, 0 suppressed, 0 bad rows\n"
    assert "created_at, stage, segment, step" in reimported.stderr


def test_exporting_an_unknown_funnel_says_which_exist(cli: Cli, db_engine: Engine) -> None:
    result = cli("subscribers", "export", "--funnel", "minimum")
    assert (result.exit_code, result.stderr) == (1, "no funnel named 'minimum'; did you mean 'minimal'?\n")
    assert table_rows(db_engine, "subscriber") == []
