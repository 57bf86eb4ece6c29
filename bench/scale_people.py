"""A made-up list of runners in first-marathon, as rows the engine would have written.

Each subscriber walks the shipped funnel from a signup some days ago up to now: the
confirmation email, the checklist, the survey (answered or not), the segment's nurture
emails, the sales path, a purchase and the customer path, or win-back and sunset for
those who stopped reading, with opens, clicks, unsubscribes, complaints and bounces on
the way. The rows carry what the engine's own writers put in them (engine/store/signups.py,
engine/scheduler/decide.py and recording.py, engine/subscribers/inbound.py,
engine/store/milestones.py): the same statuses, external ids, stages, `done` lists and
release ids. Times are whole seconds since the epoch; `bench.scale_load` writes them out.

The shares below are made up but kept inside what a healthy list shows, and below the
funnel's guardrails (2% unsubscribes, 5% bounces, 0.1% complaints per email), so that a
daemon started on the database pauses nothing.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.project.folder import Project
from engine.sequences.plan import EmailStep, Plan

FUNNEL = "first-marathon"
DAY = 86_400
HOUR = 3_600
MID_DOMAIN = "firstmarathon.example"  # Message-IDs end in the sender's domain, as by default
# Signups are spread over the last months, most of them recent (a growing list, and the
# launch's campaigns): 86% within days (mean 5), the rest over the 200 days before. A
# subscriber then has ~9.5 deliveries, events and milestones, as in issue 14's database.
RECENT_SHARE = 0.86
RECENT_MEAN_DAYS = 5.0
MAX_AGE_DAYS = 200.0
# Nothing is due for the first hours after generation: a daemon started on it is idle.
IDLE_SECONDS = 6 * HOUR

DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "gmx.de", "proton.me",
           "runclub.example", "mail.example")
FIRST_NAMES = ("Ann", "Ben", "Dóra", "Eva", "Jon", "Kai", "Lena", "Maya", "Omar", "Priya", "Sam", "Yuki")
LAST_NAMES = ("Lee", "Kiss", "Novak", "Smith", "Garcia", "Tanaka", "Müller", "Okafor")
TIMEZONES = ("UTC", "Europe/Budapest", "America/New_York", "America/Los_Angeles", "Europe/London",
             "Asia/Tokyo", "Australia/Sydney")
SOURCES = (("checklist-form", "instagram", "social"), ("checklist-form", "google", "cpc"),
           ("checklist-form", None, None), ("blog-footer", "newsletter", "email"), ("import", None, None))
WORDING = ("Send me the checklist and emails about training for a marathon. "
           "I can unsubscribe with one click in any email.")
USER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
OK_REPLY = "2.0.0 Ok: queued"
PRICES = {"my-first-marathon": (149.0, 119.2), "sub-3-marathon": (249.0, 199.2)}
# Below the funnel's guardrails (2% unsubscribes, 5% bounces, 0.1% complaints), with room:
# a report that would take its email's share over this is not made.
CEILINGS = {"unsubscribe": 0.016, "bounce": 0.04, "complaint": 0.0008}
ADDONS = {"beginner": ("race-day-fueling", 29.0), "advanced": ("race-plan-review", 79.0)}


@dataclass
class Rows:
    """Rows for each table, as tuples in `bench.scale_load.COLUMNS` order."""

    subscriber: list[tuple[Any, ...]] = field(default_factory=list)
    consent: list[tuple[Any, ...]] = field(default_factory=list)
    enrollment: list[tuple[Any, ...]] = field(default_factory=list)
    delivery: list[tuple[Any, ...]] = field(default_factory=list)
    event: list[tuple[Any, ...]] = field(default_factory=list)
    milestone: list[tuple[Any, ...]] = field(default_factory=list)
    suppression: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class Release:
    """A release row: the files a daemon served from `went_live_at`."""

    id: str
    hash: str
    went_live_at: int


def first_marathon(root: Path) -> Plan:
    """The shipped first-marathon plan (sequences/ and templates/ under `root`)."""
    for loaded in Project(root).check().funnels:
        if loaded.plan.funnel == FUNNEL:
            return loaded.plan
    raise SystemExit(f"no {FUNNEL} funnel under {root}/sequences: run from the repository root")


def releases(now: int) -> tuple[Release, Release]:
    """Two releases: the files of long ago, and an edit that went live ten days before `now`."""
    made = []
    for went_live in (now - 400 * DAY, now - 10 * DAY):
        digest = hashlib.sha256(f"release {went_live}".encode()).hexdigest()
        made.append(Release(digest[:12], digest, went_live))
    return made[0], made[1]


class Population:
    """Makes the rows of subscribers `first..last`, deterministically from the seed."""

    def __init__(self, plan: Plan, now: int, seed: int = 14) -> None:
        self.plan = plan
        self.now = now
        self.seed = seed
        self.releases = releases(now)
        assert plan.survey is not None and plan.winback is not None
        self.survey = plan.survey
        self.winback = plan.winback.path.steps
        self.magnet = plan.magnets[0]
        assert plan.confirmation is not None
        self.confirm: EmailStep = plan.confirmation
        self.winback_after = plan.winback.after.total_seconds()
        self.winback_sunset = plan.winback.sunset_after.total_seconds()
        # Per email: how many were sent, and reports against it (unsubscribes, complaints, bounces).
        self.sent: Counter[str] = Counter()
        self.reports: Counter[tuple[str, str]] = Counter()

    def may_report(self, step: str, kind: str) -> bool:
        """Whether one more `kind` against `step` stays under its ceiling; counts it if so."""
        if self.reports[step, kind] + 1 > CEILINGS[kind] * self.sent[step]:
            return False
        self.reports[step, kind] += 1
        return True

    def rows(self, first: int, last: int, ids: Ids) -> Rows:
        """The rows of subscribers first..last (ids from 1); other tables' ids come from `ids`."""
        rng = random.Random(self.seed * 1_000_003 + first)
        rows = Rows()
        for number in range(first, last + 1):
            Walk(self, rng, number, ids, rows).run()
        return rows


