"""Per-domain rates and the warm-up, through a real SMTP server, on SQLite and PostgreSQL.

The daemon sends through aiosmtpd on loopback; what arrived is counted there by
Message-ID. The domain buckets run on a hand-moved clock, so nothing depends on how
fast the machine is.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine.config import parse_domain_rates, parse_schedule, parse_start
from engine.logs import LOGGER, setup_logging
from engine.mail.memory import MemoryTransport
from engine.mail.smtp import SmtpSettings, SmtpTransport
from engine.mail.transport import Outcome, Result
from engine.scheduler.throttle import DomainThrottle
from engine.scheduler.tick import TickReport
from engine.scheduler.warmup import Warmup
from engine.store.tables import SUBSCRIBER
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project
from tests.support.smtp_server import RecordingHandler, SmtpServer, running_smtp

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the minimal funnel's window: weekdays 08:00-11:00
WEDNESDAY = MONDAY + timedelta(days=2)  # the first nurture email (e1) is due then


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return minimal_project(tmp_path / "project")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp(RecordingHandler()) as server:
        yield server


class _Sending:
    """A harness daemon whose mail goes to a real SMTP server; every tick on one event loop."""

    def __init__(self, harness: Harness, server: SmtpServer) -> None:
        self.harness = harness
        self.server = server
        self.loop = asyncio.new_event_loop()  # pooled SMTP connections belong to one loop
        self.transport = SmtpTransport(
            SmtpSettings(server.host, server.port, tls="none", local_hostname="client.test", timeout=10.0)
        )
        harness.daemon.dispatcher.sender.transport = self.transport

    def tick(self) -> TickReport:
        return self.loop.run_until_complete(self.harness.daemon.ticker.tick())

    def received(self) -> Counter[str]:
        """Message-ID -> how many copies the SMTP server accepted."""
        ids = Counter[str]()
        for message in self.server.handler.received:
            for line in message.data.splitlines():
                if line.lower().startswith(b"message-id:"):
                    ids[line.split(b"<", 1)[1].split(b">", 1)[0].decode()] += 1
        return ids

    def close(self) -> None:
        self.loop.run_until_complete(self.transport.close())
        self.loop.close()
        self.harness.close()


@contextmanager
def _logged() -> Iterator[list[dict[str, Any]]]:
    """The engine's log lines written inside the block, parsed."""
    stream = io.StringIO()
    saved = LOGGER.handlers[:], LOGGER.level, LOGGER.propagate
    setup_logging("info", stream, wait=0)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        LOGGER.handlers[:], LOGGER.level, LOGGER.propagate = saved
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


def _by_address(harness: Harness, step: str) -> dict[str, dict[str, Any]]:
    with harness.db_engine.connect() as conn:
        emails = {row.id: row.email for row in conn.exec_driver_sql("SELECT id, email FROM subscriber")}
    return {emails[d["subscriber_id"]]: d for d in harness.deliveries() if d["step"] == step}


def _unsubscribed_elsewhere(harness: Harness, address: str) -> None:
    """`address` unsubscribes on another daemon: this one hears of it by its stop list only."""
    with harness.db_engine.connect() as conn:
        found = conn.execute(sa.select(SUBSCRIBER.c.id).where(SUBSCRIBER.c.email == address)).scalar_one()
    harness.daemon.dispatcher.recorder.stoplist.add([(found, "minimal")])


