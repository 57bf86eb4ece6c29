"""The deciding half of a tick: claim due enrollments, call step(), queue the emails it sends.

Everything happens in one transaction: the claim's row locks (PostgreSQL) or the
write lock (SQLite) keep other daemons off these rows until the new states and the
queued deliveries are committed together. A crash before the commit changes
nothing; the unique key on (enrollment, step) keeps a repeated decision from
queueing a second copy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.flow import waits
from engine.flow.actions import Defer, End, EnterPath, EnterSegment, Send, Skip
from engine.flow.facts import CAP_HISTORY, confirmation_steps, facts_for
from engine.flow.joining import CONFIRMATION_GAP
from engine.flow.state import Event, Facts, Stage, Trial
from engine.flow.step import Outcome, step
from engine.logs import log
from engine.mail.message import new_message_id
from engine.scheduler.experiments import experiment_counts
from engine.scheduler.funnels import Funnels
from engine.sequences.plan import PathKind, Plan
from engine.store import broadcasts as calendar
from engine.store import queries
from engine.store.db import DbConnection, DbEngine, Row
from engine.store.milestones import record_milestones
from engine.store.pauses import paused_steps
from engine.store.releases import held_steps
from engine.store.rows import events_of, state_changes, state_of
from engine.store.status import DeliveryStatus

# An enrollment of a funnel that is no longer in sequences/ is looked at again this
# often: the file may come back, and nothing of it is lost meanwhile.
MISSING_FUNNEL_RETRY = timedelta(hours=1)


@dataclass(frozen=True)
class Decided:
    """What one round of deciding did."""

    claimed: int
    queued: int


def decide_due(
    db_engine: DbEngine, funnels: Funnels, now: datetime, limit: int, message_domain: Callable[[Plan], str]
) -> Decided:
    """Advance up to `limit` due enrollments to `now`; queue what they send."""
    with db_engine.begin() as conn:
        rows = queries.claim_due_enrollments(conn, now, limit)
        if not rows:
            return Decided(0, 0)
        known = _Known.read(conn, rows, funnels, now)
        milestones: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        recipients: list[dict[str, Any]] = []
        broadcast_mail: list[dict[str, Any]] = []  # queued only once settled (below)
        missing: list[int] = []
        for row in rows:
            plan = funnels.plans.get(row["funnel"])
            if plan is None:
                missing.append(row["id"])
                log(
                    "funnel_missing",
                    funnel=row["funnel"],
                    enrollment=row["id"],
                    hint=f"no sequence file defines funnel '{row['funnel']}'; retrying in an hour",
                )
                continue
            outcome = step(plan, state_of(row), known.facts(row), now)
            known.add_sends(row, outcome, now)
            if isinstance(outcome.wait, waits.ConfirmationGap):
                log("confirmation_spaced", funnel=plan.funnel, enrollment=row["id"],
                    until=outcome.wait.at.isoformat())
            for action in outcome.actions:
                _log_action(action, row, plan)
                if not isinstance(action, Send | Skip):
                    continue
                broadcast = action.email.path is PathKind.BROADCAST
                if isinstance(action, Send):
                    mail = _delivery(row, action, plan, now, message_domain(plan))
                    (broadcast_mail if broadcast else deliveries).append(mail)
                if broadcast:
                    recipients.append(_recipient(row, action, now))
            milestones.extend(_milestones(row, outcome, now))
            updates.append(
                {
                    "_id": row["id"],
                    **state_changes(row, outcome.state),
                    "next_run_at": outcome.wake_at,
                    "updated_at": now,
                }
            )
        queries.save_enrollments(conn, updates)
        if recipients:
            # A broadcast's email is queued only for a recipient still pending: not one whose
            # broadcast was cancelled since they were read (engine/store/broadcasts.py, settle).
            marked = calendar.settle(conn, recipients)
            for mail in broadcast_mail:
                if (mail["step"], mail["enrollment_id"]) in marked:
                    deliveries.append(mail)
                else:  # said 'queued' above: say it was not
                    log("skipped", step=mail["step"], reason="the broadcast was cancelled as it was decided",
                        funnel=mail["funnel"], enrollment=mail["enrollment_id"])
        queued = queries.queue_deliveries(conn, deliveries)
        record_milestones(conn, milestones)
        queries.postpone_enrollments(conn, missing, now + MISSING_FUNNEL_RETRY, now)
    return Decided(len(rows), queued)


@dataclass(frozen=True)
class _Known:
    """What the claimed enrollments' facts are built from, read once a round; its sends are added."""

    subscribers: dict[int, Row]
    events: dict[int, tuple[Event, ...]]
    paused: dict[str, frozenset[str]]
    # Per subscriber: the sends the frequency cap and the confirmation gap count, with this
    # batch's added by Facts.after_send (the rule `step` applies within one call).
    sends: defaultdict[int, Facts]
    held: dict[int, tuple[str, ...]]  # per enrollment: its emails held for their files
    broadcasts: dict[int, tuple[tuple[str, datetime], ...]]  # per enrollment: its pending broadcasts
    trials: dict[str, dict[str, Trial]]  # per funnel: its experiments' counts by step

    @classmethod
    def read(cls, conn: DbConnection, rows: list[Row], funnels: Funnels, now: datetime) -> _Known:
        """Everything the facts of `rows` need, in a few statements for the whole batch."""
        ids = {row["subscriber_id"] for row in rows}
        events = queries.events_by_subscriber(conn, ids)
        confirmations: dict[int, datetime] = {}
        # Only an enrollment still confirming can send a confirmation request: the gap's
        # history is read only when the batch has one.
        if any(row["stage"] == Stage.CONFIRMING.value for row in rows):
            steps = confirmation_steps(funnels.plans.values())
            confirmations = queries.last_confirmations(conn, ids, steps, now - CONFIRMATION_GAP)
        marketing_sent = queries.marketing_sent_since(conn, ids, now - CAP_HISTORY)
        sends = defaultdict(Facts, {
            sid: Facts(marketing_sent=tuple(marketing_sent.get(sid, ())),
                       confirmations=(confirmations[sid],) if sid in confirmations else ())
            for sid in ids})
        return cls(
            subscribers=queries.subscriber_facts(conn, ids),
            events={sid: events_of(found) for sid, found in events.items()},
            paused=paused_steps(conn),
            sends=sends,
            held=held_steps(conn, [row["id"] for row in rows]),
            # Read only while the release has broadcasts: no cost to a project without them.
            broadcasts=calendar.pending_for(conn, [row["id"] for row in rows])
            if any(plan.broadcasts for plan in funnels.plans.values()) else {},
            trials=experiment_counts(conn, {row["funnel"] for row in rows}, funnels, now),
        )

    def facts(self, row: Row) -> Facts:
        """The facts of one claimed enrollment."""
        sid = row["subscriber_id"]
        subscriber = self.subscribers[sid]
        sent = self.sends[sid]
        return facts_for(row["funnel"], timezone=subscriber["timezone"], status=subscriber["status"],
                         magnet=row["magnet"], joined_at=row["created_at"], events=self.events.get(sid, ()),
                         marketing_sent=sent.marketing_sent, paused=self.paused,
                         confirmations=sent.confirmations, held=self.held.get(row["id"], ()),
                         broadcasts=self.broadcasts.get(row["id"], ()),
                         trials=self.trials.get(row["funnel"]), key=str(sid))

    def add_sends(self, row: Row, outcome: Outcome, now: datetime) -> None:
        """Count what `outcome` sends for the subscriber's next enrollments in this batch."""
        sid = row["subscriber_id"]
        for action in outcome.actions:
            if isinstance(action, Send):
                self.sends[sid] = self.sends[sid].after_send(action.email, now)


