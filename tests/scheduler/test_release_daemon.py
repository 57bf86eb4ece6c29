"""Releases in a running daemon (SQLite and PostgreSQL): a render the files break holds the email."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.cli.profile_text import profile_lines
from engine.store.tables import RELEASE
from engine.subscribers.profile import Origin, load_profile
from engine.web.dashboard import timeline
from tests.scheduler.harness import Harness
from tests.support.project import magnet_with_a_part_per_locale, minimal_project

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the minimal funnel's window: weekdays 08:00-11:00


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return minimal_project(tmp_path / "project")


def _html(data: bytes) -> str:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _releases(h: Harness) -> list[dict[str, Any]]:
    with h.db_engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(RELEASE).order_by(RELEASE.c.went_live_at))
                .mappings()]


def _magnet(h: Harness) -> dict[str, object]:
    return next(d for d in h.deliveries() if d["step"] == "magnet")


def test_a_template_the_files_lack_for_one_subscriber_holds_the_email_until_the_files_are_fixed(
    db_url: str, project: Path
) -> None:
    templates = magnet_with_a_part_per_locale(project)
    h = Harness(db_url, project, MONDAY)
    try:
        h.add("ana@example.com", locale="hu")
        h.event("ana@example.com", "confirmed", funnel="minimal")
        h.tick()
        held = _magnet(h)
        assert held["status"] == "deferred"  # held, not failed
        assert str(held["last_reply"]).startswith(
            "held: t/magnet.html: template 't/part-hu.html' not found")
        assert "magnet" not in h.sent_steps()
        assert held["release"] is None  # nothing was rendered
        first = h.daemon.live.current.release.id
        (templates / "part-hu.html").write_text("<p>Magyar rész</p>")
        h.clock.advance(timedelta(minutes=1))
        h.tick()  # the reload wakes it: no need to wait the 10 minutes
        sent = _magnet(h)
        assert sent["status"] == "sent", sent["last_reply"]
        assert h.sent_steps()[-1] == "magnet" and "Magyar rész" in _html(h.transport.sent[-1].data)
        assert sent["release"] == h.daemon.live.current.release.id != first
        assert [r["id"] for r in _releases(h)] == [first, sent["release"]]
        assert _releases(h)[1]["summary"]["templates_added"] == ["t/part-hu.html"]
    finally:
        h.close()


def test_a_template_renamed_before_the_yaml_is_sent_from_the_last_release_then_from_the_fixed_one(
    db_url: str, project: Path
) -> None:
    h = Harness(db_url, project, MONDAY)
    try:
        first = h.daemon.live.current.release.id
        h.add("ana@example.com", answers={"level": "new"})
        h.tick()
        h.event("ana@example.com", "confirmed")
        h.tick()
        templates = project / "templates" / "t"
        (templates / "e1.html").rename(templates / "first.html")  # the YAML still says t/e1.html
        h.run_until(MONDAY + timedelta(days=3))
        by_step = {d["step"]: d for d in h.deliveries()}
        assert by_step["e1"]["status"] == "sent"  # from the release in memory: nothing lost
        assert by_step["e1"]["release"] == first and h.daemon.live.current.release.id == first
        path = project / "sequences" / "minimal.yaml"
        path.write_text(path.read_text().replace("template: t/e1.html", "template: t/first.html"))
        h.run_until(MONDAY + timedelta(days=10))
        by_step = {d["step"]: d for d in h.deliveries()}
        second = h.daemon.live.current.release.id
        assert second != first and by_step["e2"]["status"] == "sent" and by_step["e2"]["release"] == second
        assert all(d["status"] != "failed" for d in by_step.values())
        summary = _releases(h)[-1]["summary"]
        assert (summary["templates_added"], summary["templates_removed"]) == (["t/first.html"], ["t/e1.html"])
    finally:
        h.close()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_release_records_what_changed_and_whom_it_touched_and_says_so_in_the_log(
    db_url: str, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(db_url, project, MONDAY)
    try:
        first = h.daemon.live.current.release.id
        for name in ("ana", "bea"):
            h.add(f"{name}@example.com", answers={"level": "new"})
        h.tick()
        for name in ("ana", "bea"):
            h.event(f"{name}@example.com", "confirmed")
        h.run_until(MONDAY + timedelta(days=3))  # magnet and e1 sent; both wait for e2
        assert h.sent_steps("ana@example.com") == ["confirm", "magnet", "e1"]
        _edit(project / "templates" / "t" / "e2.html", "this is e2", "this is the new e2")
        _edit(project / "sequences" / "minimal.yaml",
              "        - {id: e1, role: education, subject: E1, template: t/e1.html}\n",
              "        - {id: e1, role: education, subject: E1, template: t/e1.html}\n"
              "        - {id: n1, role: education, subject: N1, template: t/e1.html}\n")
        with caplog.at_level(logging.INFO, logger="funnel"):
            h.tick()
        second = h.daemon.live.current.release.id
        row = _releases(h)[-1]
        assert row["id"] == second and row["summary"]["previous"] == first
        summary = row["summary"]
        assert (summary["emails_added"], summary["emails_changed"]) == (["minimal/n1"], ["minimal/e2"])
        assert summary["templates_changed"] == ["t/e2.html"]
        assert set(summary["files"]["texts"]) == h.daemon.live.current.release.emails
        impact = next(r for r in caplog.records if r.getMessage() == "release_impact")
        fields = impact.fields  # type: ignore[attr-defined]
        assert (fields["release"], fields["previous"]) == (second, first)
        assert fields["report"][1] == (
            "minimal: 2 subscribers; 0 at removed steps; 2 waiting for 'e2' (nurture of 'one') now "
            "continue with 'n1'; 0 in removed segments")  # n1 is ahead of them: they get it first
        assert summary["impact"]["funnels"][0]["changes"][0]["kind"] == "next_changed"

        h.run_until(MONDAY + timedelta(days=10))
        assert h.sent_steps("ana@example.com")[:5] == ["confirm", "magnet", "e1", "n1", "e2"]
        e2 = next(d for d in h.deliveries() if d["step"] == "e2" and d["status"] == "sent")
        message = next(m for m in h.transport.sent if m.message_id == e2["message_id"])
        assert e2["release"] == second and "this is the new e2" in _html(message.data)
        plans = h.daemon.live.current.plans
        profile = load_profile(h.db_engine, "ana@example.com", plans, set(), h.clock.now())
        assert profile is not None
        origins = {d["step"]: profile.origin(d) for v in profile.enrollments for d in v.deliveries}
        assert origins["e1"] == Origin(first, MONDAY, None)  # the first release tells no news
        e2_origin = origins["e2"]
        assert e2_origin is not None and e2_origin.release == second
        assert e2_origin.news == "changed"
        shown = list(profile_lines(profile, h.clock.now()))  # funnel subscribers show
        assert (f"    {second}  live since Thu 2026-03-05 08:00; added 'n1'; "
                "brought the new text of 'e2'") in shown
        page = timeline.entries(profile, plans)
        assert any(e.text.startswith("sent 'e2' “E2” from release " + second) and e.text.endswith(
            "; it brought this text)") for e in page)
    finally:
        h.close()


def test_a_restart_on_edited_files_compares_with_the_release_the_database_served_and_an_undo_goes_live_again(
    db_url: str, project: Path
) -> None:
    Harness(db_url, project, MONDAY).close()
    template = project / "templates" / "t" / "e3.html"
    _edit(template, "this is e3", "this is the new e3")
    h = Harness(db_url, project, MONDAY + timedelta(hours=1))  # started on the edited files
    try:
        rows = _releases(h)
        assert len(rows) == 2 and rows[1]["summary"]["emails_changed"] == ["minimal/e3"]
        assert rows[1]["summary"]["previous"] == rows[0]["id"]
    finally:
        h.close()
    _edit(template, "this is the new e3", "this is e3")  # undone: the first release's files again
    h = Harness(db_url, project, MONDAY + timedelta(hours=2))
    try:
        rows = _releases(h)
        assert [r["id"] for r in rows] == [rows[0]["id"], rows[1]["id"]]  # one row per content
        assert rows[-1]["went_live_at"] == MONDAY + timedelta(hours=2)  # the first one, live again
        assert rows[-1]["summary"]["emails_changed"] == ["minimal/e3"]
    finally:
        h.close()


def test_the_next_email_waits_for_one_held_for_its_files_so_the_inbox_keeps_the_path_s_order(
    db_url: str, project: Path
) -> None:
    templates = magnet_with_a_part_per_locale(project)
    h = Harness(db_url, project, MONDAY)
    try:
        h.add("ana@example.com", locale="hu", answers={"level": "new"})
        h.event("ana@example.com", "confirmed", funnel="minimal")
        h.run_until(MONDAY + timedelta(days=5))  # e1 was due on Wednesday
        assert _magnet(h)["status"] == "deferred" and [d["step"] for d in h.deliveries()] == ["magnet"]
        profile = load_profile(h.db_engine, "ana@example.com", h.daemon.live.current.plans, set(),
                               h.clock.now())
        assert profile is not None
        assert profile.enrollments[0].next.reason.startswith(
            "'magnet' is held: the template files cannot render it")
        (templates / "part-hu.html").write_text("<p>Magyar rész</p>")
        h.run_until(MONDAY + timedelta(days=9))
        assert h.sent_steps("ana@example.com")[:2] == ["magnet", "e1"]  # in the path's order
    finally:
        h.close()