def test_a_421_holds_the_rest_of_its_domain_even_mail_composed_before_it_came(
    db_url: str, project: Path
) -> None:
    """Messages are composed a round ahead (four workers here): those of the 421's round to
    its domain are held at their turn, not tried; the other domain's mail goes."""
    transport = MemoryTransport(
        lambda m: Result(Outcome.RETRY, 421, "4.7.0 try later", domain_wide=True)
        if m.rcpt_to.endswith("@slow.example") else Result(Outcome.SENT, 250, "ok"))
    h = Harness(db_url, project, MONDAY, transport=transport)
    try:
        people = ["s0@slow.example", "o0@other.example", "s1@slow.example", "s2@slow.example",
                  "o1@other.example", "s3@slow.example", "s4@slow.example"]
        for i, address in enumerate(people):
            h.clock.at = MONDAY + timedelta(seconds=i)  # confirmations claimed in this order
            h.add(address)
        h.tick()
        assert [m.rcpt_to for m, _ in transport.attempts] == [
            "s0@slow.example", "o0@other.example", "o1@other.example"]
        [step] = {d["step"] for d in h.deliveries()}  # each one's confirmation
        by_address = _by_address(h, step)
        assert (by_address["s0@slow.example"]["status"], by_address["s0@slow.example"]["attempts"]) == (
            "deferred", 1)
        for held in ("s1@slow.example", "s2@slow.example", "s3@slow.example", "s4@slow.example"):
            d = by_address[held]
            assert (d["status"], d["attempts"]) == ("deferred", 0)
            assert d["last_reply"] == "slow.example answered 421; waiting"
        assert {by_address[a]["status"] for a in ("o0@other.example", "o1@other.example")} == {"sent"}
    finally:
        h.close()


def test_a_throttled_domain_waits_its_turn_while_other_domains_go_in_the_same_tick(
    db_url: str, project: Path, smtp: SmtpServer
) -> None:
    # A global rate of 13 a second is exactly what the first tick can send: mail held for
    # its domain must hand its share back, or the fast domain's would wait a tick.
    harness = Harness(db_url, project, MONDAY, send_rate=13, domain_rates="slow.test=1", batch_size=4)
    seconds = [0.0]  # the buckets' clock, moved by hand with the frozen one
    throttle, limiter = harness.daemon.dispatcher.policy.throttle, harness.daemon.dispatcher.policy.limiter
    assert throttle is not None
    throttle.clock = limiter.clock = lambda: seconds[0]
    limiter._at = 0.0
    sending = _Sending(harness, smtp)
    try:
        slow = [f"s{i}@slow.test" for i in range(5)]
        fast = [f"f{i:02}@fast.test" for i in range(12)]
        for address in slow + fast:  # the slow domain's mail comes first in every claim
            harness.add(address)
        with _logged() as logs:
            first = sending.tick()
        # Batches of 4: the first is all slow.test (one goes, three wait), and so on; the
        # fast domain's twelve all go in this tick all the same.
        assert (first.queued, first.attempted) == (17, 13)
        confirmations = _by_address(harness, "confirm")
        assert {a for a in fast if confirmations[a]["status"] == "sent"} == set(fast)
        assert confirmations["s0@slow.test"]["status"] == "sent"
        for i, address in enumerate(slow[1:], start=1):
            waiting = confirmations[address]
            assert (waiting["status"], waiting["attempts"]) == ("deferred", 0)
            assert waiting["next_attempt_at"] == MONDAY + timedelta(seconds=i)  # one a second
            assert waiting["last_reply"] == "throttled: slow.test takes 1 emails a second"
        assert sum(sending.received().values()) == 13
        throttled = [line for line in logs if line["action"] == "throttled"]
        assert [line["domains"] for line in throttled] == [{"slow.test": 3}, {"slow.test": 1}]  # per batch

        for i in range(1, 5):  # one a second: each tick sends the next slow one, and only it
            seconds[0] += 1.0
            harness.clock.advance(timedelta(seconds=1))
            assert sending.tick().attempted == 1
            assert _by_address(harness, "confirm")[slow[i]]["status"] == "sent"

        received = sending.received()
        confirmations = _by_address(harness, "confirm")
        assert set(received) == {d["message_id"] for d in confirmations.values()}
        assert set(received.values()) == {1}  # each message exactly once
        assert {(d["status"], d["attempts"]) for d in confirmations.values()} == {("sent", 1)}
        metrics = harness.daemon.metrics
        assert metrics is not None
        assert (metrics.sends.get("sent"), metrics.sends.get("throttled")) == (17, 4)
    finally:
        sending.close()


