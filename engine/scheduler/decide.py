"""The deciding half of a tick: claim due enrollments, call step(), queue the emails it sends.

Everything happens in one transaction: the claim's row locks (PostgreSQL) or the
write lock (SQLite) keep other daemons off these rows until the new states and the
queued deliveries are committed together. A crash before the commit changes
nothing; the unique key on (enrollment, step) keeps a repeated decision from
queueing a second copy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine, RowMapping

from engine.flow.actions import End, EnterPath, EnterSegment, Send, Skip
from engine.flow.state import Facts, Stage, State
from engine.flow.step import Outcome, step
from engine.logs import log
from engine.mail.message import new_message_id
from engine.scheduler.funnels import Funnels
from engine.sequences.plan import PathKind, Plan
from engine.store import queries
from engine.store.milestones import record_milestones
from engine.store.pauses import paused_steps
from engine.store.rows import events_of, state_of, state_values

# The frequency cap counts per local day or ISO week; 8 days of history cover both
# in every time zone.
CAP_HISTORY = timedelta(days=8)
# An enrollment of a funnel that is no longer in sequences/ is looked at again this
# often: the file may come back, and nothing of it is lost meanwhile.
MISSING_FUNNEL_RETRY = timedelta(hours=1)
# Against subscription bombing: at most one double opt-in request per address in this
# time, whatever the funnels; a further one waits until this long after the last.
CONFIRMATION_GAP = timedelta(hours=24)


@dataclass(frozen=True)
class Decided:
    """What one round of deciding did."""

    claimed: int
    queued: int


def decide_due(
    db_engine: Engine, funnels: Funnels, now: datetime, limit: int, message_domain: Callable[[Plan], str]
) -> Decided:
    """Advance up to `limit` due enrollments to `now`; queue what they send."""
    with db_engine.begin() as conn:
        rows = queries.claim_due_enrollments(conn, now, limit)
        if not rows:
            return Decided(0, 0)
        ids = {row["subscriber_id"] for row in rows}
        subscribers = queries.subscribers_by_id(conn, ids)
        events = queries.events_by_subscriber(conn, ids)
        sent = defaultdict(list, queries.marketing_sent_since(conn, ids, now - CAP_HISTORY))
        paused = paused_steps(conn)
        milestones: list[dict[str, Any]] = []
        confirmed_at: dict[int, datetime] | None = None  # read only if this batch sends a confirmation
        updates: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        missing: list[int] = []
        later: list[tuple[int, datetime]] = []
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
            subscriber = subscribers[row["subscriber_id"]]
            facts = Facts(
                timezone=subscriber["timezone"],
                magnet=row["magnet"],
                events=events_of(events.get(subscriber["id"], ()), row["funnel"]),
                marketing_sent=tuple(sent[subscriber["id"]]),
                joined_at=row["created_at"],
                paused=paused.get(row["funnel"], frozenset()),
            )
            outcome = _advance(plan, row, subscriber, facts, now)
            if any(isinstance(a, Send) and a.email.path is PathKind.CONFIRM for a in outcome.actions):
                if confirmed_at is None:
                    steps = [(p.funnel, e.id) for p in funnels.plans.values() for e in p.emails()
                             if e.path is PathKind.CONFIRM]
                    confirmed_at = queries.last_confirmations(conn, ids, steps, now - CONFIRMATION_GAP)
                last = confirmed_at.get(subscriber["id"])
                if last is not None and now - last < CONFIRMATION_GAP:
                    later.append((row["id"], last + CONFIRMATION_GAP))
                    log("confirmation_spaced", funnel=plan.funnel, enrollment=row["id"],
                        until=(last + CONFIRMATION_GAP).isoformat())
                    continue
                confirmed_at[subscriber["id"]] = now
            for action in outcome.actions:
                _log_action(action, row, plan)
                if isinstance(action, Send):
                    deliveries.append(_delivery(row, action, plan, now, message_domain(plan)))
                    if action.email.marketing:
                        sent[subscriber["id"]].append(now)
            if outcome.entered:
                # The stage it leaves counts too: an enrollment starts in its first stage
                # without a tick having moved it there.
                for stage in (row["stage"], *(s.value for s in outcome.entered)):
                    milestones.append({"enrollment_id": row["id"], "subscriber_id": row["subscriber_id"],
                                       "funnel": row["funnel"], "stage": stage, "at": now})
            updates.append(
                {
                    "_id": row["id"],
                    **state_values(outcome.state),
                    "next_run_at": outcome.wake_at,
                    "updated_at": now,
                }
            )
        queries.save_enrollments(conn, updates)
        queued = queries.queue_deliveries(conn, deliveries)
        record_milestones(conn, milestones)
        queries.postpone_enrollments(conn, missing, now + MISSING_FUNNEL_RETRY, now)
        for enrollment, until in later:
            queries.postpone_enrollments(conn, [enrollment], until, now)
    return Decided(len(rows), queued)


def _advance(plan: Plan, row: RowMapping, subscriber: RowMapping, facts: Facts, now: datetime) -> Outcome:
    state: State = state_of(row)
    if subscriber["status"] in queries.BLOCKED_STATUSES and state.stage is not Stage.ENDED:
        reason = f"the address {subscriber['status']}"
        ended = replace(state, stage=Stage.ENDED, step=None, reason=reason)
        return Outcome(ended, (End(reason),), None)
    return step(plan, state, facts, now)


def _delivery(row: RowMapping, action: Send, plan: Plan, now: datetime, domain: str) -> dict[str, Any]:
    return {
        "enrollment_id": row["id"],
        "subscriber_id": row["subscriber_id"],
        "funnel": plan.funnel,
        "step": action.email.id,
        "segment": action.segment,
        "marketing": action.email.marketing,
        "message_id": new_message_id(domain),
        "status": "queued",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        # Queued at the time it was due, so that after downtime the oldest goes first.
        "next_attempt_at": min(row["next_run_at"], now),
    }


def _log_action(action: object, row: RowMapping, plan: Plan) -> None:
    where = {"funnel": plan.funnel, "enrollment": row["id"], "subscriber": row["subscriber_id"]}
    if isinstance(action, Send):
        log("queued", step=action.email.id, role=action.email.role.value, **where)
    elif isinstance(action, Skip):
        log("skipped", step=action.email.id, reason=action.reason, **where)
    elif isinstance(action, EnterSegment):
        log("entered_segment", segment=action.segment, reason=action.reason, **where)
    elif isinstance(action, EnterPath):
        log("entered_path", path=action.path.value, reason=action.reason, **where)
    elif isinstance(action, End):
        log("ended", reason=action.reason, **where)
