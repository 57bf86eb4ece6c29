"""`funnel subscribers forget`: nothing about the person is left but a hash that keeps them off the list."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.scheduler.clock import FrozenClock
from engine.store.db import make_engine
from engine.store.rows import email_hash
from engine.store.tables import METADATA, TAG
from tests.cli.conftest import MONDAY, Cli, table_rows, write
from tests.scheduler.harness import Harness

ADDRESS = "Ann.Lee@Example.com"


def _everything(db_engine: Engine) -> str:
    """Every row of every table, as one text to search."""
    with db_engine.connect() as conn:
        return "\n".join(repr(dict(row)) for table in METADATA.sorted_tables
                         for row in conn.execute(sa.select(table)).mappings())


def _holders(db_engine: Engine, subscriber_id: int) -> list[str]:
    """The tables with a row pointing at the subscriber."""
    found = []
    with db_engine.connect() as conn:
        for table in METADATA.sorted_tables:
            column = table.c.get("subscriber_id") if table.name != "subscriber" else table.c.id
            if column is not None and conn.execute(sa.select(column).where(column == subscriber_id)).first():
                found.append(table.name)
    return found


def test_forget_erases_every_row_and_keeps_the_address_out(
        cli: Cli, db_url: str, db_engine: Engine, project: Path, clock: FrozenClock, tmp_path: Path) -> None:
    write(tmp_path / "people.csv", f"email,name,answer.level,city\n{ADDRESS},Ann Lee,new,Szeged\n"
                                   "bob@example.com,Bob,,\n")
    assert cli("subscribers", "import", "people.csv", "--funnel", "minimal").exit_code == 0
    harness = Harness(db_url, project, MONDAY)
    try:
        harness.tick()  # deliveries for both
        harness.event(ADDRESS, "purchase", product="course", external_id="order-1")
    finally:
        harness.close()
    ann = table_rows(db_engine, "subscriber", email_key=ADDRESS.lower())[0]
    with db_engine.begin() as conn:
        conn.execute(TAG.insert().values(subscriber_id=ann["id"], name="vip", at=MONDAY))
    assert set(_holders(db_engine, ann["id"])) == {"subscriber", "consent", "tag", "enrollment", "milestone",
                                                   "event", "delivery"}

    declined = cli("subscribers", "forget", ADDRESS.lower(), input="n\n")
    assert declined.exit_code == 1
    assert ("Erase ann.lee@example.com (1 subscriber, 1 consent record, 1 tag, 1 enrollment, "
            "4 funnel stage records, 3 events, 1 delivery)? This cannot be undone") in declined.stdout
    assert _holders(db_engine, ann["id"])

    result = cli("subscribers", "forget", ADDRESS.lower(), "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == ("forgot Ann.Lee@example.com: erased 1 subscriber, 1 consent record, 1 tag, "
                             "1 enrollment, 4 funnel stage records, 3 events, 1 delivery; kept only a hash "
                             "of the address, so that it is never mailed or imported again\n")
    assert _holders(db_engine, ann["id"]) == []
    everything = _everything(db_engine).lower()
    assert "ann.lee" not in everything and "szeged" not in everything and "order-1" not in everything
    assert [(s["email_hash"], s["reason"]) for s in table_rows(db_engine, "suppression")] == [
        (email_hash(ADDRESS), "forgotten")]
    assert [s["email"] for s in table_rows(db_engine, "subscriber")] == ["bob@example.com"]

    again = cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert again.stdout == "0 added, 1 already in the funnel, 1 suppressed, 0 bad rows\n"
    assert "ann.lee" not in _everything(db_engine).lower()
    assert cli("subscribers", "forget", ADDRESS, "--yes").stdout == (
        f"'{ADDRESS}' was already forgotten on 2026-03-02; only a hash of it is kept\n")
    shown = cli("subscribers", "show", ADDRESS)
    assert (shown.exit_code, shown.stderr) == (
        1, f"no subscriber with the address '{ADDRESS}'; it was forgotten on 2026-03-02, "
           "and only a hash of it is kept\n")


def test_forgetting_an_unknown_address_writes_nothing(sqlite_cli: Cli, tmp_path: Path) -> None:
    result = sqlite_cli("subscribers", "forget", "nobody@example.com", "--yes")
    assert (result.exit_code, result.stderr) == (
        1, "no subscriber with the address 'nobody@example.com'; nothing to forget "
           "(check the spelling; case does not matter)\n")
    db_engine = make_engine(sqlite_cli.db_url)
    try:
        assert table_rows(db_engine, "suppression") == []
    finally:
        db_engine.dispose()


def test_the_foreign_keys_cascade_on_their_own(cli: Cli, db_url: str, db_engine: Engine, project: Path,
                                               clock: FrozenClock, tmp_path: Path) -> None:
    """Deleting the subscriber row alone takes every child row with it (SQLite: foreign_keys=ON)."""
    write(tmp_path / "people.csv", f"email,answer.level\n{ADDRESS},new\n")
    assert cli("subscribers", "import", "people.csv", "--funnel", "minimal").exit_code == 0
    harness = Harness(db_url, project, MONDAY)
    try:
        harness.tick()
    finally:
        harness.close()
    ann = table_rows(db_engine, "subscriber")[0]
    assert len(_holders(db_engine, ann["id"])) == 6  # all but tag
    with db_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM subscriber WHERE id = :id"), {"id": ann["id"]})
    assert _holders(db_engine, ann["id"]) == []
