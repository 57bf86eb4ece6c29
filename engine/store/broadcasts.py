"""Broadcasts in the database: the calendar (scheduled, cancelled), their recipients, and what became of each.

A broadcast's file says what goes and when; its row here says that it may go
(`schedule`), how far its audience has been taken, and whether it was cancelled. Its
recipients are rows too, one per enrollment, each with the moment it is due to them (their
local time or the one instant): the tick reads a claimed enrollment's pending ones into
its facts, and writes back what the interpreter decided (engine/scheduler/decide.py).
Their emails are ordinary deliveries of the funnel, with the broadcast's id as their step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.sequences.plan import BroadcastPlan
from engine.store import audience as audience_sql
from engine.store.db import DbConnection, DbEngine
from engine.store.inlists import one_of
from engine.store.inserts import insert_ignoring_conflicts
from engine.store.status import DeliveryStatus
from engine.store.tables import BROADCAST, BROADCAST_RECIPIENT, DELIVERY, ENROLLMENT

SCHEDULED, TAKING, SENDING, CANCELLED = "scheduled", "taking", "sending", "cancelled"
PENDING, SENT, SKIPPED = "pending", "sent", "skipped"
# Cancelling stops what is still waiting; what a daemon is sending this moment goes.
_STOPPABLE = (DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value)


class CalendarError(Exception):
    """A schedule or cancel that cannot be done, in words for the person who asked."""


class TooLate(CalendarError):
    """A broadcast not on the calendar whose last moment has passed: it cannot be scheduled."""


def refuse_if_late(broadcast: BroadcastPlan, now: datetime) -> None:
    """TooLate, with the fix, if a broadcast that is not on the calendar yet could reach nobody in time.

    (One on the calendar is the calendar's to answer: `schedule` says it already is.)
    """
    if broadcast.last_due() <= now:
        raise TooLate(f"broadcast '{broadcast.id}' cannot be scheduled: its time has passed "
                      f"({broadcast.when}); set `send.at` in {broadcast.source} to a later time")


def row(conn: DbConnection, broadcast_id: str) -> Mapping[str, Any] | None:
    """The broadcast's row; None: it was never scheduled (a draft)."""
    found = conn.execute(sa.select(BROADCAST).where(BROADCAST.c.id == broadcast_id)).mappings().first()
    return dict(found) if found is not None else None


def rows(conn: DbConnection) -> dict[str, Mapping[str, Any]]:
    """Every scheduled (or once scheduled) broadcast's row, by id."""
    return {r["id"]: dict(r) for r in conn.execute(sa.select(BROADCAST)).mappings()}


def schedule(
    conn: DbConnection, broadcast: BroadcastPlan, release: str | None, now: datetime, by: str
) -> bool:
    """Put the broadcast on the calendar; False if it already was. A cancelled one stays cancelled,
    and one whose time has passed is refused (TooLate)."""
    existing = row(conn, broadcast.id)
    if existing is not None:
        if existing["state"] == CANCELLED:
            raise CalendarError(
                f"broadcast '{broadcast.id}' was cancelled at {existing['cancelled_at']:%Y-%m-%d %H:%M} "
                "UTC; a cancelled broadcast does not go again: copy its file under a new "
                "`broadcast:` id and schedule that"
            )
        held = moved(broadcast, existing)
        if held is not None:
            raise CalendarError(held)
        return False
    refuse_if_late(broadcast, now)
    conn.execute(
        sa.insert(BROADCAST).values(
            id=broadcast.id,
            funnel=broadcast.funnel,
            state=SCHEDULED,
            scheduled_at=now,
            scheduled_by=by,
            release=release,
            taken_through=0,
            recipients=0,
            updated_at=now,
        )
    )
    return True


@dataclass(frozen=True)
class Cancelled:
    """What a cancel stopped."""

    recipients: int  # who had not had it yet
    deliveries: int  # emails decided and waiting, now cancelled
    already: bool = False  # it was cancelled before: this cancel stopped nothing


def cancel(conn: DbConnection, broadcast_id: str, now: datetime, by: str) -> Cancelled:
    """Cancel a scheduled broadcast: nobody else gets it; what has gone, has gone.

    Its queued emails are found in the funnel it was scheduled for, which its file may no
    longer name (`moved`).
    """
    existing = row(conn, broadcast_id)
    if existing is None:
        raise CalendarError(
            f"broadcast '{broadcast_id}' is not scheduled: there is nothing to cancel "
            "(a draft never goes; delete its file if you no longer want it)"
        )
    if existing["state"] == CANCELLED:
        return Cancelled(0, 0, already=True)
    conn.execute(
        sa.update(BROADCAST)
        .where(BROADCAST.c.id == broadcast_id)
        .values(state=CANCELLED, cancelled_at=now, cancelled_by=by, updated_at=now)
    )
    recipients = conn.execute(
        sa.update(BROADCAST_RECIPIENT)
        .where(BROADCAST_RECIPIENT.c.broadcast == broadcast_id, BROADCAST_RECIPIENT.c.status == PENDING)
        .values(status=CANCELLED, reason="the broadcast was cancelled", decided_at=now)
    ).rowcount
    deliveries = conn.execute(
        sa.update(DELIVERY)
        .where(
            DELIVERY.c.funnel == existing["funnel"],
            DELIVERY.c.step == broadcast_id,
            DELIVERY.c.status.in_(_STOPPABLE),
        )
        .values(
            status=DeliveryStatus.CANCELLED.value,
            next_attempt_at=None,
            last_reply="not sent: the broadcast was cancelled",
            updated_at=now,
        )
    ).rowcount
    return Cancelled(recipients or 0, deliveries or 0)


def to_take(
    found: Mapping[str, Mapping[str, Any]], broadcasts: Iterable[BroadcastPlan], now: datetime
) -> list[BroadcastPlan]:
    """The broadcasts of the release whose audience is due to be taken (or still being taken) now,
    by the calendar's `rows`.

    Not one whose file now names another funnel than the one it was scheduled for (`moved`).
    """
    return [
        b
        for b in broadcasts
        if found.get(b.id, {}).get("state") in (SCHEDULED, TAKING)
        and found[b.id]["funnel"] == b.funnel
        and b.first_due() <= now
    ]


def mail_funnel(broadcast: BroadcastPlan, found: Mapping[str, Any] | None) -> str:
    """The funnel whose deliveries are the broadcast's emails: the one it was scheduled for (its
    calendar row, `found`), which its file may no longer name (`moved`); else its file's."""
    return str(found["funnel"]) if found is not None else broadcast.funnel


def moved(broadcast: BroadcastPlan, found: Mapping[str, Any] | None) -> str | None:
    """Why a scheduled broadcast is held, or None: its file names another funnel than the one it
    was scheduled for. Its people were chosen from that funnel (or are about to be), so it
    goes to nobody until the file says that funnel again or the broadcast is cancelled."""
    if found is None or found["state"] == CANCELLED or found["funnel"] == broadcast.funnel:
        return None
    return (
        f"broadcast '{broadcast.id}' was scheduled for funnel '{found['funnel']}' but its file "
        f"({broadcast.source}) now says 'funnel: {broadcast.funnel}'; it is held and sends nothing: "
        f"write 'funnel: {found['funnel']}' again, or cancel it (funnel broadcast cancel {broadcast.id}) "
        "and send the file under a new `broadcast:` id"
    )


def take_batch(
    db_engine: DbEngine,
    broadcast: BroadcastPlan,
    now: datetime,
    limit: int,
    due_for: Callable[[int, str], datetime],
) -> int | None:
    """Take the next `limit` recipients of `broadcast` in one write: their rows, due at
    `due_for(subscriber id, timezone)`,
    and their enrollments woken by then. Returns how many were taken; None: nothing more to take.

    The audience is those who signed up before the broadcast's first moment, as they stand
    when their batch is taken; the batches go by enrollment id from where the last one ended,
    recorded in the same write, so a crash or a second daemon takes nobody twice.
    """
    with db_engine.begin() as conn:
        statement = sa.select(BROADCAST).where(BROADCAST.c.id == broadcast.id)
        if conn.dialect.name == "postgresql":
            statement = statement.with_for_update()
        current = conn.execute(statement).mappings().first()
        if current is None or current["state"] not in (SCHEDULED, TAKING):
            return None
        found = audience_sql.recipients_after(
            conn,
            broadcast.audience,
            broadcast.funnel,
            now,
            broadcast.first_due(),
            current["taken_through"],
            limit,
        )
        recipients = [
            {
                "broadcast": broadcast.id,
                "enrollment_id": r.id,
                "subscriber_id": r.subscriber_id,
                "due_at": due_for(r.subscriber_id, r.timezone),
                "status": PENDING,
            }
            for r in found
        ]
        taken = insert_ignoring_conflicts(
            conn, BROADCAST_RECIPIENT, recipients, ("broadcast", "enrollment_id")
        )
        if recipients:
            _wake_by(conn, [(r["enrollment_id"], r["due_at"]) for r in recipients])
        done = len(found) < limit
        dues = [
            r["due_at"]
            for r in recipients
            if current["first_due_at"] is None or r["due_at"] < current["first_due_at"]
        ]
        conn.execute(
            sa.update(BROADCAST)
            .where(BROADCAST.c.id == broadcast.id)
            .values(
                state=SENDING if done else TAKING,
                taken_through=found[-1].id if found else current["taken_through"],
                recipients=BROADCAST.c.recipients + taken,
                audience_at=current["audience_at"] or now,
                first_due_at=min(dues) if dues else current["first_due_at"],
                taken_at=now if done else None,
                updated_at=now,
            )
        )
    return taken


def _wake_by(conn: DbConnection, wakes: Sequence[tuple[int, datetime]]) -> None:
    """Each enrollment looked at by its broadcast's time at the latest."""
    statement = (
        sa.update(ENROLLMENT)
        .where(
            ENROLLMENT.c.id == sa.bindparam("_id"),
            sa.or_(ENROLLMENT.c.next_run_at.is_(None), ENROLLMENT.c.next_run_at > sa.bindparam("_due")),
        )
        .values(next_run_at=sa.bindparam("_due"))
    )
    conn.execute(statement, [{"_id": enrollment, "_due": due} for enrollment, due in wakes])


def pending_for(
    conn: DbConnection, enrollment_ids: Iterable[int]
) -> dict[int, tuple[tuple[str, datetime], ...]]:
    """Per enrollment: the broadcasts still pending for it, with when each is due."""
    ids = sorted(set(enrollment_ids))
    if not ids:
        return {}
    statement = (
        sa.select(
            BROADCAST_RECIPIENT.c.enrollment_id, BROADCAST_RECIPIENT.c.broadcast, BROADCAST_RECIPIENT.c.due_at
        )
        .where(one_of(conn, BROADCAST_RECIPIENT.c.enrollment_id, ids),
               BROADCAST_RECIPIENT.c.status == PENDING)
        .order_by(BROADCAST_RECIPIENT.c.due_at)
    )
    found: dict[int, list[tuple[str, datetime]]] = {}
    for r in conn.execute(statement):
        found.setdefault(r.enrollment_id, []).append((r.broadcast, r.due_at))
    return {enrollment: tuple(each) for enrollment, each in found.items()}


def settle(conn: DbConnection, decided: Sequence[Mapping[str, Any]]) -> set[tuple[str, int]]:
    """Write what the interpreter decided for recipients (`broadcast`, `enrollment_id`, `status`,
    `reason`, `decided_at` each); only a row still pending changes. Returns the (broadcast,
    enrollment) of those now marked sent: the deciding tick queues emails for these only.

    A cancel that committed after the tick read the pending rows (possible on PostgreSQL,
    where the read locks nothing) has made them `cancelled`: this UPDATE sees that, marks
    nothing, and so no email is queued for them.
    """
    skipped = [d for d in decided if d["status"] != SENT]
    if skipped:
        statement = (
            sa.update(BROADCAST_RECIPIENT)
            .where(
                BROADCAST_RECIPIENT.c.broadcast == sa.bindparam("_broadcast"),
                BROADCAST_RECIPIENT.c.enrollment_id == sa.bindparam("_enrollment"),
                BROADCAST_RECIPIENT.c.status == PENDING,
            )
            .values(
                status=sa.bindparam("_status"), reason=sa.bindparam("_reason"), decided_at=sa.bindparam("_at")
            )
        )
        conn.execute(
            statement,
            [
                {
                    "_broadcast": d["broadcast"],
                    "_enrollment": d["enrollment_id"],
                    "_status": d["status"],
                    "_reason": d["reason"],
                    "_at": d["decided_at"],
                }
                for d in skipped
            ],
        )
    by_broadcast: dict[tuple[str, datetime], list[int]] = {}
    for d in decided:
        if d["status"] == SENT:
            by_broadcast.setdefault((d["broadcast"], d["decided_at"]), []).append(d["enrollment_id"])
    marked: set[tuple[str, int]] = set()
    for (broadcast_id, at), enrollments in by_broadcast.items():
        result = conn.execute(
            sa.update(BROADCAST_RECIPIENT)
            .where(
                BROADCAST_RECIPIENT.c.broadcast == broadcast_id,
                BROADCAST_RECIPIENT.c.enrollment_id.in_(enrollments),
                BROADCAST_RECIPIENT.c.status == PENDING,
            )
            .values(status=SENT, reason=None, decided_at=at)
            .returning(BROADCAST_RECIPIENT.c.enrollment_id)
        )
        marked.update((broadcast_id, enrollment) for enrollment in result.scalars())
    return marked


def wake_waiting(conn: DbConnection, broadcast_id: str, now: datetime) -> int:
    """Wake the recipients still waiting for a broadcast that was due (after a resume of its pause)."""
    waiting = sa.select(BROADCAST_RECIPIENT.c.enrollment_id).where(
        BROADCAST_RECIPIENT.c.broadcast == broadcast_id,
        BROADCAST_RECIPIENT.c.status == PENDING,
        BROADCAST_RECIPIENT.c.due_at <= now,
    )
    return (
        conn.execute(
            sa.update(ENROLLMENT).where(ENROLLMENT.c.id.in_(waiting)).values(next_run_at=now)
        ).rowcount
        or 0
    )


def keep_winner(conn: DbConnection, broadcast_id: str, winner: str, decision: str, now: datetime) -> bool:
    """Write the experiment's winner once: False if one was written before (by another daemon)."""
    result = conn.execute(
        sa.update(BROADCAST)
        .where(BROADCAST.c.id == broadcast_id, BROADCAST.c.winner.is_(None))
        .values(winner=winner, decision=decision[:500], updated_at=now)
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class Progress:
    """Where a broadcast's recipients stand: by status, and the skips by reason."""

    by_status: dict[str, int]
    skipped_because: dict[str, int]
    next_due: datetime | None  # the earliest moment a pending recipient is due

    @property
    def total(self) -> int:
        """Every recipient taken."""
        return sum(self.by_status.values())


def progress(conn: DbConnection, broadcast_id: str) -> Progress:
    """Where the broadcast's recipients stand, in one GROUP BY."""
    r = BROADCAST_RECIPIENT
    statement = (
        sa.select(r.c.status, r.c.reason, sa.func.count().label("n"), sa.func.min(r.c.due_at).label("due"))
        .where(r.c.broadcast == broadcast_id)
        .group_by(r.c.status, r.c.reason)
    )
    by_status: dict[str, int] = {}
    because: dict[str, int] = {}
    next_due: datetime | None = None
    for each in conn.execute(statement):
        by_status[each.status] = by_status.get(each.status, 0) + each.n
        if each.status == SKIPPED:
            because[each.reason or ""] = because.get(each.reason or "", 0) + each.n
        if each.status == PENDING:
            next_due = each.due if next_due is None else min(next_due, each.due)
    return Progress(by_status, because, next_due)
