"""Everything stored about one person (`subscribers show`), and erasing it (`subscribers forget`).

For each enrollment the profile also says what happens next and why it waits, from the
facts the scheduler gives `step`, built by the same function (engine/flow/facts.py): the
subscriber's time zone and status, the enrollment's magnet, the events its funnel sees,
every marketing email sent to them in any funnel for the frequency cap, and their latest
confirmation request for the one-a-day gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from engine.flow.explain import Explanation, explain
from engine.flow.facts import CAP_HISTORY, confirmation_steps, facts_for
from engine.flow.joining import CONFIRMATION_GAP
from engine.flow.late import unheeded
from engine.flow.state import EventType, Facts, Stage
from engine.mail.names import first_name
from engine.sequences.plan import Plan
from engine.store import broadcasts as calendar
from engine.store import queries, reports
from engine.store.db import DbConnection, DbEngine, Row, durable
from engine.store.erasure import erase_subscriber, rows_about
from engine.store.pauses import paused_steps
from engine.store.releases import held_steps, releases_by_id
from engine.store.rows import events_of, state_of


@dataclass(frozen=True)
class EnrollmentView:
    """One funnel the person is in: the enrollment row, its emails, and what comes next."""

    row: Row
    deliveries: list[Row]
    next: Explanation
    late: str | None = None  # why a survey answer after the segment was chosen changed nothing


@dataclass(frozen=True)
class Profile:
    """What the database holds about one person."""

    subscriber: Row
    consents: list[Row]
    tags: list[Row]
    events: list[Row]
    enrollments: list[EnrollmentView]
    releases: Mapping[str, Row] = field(default_factory=dict)  # those the emails were rendered from, by id

    @property
    def first_name_in_emails(self) -> str:
        """What templates get as `subscriber.first_name`: as given, or safely taken from the name, or ""."""
        sub = self.subscriber
        return first_name(sub["name"] or "", sub["locale"] or "", sub["first_name"])

    def origin(self, delivery: Row) -> Origin | None:
        """The release a delivery was rendered from, and whether that release brought its text."""
        release = self.releases.get(delivery["release"] or "")
        if release is None:
            return None
        summary, key = release["summary"], f"{delivery['funnel']}/{delivery['step']}"
        news = None
        if summary.get("previous"):  # the first release recorded brings everything: nothing to tell
            news = ("added" if key in summary.get("emails_added", ())
                    else "changed" if key in summary.get("emails_changed", ()) else None)
        return Origin(release["id"], release["went_live_at"], news)


@dataclass(frozen=True)
class Origin:
    """Which files an email was rendered from: a release, when it went live, what it did to this email."""

    release: str
    went_live_at: datetime
    news: str | None  # "added" (the release added the email), "changed" (its text), or None


def load_profile(db_engine: DbEngine, address: str, plans: Mapping[str, Plan], broken: set[str],
                 now: datetime) -> Profile | None:
    """The person with this address (in any case), or None; `broken`: funnels whose files have errors."""
    with db_engine.connect() as conn:
        subscriber = queries.find_subscriber(conn, address)
        if subscriber is None:
            return None
        sid = subscriber["id"]
        events = queries.events_by_subscriber(conn, [sid]).get(sid, [])
        sent = queries.marketing_sent_since(conn, [sid], now - CAP_HISTORY).get(sid, [])
        deliveries = queries.deliveries_of(conn, sid)
        paused = paused_steps(conn)
        enrollments = queries.enrollments_of(conn, sid)
        confirmations = _confirmations(conn, sid, enrollments, plans, now)
        held = held_steps(conn, [row["id"] for row in enrollments])
        broadcasts = calendar.pending_for(conn, [row["id"] for row in enrollments])
        seen = events_of(events)
        views = []
        for row in enrollments:
            facts = facts_for(row["funnel"], timezone=subscriber["timezone"], status=subscriber["status"],
                              magnet=row["magnet"], joined_at=row["created_at"], events=seen,
                              marketing_sent=sent, paused=paused, confirmations=confirmations,
                              held=held.get(row["id"], ()), broadcasts=broadcasts.get(row["id"], ()))
            mine = [d for d in deliveries if d["enrollment_id"] == row["id"]]
            views.append(EnrollmentView(row, mine, _next(row, plans, broken, facts, now),
                                        _late(plans.get(row["funnel"]), row, facts)))
        releases = releases_by_id(conn, (d["release"] for d in deliveries if d["release"]))
        return Profile(subscriber, reports.consents_of(conn, sid), reports.tags_of(conn, sid), events, views,
                       releases)


def _confirmations(conn: DbConnection, sid: int, enrollments: list[Row], plans: Mapping[str, Plan],
                   now: datetime) -> list[datetime]:
    """The latest confirmation request to the address, read only while one of its enrollments confirms."""
    if not any(row["stage"] == Stage.CONFIRMING.value for row in enrollments):
        return []
    steps = confirmation_steps(plans.values())
    last = queries.last_confirmations(conn, [sid], steps, now - CONFIRMATION_GAP).get(sid)
    return [last] if last is not None else []


def _next(row: Row, plans: Mapping[str, Plan], broken: set[str], facts: Facts, now: datetime) -> Explanation:
    plan = plans.get(row["funnel"])
    if plan is None:
        why = ("its sequence file has errors (run funnel validate); the daemon keeps the last good version"
               if row["funnel"] in broken else
               f"no sequence file defines funnel '{row['funnel']}' any more; waits until the file is back")
        return Explanation(None, None, why)
    return explain(plan, state_of(row), facts, now)


def _late(plan: Plan | None, row: Row, facts: Facts) -> str | None:
    """Why the latest survey answer did not decide the segment (engine/flow/late.py); None if it did."""
    answer = max((e for e in facts.events if e.type is EventType.ANSWER), key=lambda e: e.at, default=None)
    return unheeded(plan, state_of(row), facts, answer) if plan and answer else None


@dataclass(frozen=True)
class Forgotten:
    """What an erasure removed."""

    address: str
    deleted: dict[str, int]


def rows_to_forget(db_engine: DbEngine, address: str) -> dict[str, int] | None:
    """How many rows of each table hold something about this address; None when nobody has it."""
    with db_engine.connect() as conn:
        subscriber = queries.find_subscriber(conn, address)
        return rows_about(conn, subscriber["id"]) if subscriber else None


def suppression(db_engine: DbEngine, address: str) -> tuple[str, datetime] | None:
    """(reason, since when) for an address on the suppression list: forgotten, bounced, ..."""
    with db_engine.connect() as conn:
        entry = reports.suppression_of(conn, address)
        return (entry["reason"], entry["at"]) if entry else None


def forget(db_engine: DbEngine, address: str, now: datetime) -> Forgotten | None:
    """Erase the person and keep only a hash of the address on the suppression list; None if unknown."""
    # durable(): an erasure that a power cut could undo would have to be asked for again.
    with durable(db_engine) as conn:
        subscriber = queries.find_subscriber(conn, address)
        if subscriber is None:
            return None
        deleted = erase_subscriber(conn, subscriber["id"], subscriber["email"], now)
    return Forgotten(subscriber["email"], deleted)
