"""Everything stored about one person (`subscribers show`), and erasing it (`subscribers forget`).

For each enrollment the profile also says what happens next and why it waits, from the
same facts the scheduler gives `step` (engine/scheduler/decide.py): the subscriber's
time zone, the enrollment's magnet, the events its funnel sees, and every marketing
email sent to them in any funnel for the frequency cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine, RowMapping

from engine.flow.explain import Explanation, explain
from engine.flow.state import Facts, Stage
from engine.scheduler.decide import CAP_HISTORY
from engine.sequences.plan import Plan
from engine.store import queries, reports
from engine.store.db import durable
from engine.store.erasure import erase_subscriber, rows_about
from engine.store.pauses import paused_steps
from engine.store.rows import events_of, state_of


@dataclass(frozen=True)
class EnrollmentView:
    """One funnel the person is in: the enrollment row, its emails, and what comes next."""

    row: RowMapping
    deliveries: list[RowMapping]
    next: Explanation


@dataclass(frozen=True)
class Profile:
    """What the database holds about one person."""

    subscriber: RowMapping
    consents: list[RowMapping]
    tags: list[RowMapping]
    events: list[RowMapping]
    enrollments: list[EnrollmentView]


def load_profile(db_engine: Engine, address: str, plans: Mapping[str, Plan], broken: set[str],
                 now: datetime) -> Profile | None:
    """The person with this address (in any case), or None; `broken`: funnels whose files have errors."""
    with db_engine.connect() as conn:
        subscriber = queries.find_subscriber(conn, address)
        if subscriber is None:
            return None
        sid = subscriber["id"]
        events = queries.events_by_subscriber(conn, [sid]).get(sid, [])
        sent = tuple(queries.marketing_sent_since(conn, [sid], now - CAP_HISTORY).get(sid, []))
        deliveries = queries.deliveries_of(conn, sid)
        paused = paused_steps(conn)
        views = []
        for row in queries.enrollments_of(conn, sid):
            facts = Facts(timezone=subscriber["timezone"], magnet=row["magnet"],
                          events=events_of(events, row["funnel"]), marketing_sent=sent,
                          joined_at=row["created_at"], paused=paused.get(row["funnel"], frozenset()))
            mine = [d for d in deliveries if d["enrollment_id"] == row["id"]]
            views.append(EnrollmentView(row, mine, _next(row, subscriber, plans, broken, facts, now)))
        return Profile(subscriber, reports.consents_of(conn, sid), reports.tags_of(conn, sid), events, views)


def _next(row: RowMapping, subscriber: RowMapping, plans: Mapping[str, Plan], broken: set[str],
          facts: Facts, now: datetime) -> Explanation:
    plan = plans.get(row["funnel"])
    state = state_of(row)
    if plan is None:
        why = ("its sequence file has errors (run funnel validate); the daemon keeps the last good version"
               if row["funnel"] in broken else
               f"no sequence file defines funnel '{row['funnel']}' any more; waits until the file is back")
        return Explanation(None, None, why)
    if subscriber["status"] in queries.BLOCKED_STATUSES and state.stage is not Stage.ENDED:
        return Explanation(None, None, f"the address {subscriber['status']}: ends at the daemon's next tick")
    return explain(plan, state, facts, now)


@dataclass(frozen=True)
class Forgotten:
    """What an erasure removed."""

    address: str
    deleted: dict[str, int]


def rows_to_forget(db_engine: Engine, address: str) -> dict[str, int] | None:
    """How many rows of each table hold something about this address; None when nobody has it."""
    with db_engine.connect() as conn:
        subscriber = queries.find_subscriber(conn, address)
        return rows_about(conn, subscriber["id"]) if subscriber else None


def suppression(db_engine: Engine, address: str) -> tuple[str, datetime] | None:
    """(reason, since when) for an address on the suppression list: forgotten, bounced, ..."""
    with db_engine.connect() as conn:
        entry = reports.suppression_of(conn, address)
        return (entry["reason"], entry["at"]) if entry else None


def forget(db_engine: Engine, address: str, now: datetime) -> Forgotten | None:
    """Erase the person and keep only a hash of the address on the suppression list; None if unknown."""
    # durable(): an erasure that a power cut could undo would have to be asked for again.
    with durable(db_engine) as conn:
        subscriber = queries.find_subscriber(conn, address)
        if subscriber is None:
            return None
        deleted = erase_subscriber(conn, subscriber["id"], subscriber["email"], now)
    return Forgotten(subscriber["email"], deleted)
