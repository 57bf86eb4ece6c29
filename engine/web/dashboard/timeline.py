"""A subscriber's story for the dashboard, from `engine.subscribers.profile.Profile`: one list, oldest first.

Pure. The profile is what `funnel subscribers show` prints (including, per enrollment,
what comes next and why it waits, from engine/flow/explain.py); this only puts its
emails and events on one line of time and words them for a marketer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from engine.flow.explain import when
from engine.sequences.plan import Plan
from engine.store.db import Row
from engine.store.status import DeliveryStatus
from engine.subscribers.profile import EnrollmentView, Origin, Profile

MAX_ENTRIES = 500  # the newest; a subscriber of many years could have thousands of opens

# Unknown: the connection broke after the data went out; it probably arrived.
_SENT = (DeliveryStatus.SENT, DeliveryStatus.UNKNOWN)


@dataclass(frozen=True)
class Entry:
    """One moment of the story."""

    at: datetime
    kind: str  # sent|queued|failed|open|click|answer|purchase|unsubscribe|...
    funnel: str | None
    text: str


@dataclass(frozen=True)
class Position:
    """Where one enrollment stands, and what comes next."""

    funnel: str
    funnel_name: str
    stage: str
    segment: str | None
    step: str | None
    ended: str | None
    next_step: str | None
    next_at: str | None  # in the subscriber's zone, with the zone's name
    why: str


def entries(profile: Profile, plans: Mapping[str, Plan]) -> list[Entry]:
    """The emails and events of `profile`, oldest first (the newest MAX_ENTRIES)."""
    found: list[Entry] = []
    for view in profile.enrollments:
        plan = plans.get(view.row["funnel"])
        if plan is not None:  # the subjects in the language this person's emails are in
            plan = plan.in_language(profile.subscriber["locale"])
        for delivery in view.deliveries:
            found.append(_email(delivery, plan, profile.origin(delivery)))
    for event in profile.events:
        found.append(Entry(event["at"], event["type"], event["funnel"], _event(event, plans)))
    found.sort(key=lambda e: e.at)
    return found[-MAX_ENTRIES:]


def positions(profile: Profile, plans: Mapping[str, Plan]) -> list[Position]:
    """Each enrollment's stage and its next email, with the reason it waits."""
    timezone = profile.subscriber["timezone"]
    return [_position(view, plans.get(view.row["funnel"]), timezone) for view in profile.enrollments]


def _position(view: EnrollmentView, plan: Plan | None, timezone: str) -> Position:
    row, next_ = view.row, view.next
    return Position(
        funnel=row["funnel"],
        funnel_name=plan.name if plan else row["funnel"],
        stage=row["stage"],
        segment=row["segment"],
        step=row["step"],
        ended=row["reason"],
        next_step=next_.step.id if next_.step else None,
        next_at=when(next_.at, timezone) if next_.at else None,
        why=next_.reason,
    )


def _email(delivery: Row, plan: Plan | None, origin: Origin | None) -> Entry:
    step = delivery["step"]
    variant = delivery.get("variant")
    email = plan.email(step) if plan else None
    if email is not None and variant:  # an experiment's: the version this person got
        email = email.as_variant(variant)
    # A subject with template code ({{ subscriber.first_name }}) would show the code, not what
    # the person read; the step id says which email it was.
    subject = f" “{email.subject}”" if email and "{" not in email.subject else ""
    status = delivery["status"]
    if status in _SENT and delivery["sent_at"] is not None:
        version = f" (variant {variant})" if variant else ""
        text = f"sent '{step}'{version}{subject}{_files(origin)}"
        return Entry(delivery["sent_at"], "sent", delivery["funnel"], text)
    reply = f" ({delivery['last_reply']})" if delivery["last_reply"] else ""
    return Entry(delivery["created_at"], status, delivery["funnel"], f"'{step}'{subject} {status}{reply}")


def _files(origin: Origin | None) -> str:
    """Which text it was: the release it was rendered from, and whether that release brought it."""
    if origin is None:
        return ""
    news = {"added": "; it added this email", "changed": "; it brought this text"}.get(origin.news or "", "")
    return f" from release {origin.release} (live since {origin.went_live_at:%Y-%m-%d %H:%M} UTC{news})"


def _event(event: Row, plans: Mapping[str, Plan]) -> str:
    kind, step = event["type"], event["step"]
    about = f" '{step}'" if step else ""
    if kind == "open":
        return f"opened{about} (a weak signal: image proxies open mail too)"
    if kind == "click":
        url = (event["data"] or {}).get("url", "")
        return f"clicked {url} in{about}" if url else f"clicked a link in{about}"
    if kind == "answer":
        return "answered " + _answer(event, plans.get(event["funnel"] or ""))
    if kind == "purchase":
        price = event["amount"]
        amount = "" if price is None else f" for {price:g} {event['currency'] or ''}".rstrip()
        return f"bought {event['product'] or 'something'}{amount}"
    if kind in ("tag", "untag"):
        return f"{kind}ged {event['name']}"
    if kind == "unsubscribe":
        return f"unsubscribed{' via' + about if about else ''}"
    if kind == "complaint":
        return f"marked{about or ' an email'} as spam"
    if kind == "bounce":
        return f"hard bounce{' of' + about if about else ''}"
    if kind == "custom":
        return f"event {event['name']}"
    return str(kind)


def _answer(event: Row, plan: Plan | None) -> str:
    question, answer = str(event["question"]), str(event["answer"])
    questions = plan.survey.questions if plan and plan.survey else ()
    asked = next((q for q in questions if q.id == question), None)
    if asked is None:
        return f"{question} = {answer}"
    return f"“{asked.text}”: {dict(asked.answers).get(answer, answer)}"
