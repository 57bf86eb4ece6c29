"""The tick on a real database (SQLite and PostgreSQL) with a memory transport and a frozen clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.flow.actions import Send
from engine.flow.simulate import Script, simulate
from engine.mail.memory import MemoryTransport
from engine.mail.transport import Outcome, Outgoing, Result
from engine.store.tables import ENROLLMENT, SUBSCRIBER
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the minimal funnel's window: weekdays 08:00-11:00


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return minimal_project(tmp_path / "project")


@pytest.fixture
def harness(db_url: str, project: Path) -> Iterator[Harness]:
    h = Harness(db_url, project, MONDAY)
    yield h
    h.close()


def test_the_daemon_sends_what_simulate_shows(harness: Harness) -> None:
    """The live driver and `funnel simulate` call the same step(): same emails, same order."""
    harness.add("ana@example.com", name="Ana")
    harness.tick()
    assert harness.sent_steps() == ["confirm"]
    harness.event("ana@example.com", "confirmed")
    harness.run_until(MONDAY + timedelta(days=60))
    plan = harness.daemon.live.current.plans["minimal"]
    script = Script(start=MONDAY, days=60)  # simulate confirms two minutes after the email
    expected = [e.action.email.id for e in simulate(plan, script).entries if isinstance(e.action, Send)]
    assert harness.sent_steps() == expected
    assert len(expected) > 8
    marketing = [d for d in harness.deliveries() if d["marketing"]]
    for delivery in marketing:  # inside the window, at most one a day
        assert delivery["sent_at"].weekday() < 5 and 8 <= delivery["sent_at"].hour < 11
    assert max(Counter(d["sent_at"].date() for d in marketing).values()) == 1


def test_a_tick_that_runs_again_sends_nothing_twice(harness: Harness) -> None:
    for i in range(30):
        harness.add(f"s{i}@example.com")
    first = harness.tick()
    second = harness.tick()
    assert (first.queued, second.queued, second.attempted) == (30, 0, 0)
    assert len(harness.transport.sent) == 30
    assert len({m.rcpt_to for m in harness.transport.sent}) == 30


def test_the_message_carries_the_headers_of_a_marketing_email(harness: Harness) -> None:
    harness.add("ana@example.com", name="Ana Kovács")
    harness.tick()
    harness.event("ana@example.com", "confirmed")
    harness.tick()
    steps = dict(zip(harness.sent_steps(), harness.transport.sent, strict=True))
    assert list(steps) == ["confirm", "magnet", "survey"]  # the survey follows at once (after: 0)
    magnet = steps["magnet"]
    parsed = message_from_bytes(magnet.data, policy=policy.default)
    assert parsed["Subject"] == "Your guide, Ana"
    assert parsed["To"].addresses[0].display_name == "Ana Kovács"
    assert parsed["Message-ID"] == f"<{magnet.message_id}>"
    assert parsed["List-Unsubscribe"].startswith("<https://funnel.example/u/")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (magnet.mail_from, magnet.rcpt_to) == ("team@example.com", "ana@example.com")
    confirmation = message_from_bytes(harness.transport.sent[0].data, policy=policy.default)
    assert confirmation["List-Unsubscribe"] is None  # transactional: nothing to unsubscribe from


def test_a_4xx_is_retried_with_back_off_and_then_sent(db_url: str, project: Path) -> None:
    replies = iter([Result(Outcome.RETRY, 451, "4.3.0 try later")])

    def script(message: Outgoing) -> Result:
        return next(replies, Result(Outcome.SENT, 250, "ok"))

    h = Harness(db_url, project, MONDAY, transport=MemoryTransport(script))
    try:
        h.add("ana@example.com")
        h.tick()
        [delivery] = h.deliveries()
        assert (delivery["status"], delivery["attempts"], delivery["last_code"]) == ("deferred", 1, 451)
        assert delivery["next_attempt_at"] == MONDAY + timedelta(minutes=5)
        h.clock.advance(timedelta(minutes=4))
        assert h.tick().attempted == 0
        h.clock.advance(timedelta(minutes=1))
        h.tick()
        [delivery] = h.deliveries()
        assert (delivery["status"], delivery["attempts"], delivery["sent_at"]) == ("sent", 2, MONDAY + timedelta(minutes=5))
        assert len(h.transport.sent) == 1
    finally:
        h.close()
