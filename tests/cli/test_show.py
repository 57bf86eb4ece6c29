"""`funnel subscribers show`: what is stored, each email's fate, and what comes next and why."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.scheduler.clock import FrozenClock, ScaledClock, clock_mark
from engine.store import meta, queries
from engine.store.tables import RELEASE, TAG
from tests.cli.conftest import MONDAY, Cli, write
from tests.scheduler.harness import Harness

SHOWN = """\
Ann Lee <ann@example.com>
  status active; locale en; time zone Europe/Budapest; since Mon 2026-03-02 09:00 Europe/Budapest
  first name in emails none (templates write their fallback)
  utm_source ads
  fields: city=Szeged
consent (Europe/Budapest time):
  Mon 2026-03-02 09:00  import  funnel minimal, form people.csv
tags: vip
events (Europe/Budapest time):
  Mon 2026-03-02 09:00  answer level=new  (funnel minimal)
  Mon 2026-03-02 09:00  confirmed  (funnel minimal)
funnel minimal: stage nurture, segment one, step e1
  emails (Europe/Budapest time):
    decided at            step    status  attempts  sent at               release       last reply
    Mon 2026-03-02 09:00  magnet  sent    1         Mon 2026-03-02 09:00  {release}  250 kept in memory
  releases (the files those emails were rendered from):
    {release}  live since Mon 2026-03-02 09:00
  next: 'e1' at Wed 2026-03-04 09:00 Europe/Budapest
  why:  spacing: 'e1' is due at Wed 2026-03-04 09:00 Europe/Budapest, 2d after the nurture path began
