"""Releases in a running daemon (SQLite and PostgreSQL): a render the files break holds the email."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.store.tables import RELEASE
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the minimal funnel's window: weekdays 08:00-11:00
PART = '{% include "t/part-" ~ subscriber.locale ~ ".html" %}'


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
    # A computed include name gets past validate (it checks the sample's 'en' part only).
    templates = project / "templates" / "t"
    (templates / "part-en.html").write_text("<p>English part</p>")
    magnet = templates / "magnet.html"
    magnet.write_text(magnet.read_text().replace("{% endblock %}", PART + "{% endblock %}"))
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
