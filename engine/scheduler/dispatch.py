"""The sending half of a tick: claim queued deliveries, send them, record what happened.

Delivery semantics (docs/delivery.md): a delivery is claimed as 'sending' with a lease
before it is sent, and its outcome is committed before the connection that sent it
takes another message. A process killed at any moment therefore leaves at most one
message per open connection sent-but-unrecorded; those are sent again when the lease
runs out (at-least-once across crashes, at most one extra copy per connection per kill).

The parts: the sending policy (engine/scheduler/policy.py) says how much may go, the
sender (sending.py) composes and sends a claimed batch, the recorder (recording.py)
commits the outcomes. The Dispatcher claims and keeps them going until nothing is due.
"""

from __future__ import annotations

from concurrent.futures import Executor
from datetime import datetime, timedelta

from engine.logs import log
from engine.scheduler.clock import Clock
from engine.scheduler.dbthread import in_db_thread
from engine.scheduler.outcomes import Claimed
from engine.scheduler.policy import SendPolicy
from engine.scheduler.recording import Recorder
from engine.scheduler.sending import Sender
from engine.store import queries
from engine.store.db import DbEngine
from engine.store.rows import email_hash
from engine.store.status import DeliveryStatus


class Dispatcher:
    """Sends due deliveries through the sender at no more than the policy allows."""

    def __init__(
        self,
        db_engine: DbEngine,
        db_executor: Executor,
        clock: Clock,
        policy: SendPolicy,
        sender: Sender,
        recorder: Recorder,
        lease: timedelta,
        batch_size: int,
    ) -> None:
        self.db_engine = db_engine
        self.db_executor = db_executor
        self.clock = clock
        self.policy = policy
        self.sender = sender
        self.recorder = recorder
        self.lease = lease
        self.batch_size = batch_size
        self.stopping = False

    async def dispatch(self) -> int:
        """Send what is due until nothing is, the rate allows no more or a stop is asked; attempts made."""
        limiter = self.policy.limiter
        attempted = 0
        await self.sender.check_transport()  # /healthz recovers with the server, not at the next retry
        while not self.stopping:
            wanted = limiter.take(self.batch_size)
            if wanted == 0:
                break
            now = self.clock.now()
            claimed = await in_db_thread(self.db_executor, self._claim, now, wanted)
            limiter.give_back(wanted - len(claimed))
            if not claimed:
                break
            held = await self.sender.send_all(claimed)
            # Held mail was not sent: its share of the global rate goes to the next claim,
            # so mail to other domains still goes out in this tick.
            limiter.give_back(held)
            attempted += len(claimed) - held
            if held == len(claimed):
                # All of it held (a throttled domain's backlog, a spent warm-up): claiming on
                # would only rewrite the rest of that backlog, row by row, within this tick.
                break
        return attempted

    def _claim(self, now: datetime, limit: int) -> list[Claimed]:
        with self.db_engine.begin() as conn:
            self.policy.count_warmup(conn, now)
            rows = queries.claim_due_deliveries(conn, now, limit, now + self.lease)
            blocked = queries.suppressed_hashes(conn, (email_hash(r["email"]) for r in rows))
            self.recorder.see_unsubscribes(conn, now)
        for row in rows:
            row["suppressed"] = bool(blocked) and email_hash(row["email"]) in blocked
        for row in rows:
            if row["status"] == DeliveryStatus.SENDING:  # its lease ran out: the daemon holding it died
                log(
                    "recovered",
                    delivery=row["id"],
                    message_id=row["message_id"],
                    funnel=row["funnel"],
                    step=row["step"],
                    attempts=row["attempts"],
                )
        return rows