"""


def _release(db_engine: Engine) -> str:
    """The one release the daemon recorded (its id is a hash of the test's files)."""
    with db_engine.connect() as conn:
        (release,) = conn.execute(sa.select(RELEASE.c.id)).scalars()
    return str(release)


def _signed_up(cli: Cli, db_url: str, project: Path, tmp_path: Path) -> None:
    """Ann imported with her answer on Monday 08:00 UTC; one tick sends her the magnet."""
    write(tmp_path / "people.csv", "email,name,timezone,answer.level,city,utm_source\n"
                                   "ann@example.com,Ann Lee,Europe/Budapest,new,Szeged,ads\n")
    assert cli("subscribers", "import", "people.csv", "--funnel", "minimal").exit_code == 0
    harness = Harness(db_url, project, MONDAY)
    try:
        harness.tick()
    finally:
        harness.close()


def test_show_tells_the_story_and_what_waits(cli: Cli, db_url: str, db_engine: Engine, project: Path,
                                            clock: FrozenClock, tmp_path: Path) -> None:
    _signed_up(cli, db_url, project, tmp_path)
    with db_engine.begin() as conn:
        conn.execute(TAG.insert().values(subscriber_id=1, name="vip", at=MONDAY))
    clock.advance(timedelta(hours=1))
    result = cli("subscribers", "show", "ANN@example.com")
    assert result.exit_code == 0, result.output
    assert result.stdout == SHOWN.format(release=_release(db_engine))


def test_show_json_has_every_row_and_the_next_step(cli: Cli, db_url: str, project: Path, clock: FrozenClock,
                                                   tmp_path: Path) -> None:
    _signed_up(cli, db_url, project, tmp_path)
    clock.advance(timedelta(days=2, hours=1))  # Wednesday 09:00 UTC: e1 is due and inside the window
    shown = json.loads(cli("subscribers", "show", "ann@example.com", "--json").stdout)
    assert shown["subscriber"]["email"] == "ann@example.com" and "email_key" not in shown["subscriber"]
    assert [c["kind"] for c in shown["consents"]] == ["import"]
    assert [e["type"] for e in shown["events"]] == ["answer", "confirmed"]
    (enrollment,) = shown["enrollments"]
    assert (enrollment["stage"], enrollment["segment"], enrollment["step"]) == ("nurture", "one", "e1")
    assert [d["step"] for d in enrollment["deliveries"]] == ["magnet"]
    assert enrollment["next"] == {"step": "e1", "at": "2026-03-04T09:00:00+00:00",
                                  "reason": "'e1' is due now: it goes out at the daemon's next tick"}


def test_a_missing_funnel_file_and_a_bounced_address_are_explained(
        cli: Cli, db_url: str, db_engine: Engine, project: Path, clock: FrozenClock, tmp_path: Path) -> None:
    _signed_up(cli, db_url, project, tmp_path)
    with db_engine.begin() as conn:
        queries.set_subscriber_status(conn, 1, "bounced", MONDAY)
    bounced = cli("subscribers", "show", "ann@example.com").stdout.splitlines()
    assert bounced[-2:] == ["  next: nothing planned",
                            "  why:  the address bounced: ends at the daemon's next tick"]
    (project / "sequences" / "minimal.yaml").rename(project / "minimal.yaml.off")
    gone = cli("subscribers", "show", "ann@example.com").stdout.splitlines()
    assert gone[-1] == ("  why:  no sequence file defines funnel 'minimal' any more; "
                        "waits until the file is back")


def test_an_unknown_address_is_an_error(sqlite_cli: Cli) -> None:
    result = sqlite_cli("subscribers", "show", "nobody@example.com")
    assert (result.exit_code, result.stderr) == (
        1, "no subscriber with the address 'nobody@example.com'; check the spelling (case does not matter)\n")


def test_a_late_answer_that_changed_nothing_is_shown(cli: Cli, db_url: str, project: Path, clock: FrozenClock,
                                                     tmp_path: Path) -> None:
    _signed_up(cli, db_url, project, tmp_path)
    harness = Harness(db_url, project, MONDAY + timedelta(days=2))  # Wednesday: e1 goes out
    try:
        harness.tick()
        harness.event("ann@example.com", "answer", funnel="minimal", question="level", answer="pro")
        assert harness.sent_steps() == ["e1"]
    finally:
        harness.close()
    clock.advance(timedelta(days=2, hours=1))
    lines = cli("subscribers", "show", "ann@example.com").stdout.splitlines()
    assert lines[-3] == ("  survey: late answer level=pro (after the segment was chosen): kept segment 'one' "
                         "(not 'two') because its nurture emails had begun ('e1'); a late answer changes "
                         "the segment only before the first nurture email")
    shown = json.loads(cli("subscribers", "show", "ann@example.com", "--json").stdout)
    assert shown["enrollments"][0]["late_answer"].startswith("late answer level=pro")


WAITS = ("  why:  spacing: 'e1' is due at Wed 2026-03-04 09:00 Europe/Budapest, "
         "2d after the nurture path began")
BROKEN = "  why:  its sequence file has errors (run funnel validate); the daemon keeps the last good version"


@pytest.mark.parametrize("template", [
    "<p>No footer: neither an unsubscribe link nor the postal address.</p>",
    '{% extends "layout.html" %}{% block body %}{{ subscriber.fields.size.upper() }}{% endblock %}',
    '{% extends "layout.html" %}{% block body %}{{ subscriber.shoe_size }}{% endblock %}',
], ids=["no-footer", "fails-with-sample-data", "undefined-variable"])
def test_a_template_that_only_validate_finds_wrong_does_not_stop_show(
        cli: Cli, db_url: str, project: Path, clock: FrozenClock, tmp_path: Path, template: str) -> None:
    """show loads the plans without rendering the templates with sample subscribers (the footer,
    what fails only when rendered) nor checking their variables: validate's matters."""
    _signed_up(cli, db_url, project, tmp_path)
    write(project / "templates" / "t" / "e2.html", template)
    clock.advance(timedelta(hours=1))
    shown = cli("subscribers", "show", "ann@example.com")
    assert shown.exit_code == 0 and shown.stdout.splitlines()[-1] == WAITS, shown.output
    checked = cli("validate")
    assert checked.exit_code == 1 and "e2" in checked.output, checked.output


@pytest.mark.parametrize(("path", "old", "new"), [
    ("sequences/minimal.yaml", "spacing: 2d", "spacing: 2x"),
    ("sequences/minimal.yaml", "name: Minimal funnel", 'name: "Minimal funnel'),
    ("sequences/minimal.yaml", "template: t/e2.html", "template: t/e2-gone.html"),
    ("templates/t/e2.html", None, '{% extends "layout.html" %}{% block body %}{% if %}{% endblock %}'),
    ("templates/t/e2.html", None, '{% extends "layout.html" %}{% block body %}{% include "t/gone.html" %}'
                                  '{% endblock %}'),
], ids=["bad-delay", "yaml-syntax", "template-not-found", "template-does-not-compile",
        "template-includes-a-missing-one"])
def test_a_funnel_whose_files_do_not_compile_is_broken_in_show(
        cli: Cli, db_url: str, project: Path, clock: FrozenClock, tmp_path: Path, path: str,
        old: str | None, new: str) -> None:
    """A file that does not load or compile, or a template that is not there or does not compile:
    the daemon keeps the last good release, and show says so."""
    _signed_up(cli, db_url, project, tmp_path)
    target = project / path
    write(target, new if old is None else target.read_text().replace(old, new))
    lines = cli("subscribers", "show", "ann@example.com").stdout.splitlines()
    assert lines[-1] == BROKEN
    assert cli("validate").exit_code == 1


def test_show_reads_a_demo_database_at_the_demo_time(cli: Cli, db_url: str, db_engine: Engine, project: Path,
                                                     clock: FrozenClock, tmp_path: Path) -> None:
    """A --time-scale demo's database is read at its own time, not the command's clock."""
    _signed_up(cli, db_url, project, tmp_path)
    wednesday = MONDAY + timedelta(days=2)  # a clock this slow stays at Wednesday 08:00 UTC
    meta.keep_first(db_engine, "clock", clock_mark(ScaledClock(1e-9, wednesday)), MONDAY)
    lines = cli("subscribers", "show", "ann@example.com").stdout.splitlines()
    assert lines[-1] == "  why:  'e1' is due now: it goes out at the daemon's next tick"


def test_a_broken_file_does_not_take_the_id_of_a_good_one(
        cli: Cli, db_url: str, project: Path, clock: FrozenClock, tmp_path: Path) -> None:
    """A file that does not load, declaring the id of a funnel another file defines well (an
    old copy, say), leaves that funnel as it is."""
    _signed_up(cli, db_url, project, tmp_path)
    write(project / "sequences" / "a-copy.yaml", "funnel: minimal\nname: [unclosed\n")
    clock.advance(timedelta(hours=1))
    assert cli("subscribers", "show", "ann@example.com").stdout.splitlines()[-1] == WAITS