def test_warm_up_sends_the_days_volume_of_marketing_mail_and_all_transactional_mail(
    db_url: str, project: Path, smtp: SmtpServer
) -> None:
    harness = Harness(
        db_url, project, MONDAY, warmup_schedule="3,5", warmup_start=WEDNESDAY.date().isoformat()
    )
    sending = _Sending(harness, smtp)
    try:
        people = [f"p{i}@example.com" for i in range(10)]
        for address in people:
            harness.add(address, answers={"level": "new"})  # answered on the form: no survey email
        sending.tick()
        for address in people:
            harness.event(address, "confirmed")
        sending.tick()  # confirmations and magnets are transactional: all twenty went before day 1
        assert sum(sending.received().values()) == 20

        with _logged() as logs:
            while harness.clock.now() < WEDNESDAY:
                harness.clock.advance(timedelta(hours=1))
                sending.tick()
            # Day 1: ten e1 emails are due at 08:00, three go, seven wait for the next UTC day.
            e1 = _by_address(harness, "e1")
            assert Counter(d["status"] for d in e1.values()) == {"sent": 3, "deferred": 7}
            for held in (d for d in e1.values() if d["status"] == "deferred"):
                assert (held["attempts"], held["next_attempt_at"]) == (0, WEDNESDAY.replace(hour=0)
                                                                       + timedelta(days=1))
                assert held["last_reply"] == "waiting: warm-up day 1 allows 3 marketing emails; used up"
            late = [f"late{i}@example.com" for i in range(4)]
            for address in late:  # signed up after the day's volume was used up
                harness.add(address)
            sending.tick()
            confirmations = _by_address(harness, "confirm")
            assert [confirmations[a]["status"] for a in late] == ["sent"] * 4
            while harness.clock.now() < WEDNESDAY + timedelta(days=3):  # on to Saturday 08:00
                harness.clock.advance(timedelta(hours=1))
                sending.tick()

        e1 = _by_address(harness, "e1")
        sent_on = Counter(d["sent_at"].date() - WEDNESDAY.date() for d in e1.values())
        assert sent_on == {timedelta(days=0): 3, timedelta(days=1): 5, timedelta(days=2): 2}
        assert {(d["status"], d["attempts"]) for d in e1.values()} == {("sent", 1)}
        received = sending.received()
        sent = {d["message_id"] for d in harness.deliveries() if d["status"] == "sent"}
        assert set(received) == sent and set(received.values()) == {1}
        limits = [(line["day"], line["volume"]) for line in logs if line["action"] == "warmup_limit"]
        assert limits == [(1, 3), (2, 5)]  # once a day, not once per held email
    finally:
        sending.close()


