"""A few hundred simulated subscribers through the shipped funnels, acting as people do.

Used by tests/test_story.py ("done when" of the stats, guardrails and dashboard issue).
Every person has a part to play, fixed before the run, so the expected numbers follow
from the parts, not from what the engine did:

- `engaged`: confirms, answers the survey, clicks every marketing email within the hour;
- `buyer`: the same, and buys the course an hour after the first sales email;
- `storm`: engaged until `b-shoes`, then unsubscribes through that email's link;
- `idle`: confirms, then opens and clicks nothing (the survey's deadline picks the segment);
- `unconfirmed`: never clicks the confirmation link;
- `late`: engaged, but signs up ten days later, when `b-shoes` is already paused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from engine.mail.memory import MemoryTransport
from engine.store import sentmail
from engine.store.tables import DELIVERY
from engine.subscribers import inbound
from engine.subscribers.leads import Proof
from tests.scheduler.harness import Harness

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
PRICE = 149.0
STORMED = "b-shoes"
# Marathon: how many of each part (beginners unless named); camping-gear below.
MARATHON = {"engaged": 115, "buyer": 30, "storm": 25, "idle": 60, "unconfirmed": 10, "advanced": 10,
            "late": 20}
CAMPING = {"engaged": 30, "idle": 20}


@dataclass(frozen=True)
class Person:
    """One simulated subscriber and the part they play."""

    email: str
    funnel: str
    part: str
    answer: str | None  # the survey answer they click, None: they never answer


@dataclass
class Story:
    """The cast, and what happened to them while the clock ran."""

    people: dict[str, Person] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)  # message ids already acted on
    bought: set[str] = field(default_factory=set)
    clicks: Counter[str] = field(default_factory=Counter)  # step -> people who clicked it

    def cast(self, part: str, funnel: str) -> list[Person]:
        """Everyone playing `part` in `funnel`."""
        return [p for p in self.people.values() if p.part == part and p.funnel == funnel]


def cast() -> Story:
    """The people of the story; the late ones sign up later (`sign_up(..., late=True)`)."""
    story = Story()
    for part, count in MARATHON.items():
        answer = {"advanced": "racer", "idle": None, "unconfirmed": None}.get(part, "new")
        for i in range(count):
            email = f"{part}{i}@runners.example"
            role = "engaged" if part == "advanced" else part
            story.people[email] = Person(email, "first-marathon", role, answer)
    for part, count in CAMPING.items():
        for i in range(count):
            email = f"{part}{i}@campers.example"
            story.people[email] = Person(email, "camping-gear", part, None)
    return story


def sign_up(h: Harness, story: Story, late: bool = False) -> None:
    """Everyone of the first wave (or the late ones) signs up now, one minute apart."""
    for person in story.people.values():
        if (person.part == "late") != late:
            continue
        values = {"source": "facebook" if person.part in ("buyer", "idle") else "blog"}
        if person.funnel == "camping-gear":
            values["answers"] = {"level": "amateur", "frequency": "monthly"}  # on the form
        h.add(person.email, funnel=person.funnel, **values)


def act(h: Harness, story: Story, transport: MemoryTransport) -> None:
    """Everyone reacts to the email they got since the last call, as their part says."""
    fresh = [m for m in transport.sent if m.message_id not in story.done]
    if not fresh:
        return
    now = h.clock.now()
    with h.db_engine.begin() as conn:
        for message in fresh:
            story.done.add(message.message_id)
            person = story.people[message.rcpt_to]
            delivery = sentmail.delivery_by_message_id(conn, message.message_id)
            assert delivery is not None
            step = delivery["step"]
            plan = h.daemon.live.current.plans[person.funnel]
            if plan.confirmation is not None and step == plan.confirmation.id:
                if person.part != "unconfirmed":
                    inbound.confirm(conn, delivery, Proof("confirm", ip="192.0.2.1"), now)
                continue
            if person.part in ("idle", "unconfirmed"):
                continue
            if step == "survey":
                if person.answer:
                    inbound.answer(conn, delivery, "experience", person.answer, now)
                continue
            if not delivery["marketing"]:
                continue
            if person.part == "storm" and step == STORMED:
                inbound.unsubscribe(conn, delivery["subscriber_id"], person.funnel, now, message.message_id,
                                    came_from=(person.funnel, step))
                continue
            inbound.click(conn, delivery, f"https://firstmarathon.example/{step}", now)
            story.clicks[step] += 1
            is_sale = step in ("b-offer-open", "a-offer-open")
            if person.part == "buyer" and is_sale and person.email not in story.bought:
                story.bought.add(person.email)
                shop = inbound.ShopEvent(type="purchase", product="my-first-marathon", amount=PRICE,
                                         currency="USD", id=f"order-{person.email}")
                inbound.record_shop_event(conn, delivery["subscriber_id"], shop, now)


def run(h: Harness, story: Story, transport: MemoryTransport, until: datetime, late_at: datetime) -> None:
    """Tick every hour until `until`, people reacting after each tick; the late ones join at `late_at`."""
    joined = False
    while h.clock.now() < until:
        if not joined and h.clock.now() >= late_at:
            sign_up(h, story, late=True)
            joined = True
        h.tick()
        act(h, story, transport)
        h.clock.advance(HOUR)


def sent_counts(h: Harness) -> Counter[str]:
    """Step -> deliveries sent, straight from the table (the independent count)."""
    with h.db_engine.connect() as conn:
        rows = conn.execute(sa.select(DELIVERY.c.step, sa.func.count()).where(DELIVERY.c.status == "sent")
                            .group_by(DELIVERY.c.step))
        return Counter({step: int(n) for step, n in rows})
