"""Recording what became of sent mail: outcome -> update, the outcome commit, others' unsubscribes.

An outcome is committed before the connection that sent it takes another message
(docs/delivery.md); outcomes that arrive while a commit runs go together in the next
one (engine/scheduler/groupcommit.py). Every commit also reads the unsubscribes other
processes sharing the database recorded since the last look, so that claimed marketing
mail to those people stops too (engine/scheduler/stoplist.py).
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from engine.flow.status import SubscriberStatus
from engine.logs import log
from engine.mail.transport import Outcome, Result
from engine.scheduler.dbthread import in_db_thread
from engine.scheduler.groupcommit import GroupCommit
from engine.scheduler.outcomes import Claimed, DeliveryUpdate, final, later
from engine.scheduler.stoplist import Stoplist
from engine.scheduler.throttle import recipient_domain
from engine.store import queries
from engine.store.db import DbConnection, DbEngine, once_more_if_lost, transaction
from engine.store.status import DeliveryStatus

# Back-off after a 4xx, by attempt: as MTAs do, short at first, then every 4 hours
# until the lifetime (3 days by default) runs out.
BACKOFF = (
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
)

# What an attempt that neither went nor may be retried comes to.
_FINAL = {
    Outcome.BOUNCED: DeliveryStatus.BOUNCED,
    Outcome.REJECTED: DeliveryStatus.REJECTED,
    Outcome.UNKNOWN: DeliveryStatus.UNKNOWN,
}

# Events recorded by concurrent transactions may commit out of id order.
UNSUBSCRIBE_LOOKBACK = 200


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


@dataclass(frozen=True)
class RetryRules:
    """What a failed attempt leads to: how long 4xx replies are retried, and whether an unknown outcome is."""

    retry_lifetime: timedelta
    resend_unknown: bool


def after_attempt(
    row: Claimed, result: Result, now: datetime, rules: RetryRules, release: str | None = None
) -> DeliveryUpdate:
    """The update an attempt's result leads to (logged); a 421 also names the domain to pause.

    `release`: the release the message was rendered from, recorded on the delivery.
    """
    attempts = row["attempts"] + 1
    where = {
        "delivery": row["id"],
        "message_id": row["message_id"],
        "funnel": row["funnel"],
        "step": row["step"],
        "code": result.code,
        "reply": result.reply,
        "attempts": attempts,
    }
    outcome = result.outcome
    if outcome is Outcome.SENT:
        log("sent", **where)
        return final(row, DeliveryStatus.SENT, now, result, attempts, sent_at=now, release=release)
    if outcome is Outcome.UNKNOWN and rules.resend_unknown:
        outcome = Outcome.RETRY
    if outcome is Outcome.RETRY:
        update = _retry(row, result, now, rules, attempts, where, release)
        if result.domain_wide:
            domain = recipient_domain(row["email"])
            return replace(update, domain=domain, domain_paused_until=now + backoff(attempts))
        return update
    status = _FINAL[outcome]
    log(status, **where)
    return final(row, status, now, result, attempts, release=release)


def _retry(
    row: Claimed, result: Result, now: datetime, rules: RetryRules, attempts: int, where: dict[str, Any],
    release: str | None,
) -> DeliveryUpdate:
    # From the first attempt, not the decision: mail held for the warm-up or a
    # throttled domain may wait days before it is first tried.
    if now - (row["first_attempt_at"] or now) >= rules.retry_lifetime:
        log("failed", why="retried for the whole retry lifetime", **where)
        return final(row, DeliveryStatus.FAILED, now, result, attempts, release=release)
    log("deferred", retry_at=(now + backoff(attempts)).isoformat(), **where)
    return later(row, now + backoff(attempts), now, result.reply, result, attempts, release)


class Recorder:
    """Commits delivery updates in groups, and adds others' unsubscribes to the stop list as it goes."""

    def __init__(
        self, db_engine: DbEngine, db_executor: Executor, stoplist: Stoplist, lease: timedelta
    ) -> None:
        self.db_engine = db_engine
        self.db_executor = db_executor
        # Unsubscribes stop claimed mail too: this process's web side adds them at once,
        # other processes' arrive with every commit (see_unsubscribes).
        self.stoplist = stoplist
        self.lease = lease
        self._commits: GroupCommit[DeliveryUpdate] = GroupCommit(self._write)
        self._seen_event: int | None = None
        self._seen_unsubscribes: set[int] = set()  # event ids within the look-back, already added

    async def record(self, update: DeliveryUpdate) -> None:
        """Return once `update` is committed."""
        await self._commits.submit(update)

    def see_unsubscribes(self, conn: DbConnection, now: datetime) -> None:
        """Add unsubscribes recorded since the last look (by any process) to the stop list."""
        if self._seen_event is None:
            # First look: those recent enough to matter for a claim still in flight.
            newest = queries.last_event_id(conn)
            rows = queries.unsubscribes_after(conn, 0, since=now - self.lease * 2)
        else:
            newest = self._seen_event
            # Ids are handed out at insert but committed in any order: look a little back,
            # and add only what was not seen before.
            rows = queries.unsubscribes_after(conn, max(0, self._seen_event - UNSUBSCRIBE_LOOKBACK))
            rows = [r for r in rows if r["id"] not in self._seen_unsubscribes]
        self._seen_event = max([newest, *(r["id"] for r in rows)])
        if rows:
            self.stoplist.add((r["subscriber_id"], r["funnel"]) for r in rows)
            self._seen_unsubscribes.update(r["id"] for r in rows)
            floor = self._seen_event - UNSUBSCRIBE_LOOKBACK
            self._seen_unsubscribes = {i for i in self._seen_unsubscribes if i > floor}

    async def _write(self, updates: list[DeliveryUpdate]) -> None:
        await in_db_thread(self.db_executor, self._write_sync, updates)

    def _write_sync(self, updates: list[DeliveryUpdate]) -> None:
        """Commit the outcomes; once more on a new connection if the first was lost before its commit.

        Those emails went out: an outcome not committed is an email sent again once its lease
        runs out. A connection the server dropped a moment ago (not pinged: store/db.py) fails
        at the first statement, with nothing written, so the second try is safe.
        """
        once_more_if_lost(partial(self._commit, updates))

    def _commit(self, updates: list[DeliveryUpdate]) -> None:
        with transaction(self.db_engine) as conn:
            self.see_unsubscribes(conn, updates[0].updated_at)
            queries.record_outcomes(conn, [update.columns() for update in updates])
            for update in updates:
                if update.status is DeliveryStatus.BOUNCED:
                    now = update.updated_at
                    queries.suppress(conn, update.address, "bounced", now, update.last_reply)
                    queries.set_subscriber_status(conn, update.subscriber_id, SubscriberStatus.BOUNCED, now)
                    queries.cancel_pending_deliveries(
                        conn, update.subscriber_id, DeliveryStatus.SUPPRESSED, now
                    )
                    queries.wake_enrollments(conn, update.subscriber_id, now)
