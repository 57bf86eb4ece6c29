"""The numbers of `funnel stats` against a history known message by message.

A real daemon (Harness: real database, renderer and tick, a memory transport that
bounces one address at RCPT, a frozen clock) runs the minimal funnel while the test signs
people up, confirms, answers, opens, clicks, unsubscribes, complains and buys through the
same functions the web routes call (engine.subscribers.leads, engine.subscribers.inbound). Every number of the
report is then checked against what the test made happen, against the transport's own
record of what it took, and against plain COUNT queries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from engine.mail.memory import MemoryTransport
from engine.mail.transport import Outcome, Outgoing, Result
from engine.stats.broadcasts import read_report
from engine.store import queries, sentmail
from engine.store.tables import DELIVERY
from engine.subscribers import inbound
from engine.subscribers.leads import Proof
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the minimal funnel's window: weekdays 08:00-11:00
BOUNCING = "nobody@example.com"
NEW = ("a1", "a2", "a3", "a4", "a5")  # answer level=new: segment one
PRO = ("b1", "b2")  # answer level=pro: segment two
SILENT = ("c1", "c2")  # confirm, never answer: segment one when the survey's 3 days are up
UNCONFIRMED = ("d1", "d2")


def _bounce_one(message: Outgoing) -> Result:
    if message.rcpt_to == BOUNCING:
        return Result(Outcome.BOUNCED, 550, "5.1.1 no such user")
    return Result(Outcome.SENT, 250, "ok")


class Story:
    """The harness and the few moves the test makes, each in its own transaction like a web request."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.transport = harness.transport

    def now(self) -> datetime:
        """The daemon's time."""
        return self.harness.clock.now()

    def write(self, job: Callable[[Connection], Any]) -> Any:
        """Run `job` in one transaction now."""
        with self.harness.db_engine.begin() as conn:
            return job(conn)

    def id(self, who: str) -> int:
        """The subscriber id of `who` (a short name)."""
        with self.harness.db_engine.connect() as conn:
            row = queries.find_subscriber(conn, _address(who))
        assert row is not None
        return int(row["id"])

    def delivery(self, who: str, step: str) -> RowMapping:
        """The delivery of `step` to `who`, as a link token would name it."""
        with self.harness.db_engine.connect() as conn:
            message_id = conn.execute(
                sa.select(DELIVERY.c.message_id).where(DELIVERY.c.subscriber_id == self.id(who),
                                                       DELIVERY.c.step == step)
            ).scalar_one()
            found = sentmail.delivery_by_message_id(conn, message_id)
        assert found is not None
        return found

    def confirm(self, who: str) -> None:
        """`who` presses the button of the confirmation email."""
        email = self.delivery(who, "confirm")
        self.write(lambda conn: inbound.confirm(conn, email, Proof("confirm"), self.now()))

    def answer(self, who: str, choice: str) -> None:
        """`who` answers the survey's question through its email."""
        email = self.delivery(who, "survey")
        self.write(lambda conn: inbound.answer(conn, email, "level", choice, self.now()))

    def open(self, who: str, step: str) -> None:
        """`who`'s mail program fetches the pixel of `step`."""
        email = self.delivery(who, step)
        self.write(lambda conn: inbound.opened(conn, email, self.now()))

    def click(self, who: str, step: str, url: str) -> None:
        """`who` clicks `url` in `step`."""
        email = self.delivery(who, step)
        self.write(lambda conn: inbound.click(conn, email, url, self.now()))

    def unsubscribe(self, who: str, step: str) -> None:
        """`who` unsubscribes from the funnel through the link in `step`."""
        subscriber = self.id(who)
        self.write(lambda conn: inbound.unsubscribe(conn, subscriber, "minimal", self.now(), f"{who}-{step}",
                                                    came_from=("minimal", step)))

    def complain(self, who: str, step: str) -> None:
        """`who` marks `step` as spam; the provider's report names the message."""
        subscriber, email = self.id(who), self.delivery(who, step)
        self.write(lambda conn: inbound.complain(conn, subscriber, self.now(), f"fbl-{who}", delivery=email))

    def buy(self, who: str, order: str, product: str, amount: float, currency: str) -> None:
        """The shop reports `who`'s purchase (POST /api/events does the same)."""
        subscriber = self.id(who)
        shop = inbound.ShopEvent("purchase", product=product, amount=amount, currency=currency, id=order)
        self.write(lambda conn: inbound.record_shop_event(conn, subscriber, shop, self.now()))

    def got(self, who: str, step: str) -> bool:
        """Whether the transport took `step` for `who`."""
        return step in self.harness.sent_steps(_address(who))

    def tick_until(self, done: Callable[[], bool], every: timedelta = timedelta(hours=1)) -> None:
        """Tick and advance the clock until `done` (at most 30 days)."""
        limit = self.now() + timedelta(days=30)
        while not done():
            assert self.now() < limit, "the funnel did not get there in 30 days"
            self.harness.tick()
            if not done():
                self.harness.clock.advance(every)

    def later(self, minutes: int = 1) -> None:
        """Let a little time pass, so that events have distinct times."""
        self.harness.clock.advance(timedelta(minutes=minutes))