def test_an_email_composing_raises_on_is_held_and_the_rest_of_the_batch_goes(
    db_url: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault of the engine's own while composing one email (not the files', not the data's)
    must not fail the tick for the whole batch: that email waits 10 minutes, logged."""
    h = Harness(db_url, project, MONDAY)
    sender = h.daemon.dispatcher.sender
    prepare = sender._prepare

    def faulty(row: Any, *args: Any) -> Any:
        if row["email"] == "bug@example.com":
            raise RuntimeError("a bug")
        return prepare(row, *args)

    try:
        for i, address in enumerate(["a@example.com", "bug@example.com", "c@example.com"]):
            h.clock.at = MONDAY + timedelta(seconds=i)
            h.add(address)
        monkeypatch.setattr(sender, "_prepare", faulty)
        with _logged() as logs:
            h.tick()
        assert sorted(m.rcpt_to for m in h.transport.sent) == ["a@example.com", "c@example.com"]
        [step] = {d["step"] for d in h.deliveries()}
        held = _by_address(h, step)["bug@example.com"]
        assert (held["status"], held["attempts"]) == ("deferred", 0)
        assert held["last_reply"] == "held: composing it failed: RuntimeError: a bug"
        assert held["next_attempt_at"] == h.clock.now() + timedelta(minutes=10)
        [line] = [line for line in logs if line["action"] == "compose_crashed"]
        assert (line["level"], line["error"]) == ("error", "RuntimeError: a bug")
        monkeypatch.setattr(sender, "_prepare", prepare)  # the fixed release
        h.clock.advance(timedelta(minutes=10))
        h.tick()
        assert sorted(m.rcpt_to for m in h.transport.sent) == [
            "a@example.com", "bug@example.com", "c@example.com"]
    finally:
        h.close()


def test_a_fault_that_hits_every_email_is_one_error_line_for_the_batch(
    db_url: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(db_url, project, MONDAY)
    sender = h.daemon.dispatcher.sender

    def faulty(row: Any, *args: Any) -> Any:
        raise RuntimeError(f"a bug at {row['id']}")

    try:
        for i in range(5):
            h.add(f"p{i}@example.com")
        monkeypatch.setattr(sender, "_prepare", faulty)
        with _logged() as logs:
            h.tick()
        assert h.transport.sent == []
        [line] = [line for line in logs if line["action"] == "compose_crashed"]
        assert line["held"] == 5 and line["error"].startswith("RuntimeError: a bug at ")
        assert {d["status"] for d in h.deliveries()} == {"deferred"}
    finally:
        h.close()


def test_a_message_stopped_after_it_was_composed_gives_its_warm_up_place_back(
    db_url: str, project: Path
) -> None:
    """Composed a round ahead (four workers), a message counts against the warm-up when composed;
    one the stop list then stops must not cost the day a place: the day's volume still goes."""
    h = Harness(db_url, project, MONDAY, warmup_schedule="3", warmup_start=WEDNESDAY.date().isoformat())
    try:
        people = [f"p{i}@example.com" for i in range(6)]
        for i, address in enumerate(people):
            h.clock.at = MONDAY + timedelta(seconds=i)
            h.add(address, answers={"level": "new"})
        h.tick()
        for address in people:
            h.event(address, "confirmed")
        h.tick()
        _unsubscribed_elsewhere(h, "p0@example.com")
        h.clock.at = WEDNESDAY + timedelta(minutes=5)  # every e1 is due
        h.tick()
        e1 = _by_address(h, "e1")
        assert e1["p0@example.com"]["status"] == "suppressed"
        assert Counter(d["status"] for d in e1.values()) == {"sent": 3, "deferred": 2, "suppressed": 1}
    finally:
        h.close()


def test_a_message_stopped_after_it_was_composed_gives_its_domain_slot_back(
    db_url: str, project: Path
) -> None:
    """A message takes its domain's slot when composed; stopped before it goes (here an
    unsubscribe heard by the stop list), it leaves the slot to the next message."""
    h = Harness(db_url, project, MONDAY, domain_rates="example.com=1")
    seconds = [0.0]  # the bucket's clock, moved by hand
    throttle = h.daemon.dispatcher.policy.throttle
    assert throttle is not None
    throttle.clock = lambda: seconds[0]
    try:
        for i, address in enumerate(("p0@example.com", "p1@example.com")):
            h.clock.at = MONDAY + timedelta(seconds=i)
            h.add(address, answers={"level": "new"})
        h.tick()  # the confirmations: one a second
        seconds[0] += 10.0
        h.clock.advance(timedelta(seconds=5))
        h.tick()
        assert {d["status"] for d in _by_address(h, "confirm").values()} == {"sent"}
        for address in ("p0@example.com", "p1@example.com"):
            h.event(address, "confirmed")
        for _ in range(3):  # the lead magnets, each in a tick of its own (the bucket's clock moves after)
            h.tick()
            seconds[0] += 10.0
            h.clock.advance(timedelta(minutes=1))
        assert {d["status"] for d in h.deliveries()} == {"sent"}
        _unsubscribed_elsewhere(h, "p0@example.com")
        h.clock.at = WEDNESDAY + timedelta(minutes=5)
        h.tick()  # p0's e1 takes the slot, p1's waits a second for the next; p0's is then stopped
        e1 = _by_address(h, "e1")
        assert (e1["p0@example.com"]["status"], e1["p1@example.com"]["status"]) == ("suppressed", "deferred")
        assert e1["p1@example.com"]["last_reply"] == "throttled: example.com takes 1 emails a second"
        h.clock.advance(timedelta(seconds=2))  # p1's turn; the bucket's clock has not moved
        h.tick()
        assert _by_address(h, "e1")["p1@example.com"]["status"] == "sent"  # the slot p0 left
    finally:
        h.close()


def test_the_bucket_refills_at_its_rate_and_promises_later_slots_in_order() -> None:
    now = [100.0]
    throttle = DomainThrottle(2.0, {"big.test": 0.0}, burst_seconds=1.0, clock=lambda: now[0])
    assert [throttle.take("a.test") for _ in range(2)] == [0.0, 0.0]  # a burst of one second's worth
    assert [throttle.take("a.test") for _ in range(3)] == [0.5, 1.0, 1.5]
    assert throttle.take("b.test") == 0.0  # another domain has its own bucket
    assert all(throttle.take("big.test") == 0.0 for _ in range(100))  # 0: no limit for it
    now[0] += 0.5
    assert throttle.take("a.test") == 0.0  # the first promised slot has come
    assert throttle.take("a.test") == 1.5  # behind the two still promised
    throttle.give_back("b.test")  # its message did not go: its token is there again
    assert [throttle.take("b.test") for _ in range(3)] == [0.0, 0.0, 0.5]
    throttle.give_back("big.test")  # no limit, no bucket: nothing to give back
    throttle.give_back("c.test")
    assert "c.test" not in throttle._buckets


def test_the_buckets_are_bounded_and_a_rate_at_the_global_one_never_binds() -> None:
    throttle = DomainThrottle(1.0, burst_seconds=1.0, clock=lambda: 0.0, max_domains=3)
    for i in range(10):
        throttle.take(f"d{i}.test")
    assert len(throttle) == 3
    capped = DomainThrottle(5.0, {"x.test": 20.0}, ceiling=20.0, clock=lambda: 0.0)
    assert capped.rate_for("x.test") == 0.0 and capped.rate_for("y.test") == 5.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gmail.com:10", "'gmail.com:10' is not DOMAIN=RATE; write for example gmail.com=10,outlook.com=3"),
        ("gmail.com=fast", "'gmail.com=fast': the rate must be a number of emails per second"),
        ("gmail.com=-1", "'gmail.com=-1': the rate must be 0 (no limit) or more"),
        ("a.com=1,A.com=2", "'a.com' is given twice"),
    ],
)
def test_domain_rates_that_cannot_be_read_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_domain_rates(text)
    assert str(error.value).startswith(message)