def _milestones(row: Row, outcome: Outcome, now: datetime) -> Iterator[dict[str, Any]]:
    if outcome.entered:
        # The stage it leaves counts too: an enrollment starts in its first stage
        # without a tick having moved it there.
        for stage in (row["stage"], *(s.value for s in outcome.entered)):
            yield {"enrollment_id": row["id"], "subscriber_id": row["subscriber_id"],
                   "funnel": row["funnel"], "stage": stage, "at": now}


def _delivery(row: Row, action: Send, plan: Plan, now: datetime, domain: str) -> dict[str, Any]:
    return {
        "enrollment_id": row["id"],
        "subscriber_id": row["subscriber_id"],
        "funnel": plan.funnel,
        "step": action.email.id,
        "segment": action.segment,
        "variant": action.variant,
        "marketing": action.email.marketing,
        "message_id": new_message_id(domain),
        "status": DeliveryStatus.QUEUED,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        # Queued at the time it was due, so that after downtime the oldest goes first.
        "next_attempt_at": min(row["next_run_at"], now),
    }


def _recipient(row: Row, action: Send | Skip, now: datetime) -> dict[str, Any]:
    """What became of a broadcast for one recipient: sent (queued), or skipped and why."""
    skipped = isinstance(action, Skip)
    return {"broadcast": action.email.id, "enrollment_id": row["id"],
            "status": calendar.SKIPPED if skipped else calendar.SENT,
            "reason": action.reason if isinstance(action, Skip) else None, "decided_at": now}


def _log_action(action: object, row: Row, plan: Plan) -> None:
    where = {"funnel": plan.funnel, "enrollment": row["id"], "subscriber": row["subscriber_id"]}
    if isinstance(action, Send):
        log("queued", step=action.email.id, role=action.email.role.value, **where)
    elif isinstance(action, Skip):
        log("skipped", step=action.email.id, reason=action.reason, **where)
    elif isinstance(action, Defer):
        log("deferred", step=action.email.id, reason=action.reason, **where)
    elif isinstance(action, EnterSegment):
        log("entered_segment", segment=action.segment, reason=action.reason, **where)
    elif isinstance(action, EnterPath):
        log("entered_path", path=action.path.value, reason=action.reason, **where)
    elif isinstance(action, End):
        log("ended", reason=action.reason, **where)
