"""The tick on a real database (SQLite and PostgreSQL) with a memory transport and a frozen clock."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.flow.actions import Send
from engine.flow.simulate import Script, simulate
from engine.mail.memory import MemoryTransport
from engine.mail.tokens import verify
from engine.mail.transport import Outcome, Outgoing, Result
from engine.scheduler.decide import decide_due
from engine.store import queries
from engine.store.db import make_engine
from engine.store.tables import DELIVERY, ENROLLMENT, SUBSCRIBER
from tests.scheduler.harness import SECRET, Harness
from tests.support.links import hrefs, images
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
    harness.add("ana@example.com", name="Ana Kovács", first_name="Ana")
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
        assert (delivery["status"], delivery["attempts"], delivery["sent_at"]) == (
            "sent",
            2,
            MONDAY + timedelta(minutes=5),
        )
        assert len(h.transport.sent) == 1
    finally:
        h.close()


def _scripted(replies: dict[str, Result]) -> MemoryTransport:
    """A transport that answers per recipient, 250 for everyone else."""
    return MemoryTransport(lambda m: replies.get(m.rcpt_to, Result(Outcome.SENT, 250, "ok")))


def test_a_hard_bounce_suppresses_the_address_and_nothing_more_is_sent(db_url: str, project: Path) -> None:
    transport = _scripted({"gone@example.com": Result(Outcome.BOUNCED, 550, "5.1.1 no such user")})
    h = Harness(db_url, project, MONDAY, transport=transport)
    try:
        h.add("gone@example.com")
        h.tick()
        h.event("gone@example.com", "confirmed")  # a stale click after the bounce changes nothing
        h.run_until(MONDAY + timedelta(days=10))
        assert [d["status"] for d in h.deliveries()] == ["bounced"]
        assert [m.rcpt_to for m, _ in transport.attempts] == ["gone@example.com"]
        with h.db_engine.connect() as conn:
            assert conn.execute(sa.select(SUBSCRIBER.c.status)).scalar_one() == "bounced"
            stage, reason = conn.execute(sa.select(ENROLLMENT.c.stage, ENROLLMENT.c.reason)).one()
            assert queries.is_suppressed(conn, "Gone@example.com")
        assert (stage, reason) == ("ended", "the address bounced")
        # A later signup of a suppressed address writes nothing.
        assert h.add("GONE@example.com").subscriber_id is None
    finally:
        h.close()


def test_a_connection_lost_after_data_is_recorded_unknown_and_not_sent_again(
    db_url: str, project: Path
) -> None:
    transport = _scripted({"maybe@example.com": Result(Outcome.UNKNOWN, None, "connection lost after DATA")})
    h = Harness(db_url, project, MONDAY, transport=transport)
    try:
        h.add("maybe@example.com")
        h.run_until(MONDAY + timedelta(days=4))
        [delivery] = h.deliveries()
        assert (delivery["status"], delivery["attempts"], delivery["next_attempt_at"]) == ("unknown", 1, None)
        assert len(transport.attempts) == 1
    finally:
        h.close()


def test_4xx_replies_give_up_after_the_retry_lifetime(db_url: str, project: Path) -> None:
    transport = _scripted({"full@example.com": Result(Outcome.RETRY, 452, "4.2.2 mailbox full")})
    h = Harness(db_url, project, MONDAY, transport=transport, retry_lifetime="1d")
    try:
        h.add("full@example.com")
        h.run_until(MONDAY + timedelta(days=2), every=timedelta(minutes=30))
        [delivery] = h.deliveries()
        assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
        # 5m, 15m, 30m, 1h, 2h, then every 4h: about 9 attempts in a day, none after it.
        attempts = [m for m, _ in transport.attempts]
        assert delivery["attempts"] == len(attempts) and 8 <= len(attempts) <= 11
    finally:
        h.close()


def test_the_retry_lifetime_runs_from_the_first_attempt_not_the_decision(db_url: str, project: Path) -> None:
    """Mail the warm-up or a throttled domain held for days is not failed by its first 4xx."""
    transport = _scripted({"late@example.com": Result(Outcome.RETRY, 421, "4.7.0 try later")})
    h = Harness(db_url, project, MONDAY, transport=transport, retry_lifetime="1d")
    try:
        h.add("late@example.com")
        # Decided now, then held (as the warm-up does) for five days.
        decide_due(h.db_engine, h.daemon.live.current, h.clock.now(), 10, lambda plan: "example.com")
        with h.db_engine.begin() as conn:
            conn.execute(sa.update(DELIVERY).values(next_attempt_at=MONDAY + timedelta(days=5)))
        h.clock.advance(timedelta(days=5))
        h.tick()
        [delivery] = h.deliveries()
        assert (delivery["status"], delivery["attempts"]) == ("deferred", 1)
        assert delivery["first_attempt_at"] == h.clock.now()
        h.run_until(h.clock.now() + timedelta(days=2), every=timedelta(minutes=30))
        [delivery] = h.deliveries()
        assert delivery["status"] == "failed"  # a day after the first attempt
        assert delivery["updated_at"] - delivery["first_attempt_at"] >= timedelta(days=1)
    finally:
        h.close()


def test_the_frequency_cap_counts_every_funnel_of_the_subscriber(db_url: str, tmp_path: Path) -> None:
    project = minimal_project(tmp_path / "p")
    text = (project / "sequences" / "minimal.yaml").read_text()
    (project / "sequences" / "second.yaml").write_text(text.replace("funnel: minimal", "funnel: second"))
    h = Harness(db_url, project, MONDAY)
    try:
        h.add("both@example.com", answers={"level": "new"})
        h.add("both@example.com", funnel="second", answers={"level": "new"})
        h.tick()
        h.event("both@example.com", "confirmed")
        h.run_until(MONDAY + timedelta(days=40))
        marketing = [d for d in h.deliveries() if d["marketing"] and d["status"] == "sent"]
        assert {d["funnel"] for d in marketing} == {"minimal", "second"}
        per_day = Counter(d["sent_at"].date() for d in marketing)
        assert max(per_day.values()) == 1  # the default cap: one marketing email a day, all funnels
        # Deferred, never dropped: both funnels' nurture emails all went out in the end.
        nurture = ["e1", "e2", "e3", "e4", "s1", "e5"]
        for funnel in ("minimal", "second"):
            assert [d["step"] for d in marketing if d["funnel"] == funnel][:6] == nurture
    finally:
        h.close()


def test_after_downtime_overdue_mail_goes_out_in_order_at_the_send_rate(db_url: str, project: Path) -> None:
    h = Harness(db_url, project, MONDAY, send_rate=5, tick_seconds=1)
    seconds = [0.0]  # the limiter's real-time clock, moved by hand: a slow tick adds no tokens
    limiter = h.daemon.dispatcher.policy.limiter
    limiter.clock, limiter._at = (lambda: seconds[0]), 0.0
    try:
        for i in range(12):
            h.clock.at = MONDAY + timedelta(seconds=i)  # signed up one after another
            h.add(f"s{i:02}@example.com")
        h.clock.at = MONDAY + timedelta(hours=2)  # the daemon was down for two hours
        first = h.tick()
        assert first.queued == 12 and first.attempted == 5  # no burst beyond one second's worth
        assert [m.rcpt_to for m in h.transport.sent] == [f"s{i:02}@example.com" for i in range(5)]
        seconds[0] += 1.0
        assert h.tick().attempted == 5
        assert [m.rcpt_to for m in h.transport.sent][5:] == [f"s{i:02}@example.com" for i in range(5, 10)]
    finally:
        h.close()


def _decided_in_the_window_tried_after_it(h: Harness) -> dict[str, Any]:
    """e1, decided Wednesday 10:59 inside the window, then tried at 11:30 after a backlog."""
    h.add("ana@example.com", answers={"level": "new"})
    h.tick()
    h.event("ana@example.com", "confirmed")
    h.tick()  # magnet; the survey is skipped (answered on the form); nurture begins
    h.clock.at = MONDAY + timedelta(days=2, hours=2, minutes=59)  # e1 due Wed 08:00; decided 10:59
    h.daemon.dispatcher.policy.limiter.rate = 0.0  # sending stalls (a backlog) right after the decision
    h.daemon.dispatcher.policy.limiter._tokens = 0
    h.tick()
    queued = [d for d in h.deliveries() if d["status"] == "queued"]
    assert [d["step"] for d in queued] == ["e1"]
    h.daemon.dispatcher.policy.limiter.rate = 10_000.0
    h.clock.at = MONDAY + timedelta(days=2, hours=3, minutes=30)  # 11:30: the window has closed
    time.sleep(0.01)
    h.tick()
    [e1] = [d for d in h.deliveries() if d["step"] == "e1"]
    return e1


def test_an_anytime_email_is_not_held_for_the_send_window(db_url: str, project: Path) -> None:
    minimal = project / "sequences" / "minimal.yaml"
    minimal.write_text(minimal.read_text().replace(
        "{id: e1, role: education,", "{id: e1, role: education, anytime: true,", 1))
    h = Harness(db_url, project, MONDAY)
    try:
        e1 = _decided_in_the_window_tried_after_it(h)
        assert (e1["status"], e1["attempts"]) == ("sent", 1)
        assert e1["sent_at"] == MONDAY + timedelta(days=2, hours=3, minutes=30)
    finally:
        h.close()


def test_a_late_marketing_email_waits_for_the_next_window_instead_of_arriving_at_night(
    db_url: str, project: Path
) -> None:
    h = Harness(db_url, project, MONDAY)
    try:
        e1 = _decided_in_the_window_tried_after_it(h)
        assert (e1["status"], e1["attempts"]) == ("deferred", 0)
        assert e1["next_attempt_at"] == MONDAY + timedelta(days=3)  # Thursday 08:00
        assert e1["last_reply"] == "waiting for the send window"
    finally:
        h.close()


def test_an_edited_funnel_is_picked_up_and_a_removed_step_is_skipped_forward(
    db_url: str, project: Path
) -> None:
    h = Harness(db_url, project, MONDAY)
    try:
        h.add("ana@example.com", answers={"level": "new"})
        h.tick()
        h.event("ana@example.com", "confirmed")
        h.run_until(MONDAY + timedelta(days=3))
        assert h.sent_steps()[-1] == "e1"
        path = project / "sequences" / "minimal.yaml"
        path.write_text(
            path.read_text().replace(
                "        - {id: e2, role: education, subject: E2, template: t/e2.html}\n", ""
            )
        )
        h.run_until(MONDAY + timedelta(days=10))
        assert "e2" not in h.sent_steps()
        assert h.sent_steps()[:5] == ["confirm", "magnet", "e1", "e3", "e4"]
    finally:
        h.close()


def test_a_broken_edit_keeps_the_daemon_on_the_last_good_files(db_url: str, project: Path) -> None:
    h = Harness(db_url, project, MONDAY)
    try:
        path = project / "sequences" / "minimal.yaml"
        path.write_text(path.read_text().replace("template: t/e1.html", "tempalte: t/e1.html"))
        h.add("ana@example.com")
        h.tick()
        assert h.sent_steps() == ["confirm"]
        assert "minimal" in h.daemon.live.current.plans
    finally:
        h.close()


def test_a_locked_database_fails_the_tick_and_the_next_one_does_the_work(
    tmp_path: Path, project: Path
) -> None:
    """SQLite locked by another writer past the busy timeout: the tick raises, nothing is half-done."""
    from tests.support.databases import sqlite_database

    with sqlite_database(tmp_path) as url:
        h = Harness(url, project, MONDAY, busy_timeout_ms=200)
        try:
            h.add("ana@example.com")
            blocker = make_engine(url).connect()
            blocker.begin()  # a write transaction: BEGIN IMMEDIATE holds the lock
            blocker.exec_driver_sql("UPDATE subscriber SET name = 'x'")
            with pytest.raises(sa.exc.OperationalError, match="database is locked"):
                h.tick()
            blocker.rollback()
            blocker.close()
            assert h.deliveries() == [] and h.transport.attempts == []
            h.tick()
            assert [d["status"] for d in h.deliveries()] == ["sent"] and len(h.transport.sent) == 1
        finally:
            h.close()


def test_outcomes_whose_connection_the_server_just_dropped_are_committed_on_a_new_one(
    tmp_path: Path, project: Path
) -> None:
    """PostgreSQL ends the tick's connection while a message is being sent: its outcome is
    committed on a new connection, not lost, so no email goes out again when its lease ends."""
    from tests.support.databases import postgres_database
    from tests.support.outage import end_connections

    with postgres_database() as url:
        def script(message: Outgoing) -> Result:
            if message.rcpt_to == "bo@example.com":  # the second of the round: Ana's outcome is in
                assert end_connections(url) >= 1
            return Result(Outcome.SENT, 250, "ok")

        h = Harness(url, project, MONDAY, transport=MemoryTransport(script))
        try:
            for address in ("ana@example.com", "bo@example.com", "cy@example.com"):
                h.add(address)
            report = h.tick()  # it does not fail: Bo's outcome met the dropped connection, written anew
            assert report.attempted == 3
            assert [(d["status"], d["attempts"]) for d in h.deliveries()] == [("sent", 1)] * 3
            h.run_until(MONDAY + timedelta(hours=6))  # far past every lease
            copies = Counter(m.message_id for m in h.transport.sent)
            assert len(copies) >= 3 and set(copies.values()) == {1}  # nothing sent twice
            assert all(d["status"] == "sent" for d in h.deliveries())
        finally:
            h.close()


def test_a_queued_email_waits_while_its_funnel_file_is_missing_and_goes_out_when_it_is_back(
    db_url: str, project: Path
) -> None:
    h = Harness(db_url, project, MONDAY)
    try:
        h.add("ana@example.com")
        h.daemon.dispatcher.policy.limiter.rate = 0.0  # decide now, send later
        h.daemon.dispatcher.policy.limiter._tokens = 0
        h.tick()
        path = project / "sequences" / "minimal.yaml"
        moved = path.with_suffix(".bak")
        path.rename(moved)  # mid-deploy: the file is briefly gone
        h.daemon.dispatcher.policy.limiter.rate = 10_000.0
        time.sleep(0.01)
        h.tick()
        [delivery] = h.deliveries()
        assert (delivery["status"], delivery["attempts"]) == ("deferred", 0)
        assert delivery["next_attempt_at"] == MONDAY + timedelta(hours=1)
        assert h.transport.attempts == []
        moved.rename(path)
        h.clock.advance(timedelta(hours=1))
        h.tick()
        assert h.deliveries()[0]["status"] == "sent"
        assert h.sent_steps()[0] == "confirm"
    finally:
        h.close()


def test_an_address_suppressed_after_its_email_was_queued_is_not_mailed(db_url: str, project: Path) -> None:
    h = Harness(db_url, project, MONDAY)
    try:
        for address in ("keep@example.com", "gone@example.com", "last@example.com"):
            h.add(address)
        h.daemon.dispatcher.policy.limiter.rate = 0.0  # decide now, send later
        h.daemon.dispatcher.policy.limiter._tokens = 0
        h.tick()
        with h.db_engine.begin() as conn:  # a complaint elsewhere, a forget: the list says no
            queries.suppress(conn, "GONE@example.com", "complained", MONDAY)
        h.daemon.dispatcher.policy.limiter.rate = 10_000.0
        time.sleep(0.01)
        h.tick()
        statuses = {d["subscriber_id"]: d["status"] for d in h.deliveries()}
        assert sorted(statuses.values()) == ["sent", "sent", "suppressed"]
        assert [m.rcpt_to for m in h.transport.sent] == ["keep@example.com", "last@example.com"]  # in order
    finally:
        h.close()


def test_a_custom_field_one_subscriber_lacks_fails_only_their_email_and_says_what_to_write(
    db_url: str, project: Path
) -> None:
    # validate insists on a default for fields it can see; a computed field name gets past it.
    # (Not in the confirmation: that one never shows what a form post typed.)
    template = project / "templates" / "t" / "magnet.html"
    field = "{% if subscriber.fields %}<p>In {{ subscriber.fields['ci' ~ 'ty'] }}</p>{% endif %}"
    template.write_text(template.read_text().replace("{% endblock %}", field + "{% endblock %}"))
    h = Harness(db_url, project, MONDAY)
    try:
        h.add("ana@example.com", fields={"city": "Szeged"})
        h.add("bob@example.com", fields={"country": "HU"})
        for address in ("ana@example.com", "bob@example.com"):
            h.event(address, "confirmed", funnel="minimal")
        h.tick()
        status = {d["subscriber_id"]: (d["status"], d["last_reply"]) for d in h.deliveries()
                  if d["step"] == "magnet"}
        assert [s for s, _ in status.values()] == ["sent", "failed"]
        reply = status[2][1]
        assert reply.startswith("not sent: t/magnet.html: ") and "'city'" in reply
        assert "subscriber.fields.NAME | default('')" in reply
        assert "magnet" in h.sent_steps("ana@example.com")
        assert "magnet" not in h.sent_steps("bob@example.com")
    finally:
        h.close()


LINKED = (
    '<p><a class="button" href="https://shop.example/guide?utm=mail&amp;ref=1">Get the guide</a> '
    "<a href='http://blog.example/post'>http://blog.example/post</a> "
    '<a href="mailto:team@example.com">Write to us</a></p>'
)


def _linked_project(project: Path) -> Path:
    """The minimal project with web links in the magnet email and in the confirmation request."""
    templates = project / "templates" / "t"
    body = '{% extends "layout.html" %}{% block body %}<p>Hi {{ subscriber.first_name }}.</p>'
    (templates / "magnet.html").write_text(body + LINKED + "{% endblock %}")
    confirm = '<p><a href="{{ confirm_url }}">Yes, send me {{ magnet.title }}</a></p>'
    (templates / "confirm.html").write_text(body + confirm + LINKED + "{% endblock %}")
    return project


def _parts(message: Outgoing) -> tuple[EmailMessage, str, str]:
    parsed = message_from_bytes(message.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    html, text = parsed.get_body(("html",)), parsed.get_body(("plain",))
    assert html is not None and text is not None
    return parsed, html.get_content(), text.get_content()


def _verified(purpose: str, link: str) -> list[str] | None:
    """The values of a link's token, as the daemon's web side reads them at MONDAY."""
    return verify(SECRET, purpose, link.rsplit("/", 1)[1], MONDAY, timedelta(days=1))


def test_web_links_in_a_sent_email_count_clicks_and_lead_where_they_did(db_url: str, project: Path) -> None:
    h = Harness(db_url, _linked_project(project), MONDAY)
    try:
        h.add("ana@example.com", name="Ana")
        h.tick()
        h.event("ana@example.com", "confirmed")
        h.tick()
        sent = dict(zip(h.sent_steps(), h.transport.sent, strict=True))
        message_id = sent["magnet"].message_id
        parsed, html, text = _parts(sent["magnet"])
        links = [href for href in hrefs(html) if href.startswith(("http://", "https://"))]
        clicks = [href for href in links if href.startswith("https://funnel.example/c/")]
        assert [_verified("click", c) for c in clicks] == [
            [message_id, "https://shop.example/guide?utm=mail&ref=1"],
            [message_id, "http://blog.example/post"],
        ]
        [unsubscribe] = [href for href in links if href not in clicks]  # the daemon's own link
        assert unsubscribe == parsed["List-Unsubscribe"][1:-1]
        assert _verified("unsubscribe", unsubscribe) == [message_id]  # the whole Message-ID
        assert "mailto:team@example.com" in hrefs(html)
        for click in clicks:  # the text part shows each link once, counted
            assert text.count(click) == 1
        assert "shop.example" not in text and "blog.example" not in text
        [pixel] = images(html)
        assert html.index(pixel) < html.index("</body>")
        assert _verified("open", pixel) == [message_id]

        _, survey, _ = _parts(sent["survey"])  # answer links are signed already: left alone
        answers = [href for href in hrefs(survey) if "/a/" in href]
        assert [_verified("answer", a) for a in answers] == [
            [sent["survey"].message_id, "level", answer] for answer in ("new", "pro")]
    finally:
        h.close()


def test_the_confirmation_request_is_not_tracked(db_url: str, project: Path) -> None:
    h = Harness(db_url, _linked_project(project), MONDAY)
    try:
        h.add("ana@example.com")
        h.tick()
        [confirmation] = h.transport.sent
        _, html, text = _parts(confirmation)
        assert "https://shop.example/guide?utm=mail&ref=1" in hrefs(html) and images(html) == []
        assert "/c/" not in html + text
    finally:
        h.close()


def test_tracking_can_be_switched_off(db_url: str, project: Path) -> None:
    h = Harness(db_url, _linked_project(project), MONDAY)
    try:
        sender = h.daemon.dispatcher.sender
        sender.settings = dataclasses.replace(sender.settings, track_clicks=False, track_opens=False)
        h.add("ana@example.com")
        h.tick()
        h.event("ana@example.com", "confirmed")
        h.tick()
        _, html, text = _parts(h.transport.sent[1])
        assert "https://shop.example/guide?utm=mail&ref=1" in hrefs(html) and images(html) == []
        assert "/c/" not in html + text
    finally:
        h.close()


def test_an_email_sent_after_its_window_closed_still_counts_against_the_cap_on_the_day_it_goes_out(
    db_url: str, project: Path
) -> None:
    sequence = project / "sequences" / "minimal.yaml"
    sequence.write_text(sequence.read_text().replace("  spacing: 2d\n", "  spacing: 1d\n", 1))
    thursday = MONDAY + timedelta(days=3)
    h = Harness(db_url, project, thursday)
    try:
        h.add("ana@example.com", answers={"level": "new"})
        h.event("ana@example.com", "confirmed")
        h.tick()  # the magnet; e1 is due Friday 08:00
        late = thursday + timedelta(days=1, hours=2, minutes=59, seconds=59)  # Friday 10:59:59
        h.clock.at = late
        decide_due(h.db_engine, h.daemon.live.current, late, 200, lambda plan: "example.com")
        h.clock.at = late + timedelta(seconds=2)  # sent two seconds later: the window has closed
        asyncio.run(h.daemon.dispatcher.dispatch())
        h.run_until(thursday + timedelta(days=8))
        sent = {d["step"]: d["sent_at"] for d in h.deliveries() if d["sent_at"] is not None}
    finally:
        h.close()
    assert sent["e1"].date() == (MONDAY + timedelta(days=7)).date()  # waited for Monday's window
    assert sent["e2"].date() > sent["e1"].date()  # e2, due Saturday, does not join it: 1/day