def _address(who: str) -> str:
    return BOUNCING if who == "x1" else f"{who}@example.com"


@pytest.fixture
def story(db_url: str, tmp_path: Path) -> Iterator[Story]:
    harness = Harness(db_url, minimal_project(tmp_path / "project"), MONDAY,
                      transport=MemoryTransport(_bounce_one))
    try:
        yield Story(harness)
    finally:
        harness.close()


def _play(story: Story) -> datetime:
    """The known history; returns when the second (late) cohort signed up."""
    h = story.harness
    for who in NEW + SILENT:
        h.add(_address(who), source="form-a")
    for who in PRO:
        h.add(_address(who), source="form-b", utm={"utm_source": "news"})
    for who in UNCONFIRMED:
        h.add(_address(who), source="form-b")
    h.add(BOUNCING)
    h.tick()  # 12 confirmation emails; x1's bounces
    story.later()
    for who in NEW + PRO + SILENT:
        story.confirm(who)
    story.later()
    h.tick()  # the magnet and the survey for the 9 who confirmed
    story.later()
    story.answer("a1", "pro")
    story.later()  # a1 changes her mind: her latest answer counts
    for who in NEW:
        story.answer(who, "new")
    for who in PRO:
        story.answer(who, "pro")
    story.tick_until(lambda: all(story.got(w, "e1") for w in NEW + SILENT))

    # What people do with e1: 4 open (a1 twice), 3 click (a1 two links), c2 unsubscribes, c1 complains.
    story.later()
    for who in ("a1", "a2", "a3", "a4", "a1"):
        story.open(who, "e1")
    for who, url in (("a1", "https://example.com/one"), ("a1", "https://example.com/two"),
                     ("a2", "https://example.com/one"), ("a3", "https://example.com/one")):
        story.click(who, "e1", url)
    story.unsubscribe("c2", "e1")
    story.complain("c1", "e1")

    # a1 and a2 buy after the first sales email (it ends their sales path); b1 buys the pro kit.
    story.tick_until(lambda: story.got("a1", "o1") and story.got("a2", "o1"), every=timedelta(hours=4))
    story.later()
    story.buy("a1", "order-1", "course", 49.5, "eur")
    story.buy("a2", "order-2", "book", 10.25, "EUR")
    story.tick_until(lambda: story.got("b1", "o3"), every=timedelta(hours=4))
    story.later()
    story.buy("b1", "order-3", "pro-kit", 99.0, "USD")

    # A second cohort, for --since: late1 confirms and answers, late2 never confirms.
    story.tick_until(lambda: story.now().weekday() == 0 and story.now().hour == 8)
    late = story.now()
    for who in ("late1", "late2"):
        h.add(_address(who), source="late-form")
    h.tick()
    story.later()
    story.confirm("late1")
    h.tick()
    story.later()
    story.answer("late1", "new")
    h.run_until(late + timedelta(days=45), every=timedelta(hours=4))
    return late


def _stages(funnel: dict[str, Any]) -> dict[str, tuple[int, float | None]]:
    return {s["stage"]: (s["count"], s["conversion"]) for s in funnel["stages"]}


def _steps(funnel: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in funnel["steps"]}


