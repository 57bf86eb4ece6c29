"""Releases in a running daemon (SQLite and PostgreSQL): a render the files break holds the email."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

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
        (templates / "part-hu.html").write_text("<p>Magyar rész</p>")
        h.clock.advance(timedelta(minutes=10))
        h.tick()
        assert _magnet(h)["status"] == "sent", _magnet(h)["last_reply"]
        assert h.sent_steps()[-1] == "magnet" and "Magyar rész" in _html(h.transport.sent[-1].data)
    finally:
        h.close()
