"""First and last names through the CLI, on SQLite and PostgreSQL: CSV columns in, `show` and `export` out."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sqlalchemy.engine import Engine

from engine.scheduler.clock import FrozenClock
from tests.cli.conftest import Cli, table_rows, write

PEOPLE = """\
email,name,first_name,last_name,locale
dora@example.com,Kiss Dóra,Dóra,Kiss,hu
kiss@example.com,Kiss Dóra,,,hu
ann@example.com,Ann,,,en
bo@example.com,,Bo, Bo Jr ,en
"""


def test_csv_first_and_last_name_columns_are_stored_shown_and_exported(
        cli: Cli, db_engine: Engine, clock: FrozenClock, tmp_path: Path) -> None:
    write(tmp_path / "people.csv", PEOPLE)
    result = cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert result.exit_code == 0, result.output
    assert result.stdout == "4 added, 0 already in the funnel, 0 suppressed, 0 bad rows\n"
    stored = {r["email"]: (r["first_name"], r["last_name"], r["fields"])
              for r in table_rows(db_engine, "subscriber")}
    assert stored == {"dora@example.com": ("Dóra", "Kiss", {}), "kiss@example.com": (None, None, {}),
                      "ann@example.com": (None, None, {}), "bo@example.com": ("Bo", "Bo Jr", {})}

    def second_line(address: str) -> str:
        return cli("subscribers", "show", address).stdout.splitlines()[2]

    assert second_line("dora@example.com") == "  first name Dóra; last name Kiss"
    assert second_line("kiss@example.com") == "  first name in emails none (templates write their fallback)"
    assert second_line("ann@example.com") == "  first name in emails 'Ann', from the name"
    shown = json.loads(cli("subscribers", "show", "kiss@example.com", "--json").stdout)["subscriber"]
    assert (shown["first_name"], shown["last_name"], shown["first_name_in_emails"]) == (None, None, "")

    exported = list(csv.DictReader(io.StringIO(cli("subscribers", "export").stdout)))
    assert [(r["email"], r["first_name"], r["last_name"]) for r in exported] == [
        ("dora@example.com", "Dóra", "Kiss"), ("kiss@example.com", "", ""), ("ann@example.com", "", ""),
        ("bo@example.com", "Bo", "Bo Jr")]
    # A re-import with a first name fills it in for a known subscriber.
    write(tmp_path / "again.csv", "email,first_name\nkiss@example.com,Dóra\n")
    assert cli("subscribers", "import", "again.csv", "--funnel", "minimal").exit_code == 0
    assert table_rows(db_engine, "subscriber", email_key="kiss@example.com")[0]["first_name"] == "Dóra"


def test_a_first_name_too_long_for_its_column_is_a_bad_row_and_the_rest_are_kept(
        cli: Cli, db_engine: Engine, clock: FrozenClock, tmp_path: Path) -> None:
    write(tmp_path / "people.csv", f"email,first_name\nann@example.com,Ann\nbo@example.com,{'B' * 101}\n")
    result = cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert "people.csv:3: first_name is 101 characters long; at most 100 fit, shorten it" in result.output
    assert [r["email"] for r in table_rows(db_engine, "subscriber")] == ["ann@example.com"]
