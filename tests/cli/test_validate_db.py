"""`funnel validate --against-db`: how many subscribers each edit of a live funnel affects."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.flow.state import Done, Stage, State
from engine.sequences.plan import PathKind, Role
from engine.store.rows import state_values
from engine.store.tables import DELIVERY, ENROLLMENT, SUBSCRIBER
from tests.cli.conftest import MONDAY, Cli
from tests.scheduler.harness import Harness


def _place(db_engine: Engine, funnel: str, state: State, count: int) -> None:
    """`count` new subscribers enrolled in `funnel` at `state` (in bulk: 1,234 must be quick)."""
    with db_engine.begin() as conn:
        first = conn.execute(sa.select(sa.func.count()).select_from(SUBSCRIBER)).scalar_one()
        emails = [f"s{first + i}@example.com" for i in range(count)]
        conn.execute(SUBSCRIBER.insert(), [{"email": e, "email_key": e, "fields": {}, "created_at": MONDAY,
                                            "updated_at": MONDAY} for e in emails])
        ids = conn.execute(sa.select(SUBSCRIBER.c.id).where(SUBSCRIBER.c.email.in_(emails))).scalars()
        conn.execute(ENROLLMENT.insert(), [{"subscriber_id": i, "funnel": funnel, **state_values(state),
                                            "created_at": MONDAY, "updated_at": MONDAY} for i in ids])


def _sent(*steps: str) -> tuple[Done, ...]:
    return tuple(Done(s, PathKind.NURTURE, Role.SALE if s.startswith("s") else Role.EDUCATION) for s in steps)


def _edit(project: Path) -> None:
    """Remove email e3 from segment one, and rename segment two to 'pros'."""
    path = project / "sequences" / "minimal.yaml"
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if "{id: e3," not in line]
    text = "\n".join(lines) + "\n"
    path.write_text(text.replace("segment: two", "segment: pros").replace("- id: two", "- id: pros"),
                    encoding="utf-8")


def test_validate_counts_who_an_edit_affects(cli: Cli, db_engine: Engine, project: Path) -> None:
    later = MONDAY + timedelta(days=4)
    _place(db_engine, "minimal", State(Stage.NURTURE, MONDAY, "one", "e3", later, done=_sent("e1", "e2")), 3)
    _place(db_engine, "minimal", State(Stage.NURTURE, MONDAY, "one", "e3", later,
                                       done=_sent("e1", "e2", "e4")), 1)
    _place(db_engine, "minimal", State(Stage.NURTURE, MONDAY, "two", "c3", later, done=_sent("e6")), 2)
    # Away in win-back: a click returns them into their segment, which is gone.
    _place(db_engine, "minimal", State(Stage.WINBACK, MONDAY, "two", None, later, done=_sent("e6"),
                                       resume_stage=Stage.NURTURE, resume_step="c3"), 1)
    _place(db_engine, "minimal", State(Stage.ANSWERING, MONDAY), 1)
    _place(db_engine, "minimal", State(Stage.ENDED, MONDAY, "one", reason="unsubscribed"), 4)
    _place(db_engine, "spring-sale", State(Stage.SALES, MONDAY, "one", "o1"), 2)
    _place(db_engine, "old-news", State(Stage.ENDED, MONDAY, reason="customer path finished"), 1)
    _edit(project)
    result = cli("validate", "--against-db")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("project/sequences/minimal.yaml: ok, funnel 'minimal'")
    assert lines[1].startswith("subscribers in the database at ")
    assert lines[2:] == [
        "minimal: 8 subscribers; 4 at removed step 'e3' (nurture of 'one') continue with 'e4' (3) "
        "or 's1' (1); 3 in removed segment 'two' move to the default segment 'one'",
        "spring-sale: 2 subscribers; no sequence file defines this funnel any more: "
        "they wait until the file is back",
    ]


def test_nothing_affected_and_one_file_only(cli: Cli, db_engine: Engine, project: Path) -> None:
    _place(db_engine, "minimal", State(Stage.NURTURE, MONDAY, "one", "e2", done=_sent("e1")), 1_234)
    _place(db_engine, "spring-sale", State(Stage.SALES, MONDAY, "one", "o1"), 1)
    everything = cli("validate", "--against-db").stdout.splitlines()
    assert everything[2:] == ["minimal: 1,234 subscribers; 0 at removed steps; 0 in removed segments",
                              "spring-sale: 1 subscriber; no sequence file defines this funnel any more: "
                              "they wait until the file is back"]
    one_file = cli("validate", str(project / "sequences" / "minimal.yaml"), "--against-db")
    assert one_file.stdout.splitlines()[2:] == [
        "minimal: 1,234 subscribers; 0 at removed steps; 0 in removed segments"]


def test_no_database_yet_and_files_with_errors(project: Path, tmp_path: Path) -> None:
    cli = Cli(project, f"sqlite:///{tmp_path / 'none.db'}")
    result = cli("validate", "--against-db")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        f"no database yet at sqlite:///{tmp_path / 'none.db'}; nothing to compare")
    assert not (tmp_path / "none.db").exists()
    (project / "sequences" / "broken.yaml").write_text("funnel: broken\n", encoding="utf-8")
    broken = cli("validate", "--against-db")
    assert broken.exit_code == 1
    assert "nothing to compare" not in broken.stdout


def _insert_and_move(project: Path) -> None:
    """Insert n1 (plain) after e1 and n2 (send_to_passed) after e2, and move e4 after s1."""
    path = project / "sequences" / "minimal.yaml"
    text = path.read_text(encoding="utf-8")
    e4 = "        - {id: e4, role: education, subject: E4, template: t/e4.html}\n"
    s1 = "        - {id: s1, role: sale, subject: S1, template: t/s1.html}\n"
    e1 = "        - {id: e1, role: education, subject: E1, template: t/e1.html}\n"
    e2 = "        - {id: e2, role: education, subject: E2, template: t/e2.html}\n"
    assert all(line in text for line in (e1, e2, e4, s1))
    text = text.replace(e4 + s1, s1 + e4)
    text = text.replace(e1, e1 + "        - {id: n1, role: education, subject: N1, template: t/e1.html}\n")
    text = text.replace(e2, e2 + "        - {id: n2, role: education, subject: N2, template: t/e2.html, "
                                  "send_to_passed: true}\n")
    path.write_text(text, encoding="utf-8")


def test_inserted_and_moved_emails_are_reported_change_by_change(cli: Cli, db_engine: Engine,
                                                                  project: Path) -> None:
    _place(db_engine, "minimal", State(Stage.NURTURE, MONDAY, "one", "e4", MONDAY,
                                       done=_sent("e1", "e2", "e3")), 3)
    _place(db_engine, "minimal", State(Stage.NURTURE, MONDAY, "one", "e2", MONDAY, done=_sent("e1")), 2)
    _place(db_engine, "minimal", State(Stage.NURTURE, MONDAY, "one", "e5", MONDAY,
                                       done=_sent("e1", "e2", "e3", "e4", "s1")), 1)
    _insert_and_move(project)
    result = cli("validate", "--against-db")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2:] == [
        "minimal: 6 subscribers; 0 at removed steps; "
        "2 waiting for 'e2' (nurture of 'one') now continue with 'n1'; "
        "3 waiting for 'e4' (nurture of 'one') now continue with 'n2'; "
        "1 waiting for 'e5' (nurture of 'one') now continue with 'n2'; "
        "new or moved 'n1' (nurture of 'one'): 2 will get it, 4 passed it and will not get it; "
        "new or moved 'n2' (nurture of 'one'): 2 will get it, 4 passed it and get it too (send_to_passed); "
        "0 in removed segments"]
    report = json.loads(cli("validate", "--against-db", "--json").stdout)
    assert report["errors"] == [] and report["funnels"][0].startswith("project/sequences/minimal.yaml: ok")
    changes = report["against_db"]["funnels"][0]["changes"]
    assert [(c["kind"], c["count"]) for c in changes] == [
        ("next_changed", 2), ("next_changed", 3), ("next_changed", 1),
        ("passed_email", 4), ("passed_email", 4)]
    assert changes[1]["continue_with"] == {"n2": 3}
    assert (changes[4]["email"], changes[4]["ahead"], changes[4]["passed_get_it"]) == ("n2", 2, True)


def test_json_without_a_database_and_with_errors(project: Path, tmp_path: Path) -> None:
    cli = Cli(project, f"sqlite:///{tmp_path / 'none.db'}")
    report = json.loads(cli("validate", "--against-db", "--json").stdout)
    assert report["against_db"] == {"database": f"sqlite:///{tmp_path / 'none.db'}", "compared": False,
                                    "funnels": []}
    (project / "sequences" / "broken.yaml").write_text("funnel: broken\n", encoding="utf-8")
    broken = cli("validate", "--against-db", "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["errors"] and json.loads(broken.stdout)["against_db"] is None


def _queue(db_engine: Engine, step: str) -> int:
    """An email `step` decided and waiting to be composed for every enrollment of 'minimal'."""
    with db_engine.begin() as conn:
        rows = conn.execute(sa.select(ENROLLMENT.c.id, ENROLLMENT.c.subscriber_id)
                            .where(ENROLLMENT.c.funnel == "minimal")).all()
        conn.execute(DELIVERY.insert(), [
            {"enrollment_id": e, "subscriber_id": s, "funnel": "minimal", "step": step, "segment": "one",
             "message_id": f"<{step}.{e}@example.com>", "status": "queued", "created_at": MONDAY,
             "next_attempt_at": MONDAY, "updated_at": MONDAY} for e, s in rows])
    return len(rows)


def test_queued_emails_whose_text_changed_since_the_live_release_are_counted(
    cli: Cli, db_url: str, db_engine: Engine, project: Path
) -> None:
    Harness(db_url, project, MONDAY).close()  # a daemon started: the files' release is the live one
    _place(db_engine, "minimal", State(Stage.NURTURE, MONDAY, "one", "e1", MONDAY), 3)
    assert _queue(db_engine, "e1") == 3
    unchanged = cli("validate", "--against-db").stdout.splitlines()[2:]
    assert unchanged == ["minimal: 3 subscribers; 0 at removed steps; 0 in removed segments"]
    template = project / "templates" / "t" / "e1.html"
    template.write_text(template.read_text().replace("this is e1", "this is the new e1"))
    result = cli("validate", "--against-db")
    assert result.stdout.splitlines()[2:] == [
        "minimal: 3 subscribers; 0 at removed steps; 0 in removed segments; "
        "3 queued 'e1' go out with the changed text"]
    report = json.loads(cli("validate", "--against-db", "--json").stdout)["against_db"]
    changes = report["funnels"][0]["changes"]
    assert changes == [{"kind": "queued_text", "count": 3, "step": "e1",
                        "text": "3 queued 'e1' go out with the changed text"}]