def test_domain_rates_and_the_warm_up_schedule_are_read_as_written() -> None:
    assert parse_domain_rates(" Gmail.com=10, outlook.com=0.5 ,") == {"gmail.com": 10.0, "outlook.com": 0.5}
    assert parse_schedule("50, 100,200") == (50, 100, 200)
    with pytest.raises(ValueError, match=r"'1.5' is not a whole number of emails; write the daily volumes"):
        parse_schedule("1,1.5")
    with pytest.raises(ValueError, match=r"'2026/03/02' is not a date; write the UTC day of warm-up day 1"):
        parse_start("2026/03/02")
    warmup = Warmup((3, 5), parse_start("2026-03-04"))
    assert [warmup.limit(WEDNESDAY + timedelta(days=d)) for d in (-2, 0, 1, 2)] == [3, 3, 5, None]
    assert Warmup.next_day(WEDNESDAY) == datetime(2026, 3, 5, tzinfo=UTC)


def test_a_batch_held_in_full_ends_the_ticks_claiming(db_url: str, project: Path, smtp: SmtpServer) -> None:
    """A throttled domain's backlog is not claimed and rewritten row by row in one tick."""
    harness = Harness(db_url, project, MONDAY, domain_rates="slow.test=1", batch_size=4)
    throttle = harness.daemon.dispatcher.policy.throttle
    assert throttle is not None
    throttle.clock = lambda: 0.0
    sending = _Sending(harness, smtp)
    try:
        for i in range(12):
            harness.add(f"s{i:02}@slow.test")
        assert sending.tick().attempted == 1
        statuses = Counter(d["status"] for d in _by_address(harness, "confirm").values())
        # The first batch sends one and holds three, the second holds all four and ends the
        # claiming: the last four were never touched.
        assert statuses == Counter({"sent": 1, "deferred": 7, "queued": 4})
        assert sum(sending.received().values()) == 1
    finally:
        sending.close()