@dataclass
class Ids:
    """The next id of each table whose ids are not the subscriber's number."""

    consent: int = 1
    delivery: int = 1
    event: int = 1
    milestone: int = 1
    suppression: int = 1
    order: int = 1

    def take(self, table: str) -> int:
        """The next id of `table`."""
        value: int = getattr(self, table)
        setattr(self, table, value + 1)
        return value


class Walk:
    """One subscriber's way through the funnel, written into `rows` as it goes."""

    def __init__(self, pop: Population, rng: random.Random, number: int, ids: Ids, rows: Rows) -> None:
        self.pop, self.rng, self.id, self.ids, self.rows = pop, rng, number, ids, rows
        self.now = pop.now
        if rng.random() < RECENT_SHARE:
            age = min(rng.expovariate(1 / RECENT_MEAN_DAYS), MAX_AGE_DAYS)
        else:
            age = rng.uniform(14, MAX_AGE_DAYS)
        self.signup = self.now - int(age * DAY) - rng.randrange(60)
        self.email = f"runner{number}@{rng.choice(DOMAINS)}"
        self.status = "active"
        self.updated = self.signup
        # Engaged readers open and click; the rest stop reading and meet the win-back.
        self.engaged = rng.random() < 0.62
        # The enrollment as it stands.
        self.stage: str = "confirming"
        self.since = self.signup
        self.segment: str | None = None
        self.step: str | None = None
        self.last_sent: int | None = None
        self.deadline: int | None = None
        self.done: list[list[Any]] = []
        self.reason: str | None = None
        self.resume: tuple[str, str | None] | None = None
        self.next_run: int | None = None
        self.ended = False
        self.pending = False  # an email decided and not yet sent: the walk stops there
        self._entered: set[str] = set()
        self.bought: str | None = None

    # --- the walk -------------------------------------------------------------------------

    def run(self) -> None:
        """Walk from the signup to now, then write the subscriber and the enrollment."""
        rng, pop = self.rng, self.pop
        self.consent("signup", self.signup)
        confirm = self.send(pop.confirm, self.signup + rng.randrange(1, 20))
        if confirm is None:
            return self.finish()
        if rng.random() < 0.012:  # the address does not exist: a 5xx at RCPT
            self.bounce_at_rcpt(confirm)
            return self.finish()
        confirmed_at = self.signup + int(rng.expovariate(1 / (2 * HOUR))) + 30
        if rng.random() > 0.74 or confirmed_at > self.now:
            self.next_run = None  # waits for the click; only the event wakes it
            return self.finish()
        self.event("confirmed", confirmed_at, external_id=f"confirm:{confirm}")
        self.consent("confirm", confirmed_at)
        at = confirmed_at + rng.randrange(1, 3)
        self.enter(at, "confirming", "magnet")
        self.send(pop.magnet.email, at)
        self.enter(at, "survey")
        self.stage, self.since = "survey", at
        self.run_survey(at + int(pop.survey.after.total_seconds()))
        self.finish()

    def run_survey(self, at: int) -> None:
        if self.wait_until(at):
            return
        survey = self.pop.survey
        self.send(survey.email, at)
        self.enter(at, "answering")
        self.stage, self.since, self.deadline = "answering", at, at + int(survey.wait.total_seconds())
        if self.stopped:
            return
        segment = survey.default_segment
        answered_at = at + int(self.rng.expovariate(1 / (8 * HOUR)))
        if self.rng.random() < 0.58 and answered_at < self.deadline:
            if answered_at > self.now:
                return
            answer = self.rng.choices(("new", "regular", "racer"), (45, 30, 25))[0]
            self.event("answer", answered_at, question="experience", answer=answer)
            segment = "advanced" if answer == "racer" else "beginner"
            start = answered_at + self.rng.randrange(1, 60)
        else:
            start = self.deadline
            if self.wait_until(start):
                return
        self.segment, self.deadline = segment, None
        self.walk_path("nurture", start)

    def walk_path(self, kind: str, start: int) -> None:
        """Nurture, then sales; a purchase on the way starts the customer path."""
        if self.wait_until(start):
            return None
        segment = self.pop.plan.segment(self.segment or "beginner")
        assert segment is not None
        steps = {"nurture": segment.nurture, "sales": segment.sales, "customer": segment.customer}[kind].steps
        self.enter(start, kind)
        self.stage, self.since, self.last_sent = kind, start, None
        at = start
        idle_from = start
        index = self.position(steps)
        while index < len(steps):
            email = steps[index]
            gap = email.after.total_seconds() if email.after else 2 * DAY
            at += int(gap) + (self.rng.randrange(0, 20 * HOUR) if kind != "customer" or index else 0)
            if kind != "customer" and not self.engaged and at - idle_from > self.pop.winback_after:
                if self.walk_winback(at, kind, email.id):
                    return
                idle_from = self.since
                at = self.since
            self.step = email.id
            if self.wait_until(at):
                return
            if self.send(email, at) is None or self.stopped:
                return None
            index += 1
            self.step = steps[index].id if index < len(steps) else None
            self.last_sent = at
            bought = self.maybe_buy(email, at, kind)
            if bought is not None and kind != "customer":
                return self.walk_path("customer", bought)
        if kind == "nurture":
            return self.walk_path("sales", (self.last_sent or at) + 2 * DAY)
        if self.wait_until(at + DAY):
            return None
        if kind == "sales":
            self.stage, self.step, self.last_sent = "sales_done", None, None
            self.enter(at + DAY, "sales_done")
            self.next_run = None
            return None
        self.end(at + DAY, "customer path finished")
        return None

    def position(self, steps: tuple[EmailStep, ...]) -> int:
        """Where in `steps` to go on from: after the last one sent (back from win-back)."""
        sent = {d[0] for d in self.done}
        index = 0
        while index < len(steps) and steps[index].id in sent:
            index += 1
        return index

    def walk_winback(self, at: int, kind: str, step: str) -> bool:
        """Three idle weeks: the win-back emails; True when it ends in sunset (or now)."""
        self.resume = (kind, step)
        self.enter(at, "winback")
        self.stage, self.since, self.step, self.last_sent = "winback", at, self.pop.winback[0].id, None
        for index, email in enumerate(self.pop.winback):
            sent_at = at + index * 3 * DAY + self.rng.randrange(0, 10 * HOUR)
            if self.wait_until(sent_at):
                return True
            if self.send(email, sent_at) is None or self.stopped:
                return True
            self.last_sent = sent_at
            self.step = self.pop.winback[index + 1].id if index + 1 < len(self.pop.winback) else None
            if self.rng.random() < 0.14:  # a click brings them back where they were
                back = sent_at + self.rng.randrange(HOUR, DAY)
                if back > self.now:
                    return self.wait_until(back)
                self.stage, self.since, self.resume, self.engaged = kind, back, None, True
                self.last_sent = None
                return False
        sunset = (self.last_sent or at) + int(self.pop.winback_sunset)
        if self.wait_until(sunset):
            return True
        self.enter(sunset, "sunset")
        self.stage, self.since, self.step = "sunset", sunset, None
        self.reason = "sunset: no click within 7d of the win-back emails"
        self.next_run = None
        return True

    def maybe_buy(self, email: EmailStep, at: int, kind: str) -> int | None:
        """A purchase after a sale email (more likely near the end of sales): when, or None."""
        if email.role.value != "sale" and kind != "sales":
            return None
        chance = {"nurture": 0.02, "sales": 0.045, "customer": 0.08}[kind] * (1.6 if self.engaged else 0.4)
        if email.last_chance:
            chance *= 1.8
        if self.rng.random() >= chance:
            return None
        bought = at + self.rng.randrange(10 * 60, 2 * DAY)
        if bought > self.now:
            return None
        if kind == "customer":
            product, amount = ADDONS[self.segment or "beginner"]
        else:
            product = "sub-3-marathon" if self.segment == "advanced" else "my-first-marathon"
            amount = PRICES[product][1 if email.last_chance else 0]
        self.event("purchase", bought, funnel=None, product=product, amount=amount, currency="USD",
                   external_id=f"api:order-{self.ids.take('order')}")
        self.bought = product
        return bought

    # --- what each step writes -----------------------------------------------------------

    def wait_until(self, at: int) -> bool:
        """True when `at` is still to come: the enrollment waits for it (never within the idle hours)."""
        if at <= self.now:
            return False
        self.next_run = max(at, self.now + IDLE_SECONDS + self.rng.randrange(HOUR))
        return True

    def send(self, email: EmailStep, at: int) -> str | None:
        """A delivery sent at `at`, its opens and clicks and what they lead to; its Message-ID."""
        rng = self.rng
        if self.status != "active":
            return None
        message_id = f"{rng.getrandbits(128):032x}@{MID_DOMAIN}"
        did = self.ids.take("delivery")
        marketing = email.marketing
        self.done.append([email.id, email.path.value, email.role.value, False])
        pending = rng.random() < 0.02 and email.path.value not in ("confirm", "magnet")
        release = self.pop.releases[1 if at >= self.pop.releases[1].went_live_at else 0].id
        if pending:  # decided, waiting for its send window (or a 4xx retry): due after the idle hours
            due = self.now + IDLE_SECONDS + rng.randrange(HOUR, 20 * HOUR)
            deferred = rng.random() < 0.1
            self.rows.delivery.append((
                did, self.enroll_id, self.id, FUNNEL, email.id, email.segment, marketing, message_id,
                "deferred" if deferred else "queued", 1 if deferred else 0, 451 if deferred else None,
                "4.7.1 Try again later" if deferred else None, at, due, None, at if deferred else None,
                at, release if deferred else None))
            self.next_run, self.pending = None, True
            self.last_sent = at
            return message_id
        sent_at = at + rng.randrange(1, 30)
        self.rows.delivery.append((
            did, self.enroll_id, self.id, FUNNEL, email.id, email.segment, marketing, message_id, "sent", 1,
            250, OK_REPLY, at, None, sent_at, sent_at, sent_at, release))
        self.updated = max(self.updated, sent_at)
        if not marketing:
            return message_id
        self.reactions(email, message_id, did, sent_at)
        return message_id

    def reactions(self, email: EmailStep, message_id: str, did: int, sent_at: int) -> None:
        rng = self.rng
        self.pop.sent[email.id] += 1
        opens, clicks = (0.48, 0.11) if self.engaged else (0.06, 0.006)
        if rng.random() < opens:
            self.event("open", sent_at + rng.randrange(60, DAY), step=email.id,
                       external_id=f"open:{message_id}")
            if rng.random() < clicks / opens:
                url = f"https://{MID_DOMAIN}/{email.template.removesuffix('.html')}"
                digest = hashlib.sha256(url.encode()).hexdigest()[:32]
                self.event("click", sent_at + rng.randrange(120, DAY), step=email.id, data={"url": url},
                           external_id=f"click:{message_id}:{digest}")
        roll = rng.random()
        if roll < 0.0045 and self.pop.may_report(email.id, "unsubscribe"):
            at = sent_at + rng.randrange(60, 2 * DAY)
            every = rng.random() < 0.4
            self.event("unsubscribe", at, step=email.id,
                       external_id=f"unsubscribe:{message_id}:{'*' if every else FUNNEL}:{FUNNEL}")
            if every:
                self.status = "unsubscribed"
                self.updated = at
            self.end(at, "unsubscribed")
        elif 0.0045 <= roll < 0.0047 and self.pop.may_report(email.id, "complaint"):
            self.block("complaint", "complained", sent_at + rng.randrange(60, DAY), email.id, message_id)
        elif 0.0047 <= roll < 0.0052 and self.pop.may_report(email.id, "bounce"):
            at = sent_at + rng.randrange(60, HOUR)
            self.block("bounce", "bounced", at, email.id, message_id,
                       {"detail": "550 5.1.1 mailbox unavailable"})
            # mark_bounced_later: the delivery itself becomes bounced
            row = self.rows.delivery[-1]
            self.rows.delivery[-1] = (*row[:8], "bounced", row[9], 550, "550 5.1.1 mailbox unavailable",
                                      *row[12:16], at, row[17])
            assert row[0] == did

    def bounce_at_rcpt(self, message_id: str) -> None:
        row = self.rows.delivery[-1]
        reply = f"5.1.1 <{self.email}>: Recipient address rejected: User unknown"
        self.rows.delivery[-1] = (*row[:8], "bounced", 1, 550, reply, row[12], None, None, *row[15:])
        self.status, self.updated = "bounced", row[16]
        self.suppress("bounced", row[16])
        self.stage, self.reason, self.ended, self.step = "ended", "the address bounced", True, None

    def block(self, kind: str, status: str, at: int, step: str, message_id: str,
              data: dict[str, Any] | None = None) -> None:
        """A complaint or a later bounce: suppressed, the enrollment ended without a milestone."""
        self.event(kind, at, step=step, external_id=f"{kind}:{message_id}", data=data or {})
        self.status, self.updated = status, at
        self.suppress(status, at)
        self.stage, self.reason, self.ended, self.step, self.next_run = (
            "ended", f"the address {status}", True, None, None)

    def suppress(self, reason: str, at: int) -> None:
        digest = hashlib.sha256(self.email.lower().encode()).hexdigest()
        self.rows.suppression.append((self.ids.take("suppression"), digest, reason, None, at))

    def end(self, at: int, reason: str) -> None:
        self.enter(at, "ended")
        self.stage, self.reason, self.ended, self.step, self.next_run = "ended", reason, True, None, None
        self.resume = None

    def enter(self, at: int, *stages: str) -> None:
        """Milestones: the first time the enrollment entered each stage (the tick's `_milestones`)."""
        have = self.entered
        for stage in stages:
            if stage not in have:
                have.add(stage)
                self.rows.milestone.append(
                    (self.ids.take("milestone"), self.enroll_id, self.id, FUNNEL, stage, at))
        self.updated = max(self.updated, at)

    def event(self, kind: str, at: int, *, funnel: str | None = FUNNEL, step: str | None = None,
              external_id: str | None = None, question: str | None = None, answer: str | None = None,
              product: str | None = None, amount: float | None = None, currency: str | None = None,
              data: dict[str, Any] | None = None) -> None:
        self.rows.event.append((self.ids.take("event"), self.id, funnel, kind, at, question, answer, product,
                                None, amount, currency, external_id, step, data or {}))
        self.updated = max(self.updated, at)

    def consent(self, kind: str, at: int) -> None:
        last = self.id % 250
        self.rows.consent.append((self.ids.take("consent"), self.id, kind, at, FUNNEL,
                                  f"https://{MID_DOMAIN}/checklist", f"203.0.113.{last}", USER_AGENT,
                                  WORDING))

    @property
    def enroll_id(self) -> int:
        return self.id

    @property
    def entered(self) -> set[str]:
        return self._entered

    @property
    def stopped(self) -> bool:
        """Ended, or waiting for an email already decided."""
        return self.ended or self.pending

    def finish(self) -> None:
        """The subscriber and enrollment rows, as the walk left them."""
        rng = self.rng
        source, utm_source, utm_medium = rng.choice(SOURCES)
        first = rng.choice(FIRST_NAMES) if rng.random() < 0.7 else None
        last = rng.choice(LAST_NAMES) if first and rng.random() < 0.4 else None
        name = " ".join(n for n in (first, last) if n)
        self.rows.subscriber.append((
            self.id, self.email, self.email, name, first, last, "en", rng.choice(TIMEZONES), self.status, {},
            source, utm_source, utm_medium, "first-marathon-launch" if utm_source else None, None, None,
            self.signup, self.updated))
        if self.status != "active" and not self.ended:
            self.stage, self.reason, self.step = "ended", f"the address {self.status}", None
        resume_stage, resume_step = self.resume if self.resume else (None, None)
        self.rows.enrollment.append((
            self.id, self.id, FUNNEL, self.pop.magnet.id, self.stage, self.since, self.segment, self.step,
            self.last_sent, self.deadline, self.done, self.reason, resume_stage, resume_step,
            None if self.ended else self.next_run, self.signup, self.updated))