def test_every_number_is_what_happened(story: Story) -> None:
    late = _play(story)
    plans = story.harness.daemon.live.current.plans
    end = story.now()
    report = read_report(story.harness.db_engine, plans, now=end)
    assert (report["generated_at"], report["since"]) == (end.isoformat(), None)
    [funnel] = report["funnels"]
    assert (funnel["funnel"], funnel["name"]) == ("minimal", "Minimal funnel")

    # 14 signups (12, then 2); 10 confirmed; 8 answered; everyone confirmed but the two who left reached
    # nurture and sales (c1, c2 left in nurture); a1, a2 and b1 bought and became customers.
    assert _stages(funnel) == {
        "signed_up": (14, None), "confirmed": (10, round(10 / 14, 6)), "answered": (8, 0.8),
        "nurture": (10, 1.0), "sales": (8, 0.8), "purchased": (3, 0.3), "customers": (3, 1.0),
    }
    assert (funnel["winback"], funnel["sunset"], funnel["unsubscribed"]) == (0, 0, 1)
    assert [(a["question"], a["answer"], a["label"], a["count"]) for a in funnel["answers"]] == [
        ("level", "new", "New", 6), ("level", "pro", "Pro", 2),
    ]
    segments = {s["segment"]: (s["name"], [st["count"] for st in s["stages"]]) for s in funnel["segments"]}
    assert segments == {
        "one": ("Segment one", [8, 8, 6, 8, 6, 2, 2]),
        "two": ("Segment two", [2, 2, 2, 2, 2, 1, 1]),
        None: ("no segment yet", [4, 0, 0, 0, 0, 0, 0]),  # d1, d2, x1, late2
    }
    assert funnel["sources"] == [
        {"source": "form-a", "utm_source": None, "signed_up": 7, "confirmed": 7, "purchased": 2,
         "customers": 2, "revenue": {"EUR": 59.75}},
        {"source": "form-b", "utm_source": None, "signed_up": 2, "confirmed": 0, "purchased": 0,
         "customers": 0, "revenue": {}},
        {"source": "form-b", "utm_source": "news", "signed_up": 2, "confirmed": 2, "purchased": 1,
         "customers": 1, "revenue": {"USD": 99.0}},
        {"source": "late-form", "utm_source": None, "signed_up": 2, "confirmed": 1, "purchased": 0,
         "customers": 0, "revenue": {}},
        {"source": None, "utm_source": None, "signed_up": 1, "confirmed": 0, "purchased": 0,
         "customers": 0, "revenue": {}},
    ]
    assert (funnel["revenue"], funnel["purchases"]) == ({"EUR": 59.75, "USD": 99.0}, 3)
    assert funnel["revenue_per_subscriber"] == {"EUR": round(59.75 / 14, 6), "USD": round(99.0 / 14, 6)}
    # Per product (minimal has no products: map, so each starts the buyer's own segment's path).
    assert [(p["product"], p["customers"], p["purchases"], p["revenue"], p["customer_path"])
            for p in funnel["products"]] == [
        ("book", 1, 1, {"EUR": 10.25}, None), ("course", 1, 1, {"EUR": 49.5}, None),
        ("pro-kit", 1, 1, {"USD": 99.0}, None),
    ]
    assert funnel["paused"] == []

    steps = _steps(funnel)
    plan = plans["minimal"]
    assert list(steps) == [e.id for e in plan.emails()]
    confirm = steps["confirm"]
    assert (confirm["sent"], confirm["delivered"], confirm["bounced"], confirm["pending"]) == (14, 13, 1, 0)
    assert (confirm["path"], confirm["role"], confirm["bounced_rate"]) == ("confirm", "transactional",
                                                                           round(1 / 14, 6))
    assert (steps["magnet"]["sent"], steps["survey"]["sent"]) == (10, 10)
    e1 = steps["e1"]
    assert {k: e1[k] for k in ("sent", "delivered", "opened", "clicked", "unsubscribed", "complained")} == {
        "sent": 8, "delivered": 8, "opened": 4, "clicked": 3, "unsubscribed": 1, "complained": 1,
    }
    assert (e1["clicked_rate"], e1["segment"], e1["path"]) == (0.375, "one", "nurture")
    assert (e1["paused"], e1["paused_detail"]) == (False, None)
    # After e1: a1-a5 and late1 walk on; the sales path: a1 and a2 bought after o1, so o2 went to 4.
    assert [steps[s]["sent"] for s in ("e2", "e5", "o1", "o2", "c1", "c2")] == [6, 6, 6, 4, 2, 2]
    assert [steps[s]["sent"] for s in ("e6", "s2", "o3", "c6")] == [2, 2, 2, 1]
    for name, step in steps.items():
        if name not in ("e1",):
            assert step["opened"] == step["clicked"] == step["unsubscribed"] == step["complained"] == 0, name

    # The transport's own record: what it took, and what it was refused, per step.
    by_message = {d["message_id"]: d["step"] for d in story.harness.deliveries()}
    taken = Counter(by_message[m.message_id] for m in story.transport.sent)
    refused = Counter(by_message[m.message_id] for m, r in story.transport.attempts
                      if r.outcome is Outcome.BOUNCED)
    assert {s: step["delivered"] for s, step in steps.items() if step["delivered"]} == dict(taken)
    assert {s: step["bounced"] for s, step in steps.items() if step["bounced"]} == dict(refused)
    assert sum(s["sent"] for s in steps.values()) == len(story.transport.attempts)

    # The cohort that signed up at `late`: its stages, and mail and events from then on.
    since = read_report(story.harness.db_engine, plans, "minimal", late, now=end)
    assert since["since"] == late.isoformat()
    [recent] = since["funnels"]
    assert [(s["stage"], s["count"]) for s in recent["stages"]] == [
        ("signed_up", 2), ("confirmed", 1), ("answered", 1), ("nurture", 1), ("sales", 1), ("purchased", 0),
        ("customers", 0),
    ]
    assert [(a["answer"], a["count"]) for a in recent["answers"]] == [("new", 1), ("pro", 0)]
    with story.harness.db_engine.connect() as conn:
        sent_since = dict(conn.execute(
            sa.select(DELIVERY.c.step, sa.func.count()).where(
                DELIVERY.c.created_at >= late, DELIVERY.c.status.in_(("sent", "bounced", "unknown"))
            ).group_by(DELIVERY.c.step)
        ).all())
    assert {s["step"]: s["sent"] for s in recent["steps"] if s["sent"]} == sent_since
    assert _steps(recent)["confirm"]["sent"] == 2
    assert _steps(recent)["e1"]["opened"] == 0  # e1's opens happened before `late`
