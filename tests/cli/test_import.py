"""`funnel subscribers import`: good rows kept, bad rows named by line, nothing doubled on a re-import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from engine.scheduler.clock import FrozenClock
from engine.store import queries
from engine.subscribers import importing
from tests.cli.conftest import MONDAY, Cli, table_rows, write
from tests.scheduler.harness import Harness

PEOPLE = """\
email,name,timezone,answer.level,utm_source,magnet,city
ann@example.com,Ann Lee,Europe/Budapest,new,google,guide,Budapest
 Bob@Example.COM ,Bob,,pro,,,
carl@example.com,,,,,,Paris
"""


def test_import_enrolls_people_as_confirmed_and_a_reimport_changes_nothing(
        cli: Cli, db_engine: Engine, clock: FrozenClock, tmp_path: Path) -> None:
    people = write(tmp_path / "people.csv", PEOPLE)
    result = cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert result.exit_code == 0, result.output
    assert result.stdout == "3 added, 0 already in the funnel, 0 suppressed, 0 bad rows\n"
    ann = table_rows(db_engine, "subscriber", email_key="ann@example.com")[0]
    assert (ann["name"], ann["timezone"], ann["utm_source"], ann["fields"]) == (
        "Ann Lee", "Europe/Budapest", "google", {"city": "Budapest"})
    bob = table_rows(db_engine, "subscriber", email_key="bob@example.com")[0]
    assert bob["email"] == "Bob@example.com"  # spaces stripped, the domain lowercased
    consent = table_rows(db_engine, "consent")
    assert {(c["kind"], c["form"], c["funnel"]) for c in consent} == {("import", "people.csv", "minimal")}
    events = [(e["subscriber_id"], e["type"], e["question"], e["answer"])
              for e in table_rows(db_engine, "event")]
    carl = table_rows(db_engine, "subscriber", email_key="carl@example.com")[0]
    assert sorted(events) == sorted([
        (ann["id"], "confirmed", None, None), (ann["id"], "answer", "level", "new"),
        (bob["id"], "confirmed", None, None), (bob["id"], "answer", "level", "pro"),
        (carl["id"], "confirmed", None, None)])
    # The stats changes of the import are folded as it goes: none left for a read to add up.
    assert table_rows(db_engine, "tally") == []
    answered = [t for t in table_rows(db_engine, "tally_total") if t["kind"] == "answer"]
    assert sorted((t["k1"], t["k2"], t["n"]) for t in answered) == [("level", "new", 1), ("level", "pro", 1)]
    before = {t: len(table_rows(db_engine, t)) for t in ("subscriber", "consent", "enrollment", "event")}

    clock.advance(timedelta(hours=1))
    write(people, PEOPLE.replace("Ann Lee", "Ann Lee-Smith"))
    again = cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert again.exit_code == 0, again.output
    assert again.stdout == "0 added, 3 already in the funnel, 0 suppressed, 0 bad rows\n"
    assert {t: len(table_rows(db_engine, t)) for t in before} == before
    assert table_rows(db_engine, "subscriber", email_key="ann@example.com")[0]["name"] == "Ann Lee-Smith"


def test_imported_people_skip_the_confirmation_email_unless_double_opt_in(
        cli: Cli, db_url: str, project: Path, clock: FrozenClock, tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "email\nann@example.com\n")
    write(tmp_path / "b.csv", "email\nbob@example.com\n")
    assert cli("subscribers", "import", "a.csv", "--funnel", "minimal").exit_code == 0
    assert cli("subscribers", "import", "b.csv", "--funnel", "minimal", "--double-opt-in").exit_code == 0
    harness = Harness(db_url, project, MONDAY)
    try:
        harness.tick()
        assert harness.sent_steps("ann@example.com") == ["magnet", "survey"]
        assert harness.sent_steps("bob@example.com") == ["confirm"]
    finally:
        harness.close()


def test_bad_rows_are_named_by_their_line_and_the_good_ones_kept(
        cli: Cli, db_engine: Engine, clock: FrozenClock, tmp_path: Path) -> None:
    write(tmp_path / "people.csv",
          "email,name,timezone,answer.level,magnet,locale\n"
          "ann.example.com,Ann,,,,\n"
          'good@example.com,"Lee,\nAnn",,,,\n'  # one row on two lines: the next row is line 5
          "carl@example.com,Carl,Europe/Budapset,,,\n"
          "\n"
          "dora@example.com,Dora,Mars/Base,expert,,\n"
          "eve@example.com,Eve,,,ebook,English\n"
          ",no address,,,,\n"
          "fred@example.com,Fred,,,,,,extra\n")
    result = cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "people.csv:2: 'ann.example.com' is not an email address (An email address must have an @-sign); "
        "write the plain address, like ann@example.com",
        "people.csv:5: unknown time zone 'Europe/Budapset'; did you mean 'Europe/Budapest'?",
        "people.csv:7: unknown time zone 'Mars/Base'; "
        "write an IANA name like Europe/Budapest or America/New_York",
        "people.csv:7: 'expert' is not an answer of 'level'; write one of new, pro",
        "people.csv:8: unknown magnet 'ebook'; the magnets of funnel 'minimal' are guide",
        "people.csv:8: locale 'English' is not a language tag; write one like en, de or pt-BR",
        "people.csv:9: no email address; write the person's address in the 'email' column, or delete the row",
        "people.csv:10: the row has 8 cells but the first line names 6 columns; "
        'put a cell that holds a comma in double quotes, like "Lee, Ann"',
        "1 added, 0 already in the funnel, 0 suppressed, 6 bad rows",
    ]
    assert [s["name"] for s in table_rows(db_engine, "subscriber")] == ["Lee,\nAnn"]


@pytest.mark.parametrize(("text", "message"), [
    ("name,e-mail\nAnn,ann@example.com\n",
     "people.csv:1: no 'email' column; name the column that holds the addresses 'email' "
     "(the first line names the columns, like email,name,timezone)"),
    ("email,answer.levl\nann@example.com,new\n",
     "people.csv:1: column 'answer.levl' names no question of funnel 'minimal'; "
     "did you mean 'answer.level'?"),
    ("email,name,Email\n",
     "people.csv:1: column 'Email' appears twice (columns 1 and 3); keep one of them"),
    ("", "people.csv:1: the first line is empty; it must name the columns, like email,name,timezone"),
])
def test_a_bad_header_stops_the_import_before_anything_is_written(
        text: str, message: str, sqlite_cli: Cli, tmp_path: Path) -> None:
    write(tmp_path / "people.csv", text)
    result = sqlite_cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert (result.exit_code, result.stderr) == (1, message + "\n")
    assert not (tmp_path / "funnel.db").exists()  # the database was not even opened


def test_a_file_that_is_not_utf8_names_the_line(sqlite_cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_bytes(b"email,name\nann@example.com,Ren\xe9e\n")
    result = sqlite_cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert (result.exit_code, result.stderr) == (
        1, "people.csv:2: the file is not UTF-8 text (byte 0xe9 at column 20); save it as 'CSV UTF-8'\n")


def test_an_unknown_funnel_gets_a_did_you_mean(sqlite_cli: Cli, tmp_path: Path) -> None:
    write(tmp_path / "people.csv", "email\nann@example.com\n")
    result = sqlite_cli("subscribers", "import", "people.csv", "--funnel", "minimall")
    assert (result.exit_code, result.stderr) == (1, "no funnel named 'minimall'; did you mean 'minimal'?\n")


def test_suppressed_addresses_and_unsubscribed_rows_are_skipped_and_counted(
        cli: Cli, db_engine: Engine, clock: FrozenClock, tmp_path: Path) -> None:
    with db_engine.begin() as conn:
        queries.suppress(conn, "Gone@Example.com", "bounced", MONDAY)
    write(tmp_path / "people.csv", "email,status\ngone@example.com,\nann@example.com,unsubscribed\n"
                                   "bob@example.com,active\ncarl@example.com,asleep\n")
    result = cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert result.stdout.splitlines() == [
        "people.csv:5: unknown status 'asleep'; write active, unsubscribed, bounced or complained, "
        "or leave it empty",
        "1 added, 0 already in the funnel, 2 suppressed, 1 bad row"]
    assert [s["email"] for s in table_rows(db_engine, "subscriber")] == ["bob@example.com"]


def test_a_file_goes_in_batches_and_counts_a_repeat_once(
        cli: Cli, db_engine: Engine, clock: FrozenClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importing, "BATCH", 4)  # 500 in real use; 4 crosses a few batch ends quickly
    lines = [f"p{i}@example.com,Person {i}" for i in range(11)]
    lines[6] = "P2@EXAMPLE.com,Person 2 again"  # a repeat in the second batch
    write(tmp_path / "people.csv", "email,name\n" + "\n".join(lines) + "\n")
    result = cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert result.stdout == "10 added, 1 already in the funnel, 0 suppressed, 0 bad rows\n"
    assert len(table_rows(db_engine, "enrollment")) == 10
    assert len(table_rows(db_engine, "event", type="confirmed")) == 10
    assert table_rows(db_engine, "subscriber", email_key="p2@example.com")[0]["name"] == "Person 2 again"


def test_semicolons_from_a_spreadsheet_are_understood(cli: Cli, db_engine: Engine, tmp_path: Path) -> None:
    write(tmp_path / "people.csv", "\ufeffEmail;Name;field.plan\r\nann@example.com;Ann;pro\r\n")
    result = cli("subscribers", "import", "people.csv", "--funnel", "minimal")
    assert result.stdout == "1 added, 0 already in the funnel, 0 suppressed, 0 bad rows\n"
    assert table_rows(db_engine, "subscriber")[0]["fields"] == {"plan": "pro"}
