"""The sending half of a tick: claim queued deliveries, render, send, record what happened.

Delivery semantics (docs/delivery.md): a delivery is claimed as 'sending' with a lease
before it is sent, and its outcome is committed before the connection that sent it
takes another message. A process killed at any moment therefore leaves at most one
message per open connection sent-but-unrecorded; those are sent again when the lease
runs out (at-least-once across crashes, at most one extra copy per connection per kill).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jinja2 import TemplateError, UndefinedError
from sqlalchemy.engine import Connection, Engine

from engine.logs import log
from engine.mail.context import Subscriber, template_context
from engine.mail.links import SignedLinks
from engine.mail.message import build_message
from engine.mail.tracking import track
from engine.mail.transport import Outcome, Outgoing, Result, Transport
from engine.scheduler.clock import Clock
from engine.scheduler.dbthread import in_db_thread
from engine.scheduler.decide import MISSING_FUNNEL_RETRY
from engine.scheduler.funnels import Funnels
from engine.scheduler.stoplist import Stoplist
from engine.scheduler.throttle import DomainThrottle, recipient_domain
from engine.scheduler.warmup import Warmup
from engine.sequences.plan import PathKind
from engine.stats.metrics import Metrics
from engine.store import queries
from engine.store.rows import email_hash

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


# Events recorded by concurrent transactions may commit out of id order.
UNSUBSCRIBE_LOOKBACK = 200


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


@dataclass(frozen=True)
class DispatchSettings:
    """What the dispatcher needs from Settings."""

    base_url: str
    secret: str
    lease: timedelta
    retry_lifetime: timedelta
    resend_unknown: bool
    batch_size: int
    concurrency: int
    track_clicks: bool = True
    track_opens: bool = True


class RateLimiter:
    """A token bucket in real seconds: `rate` per second, bursts of at most `burst`."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.clock = clock  # real seconds; tests hand in their own
        self._tokens = self.burst
        self._at = clock()

    def take(self, wanted: int) -> int:
        """Take up to `wanted` whole tokens; returns how many were taken."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted

    def give_back(self, unused: int) -> None:
        """Return tokens taken but not used."""
        self._tokens = min(self.burst, self._tokens + unused)


@dataclass
class _Committer:
    """Group commit: outcomes that arrive while a write runs go together in the next one."""

    write: Callable[[list[dict[str, Any]]], Awaitable[None]]
    pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = field(default_factory=list)
    running: asyncio.Task[None] | None = None

    async def record(self, update: dict[str, Any]) -> None:
        """Return once `update` is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((update, future))
        if self.running is None or self.running.done():
            self.running = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                await self.write([update for update, _ in batch])
            except Exception as error:  # the senders' awaits must not hang
                for _, future in batch:
                    future.set_exception(error)
                continue
            for _, future in batch:
                future.set_result(None)


class Dispatcher:
    """Sends due deliveries through a transport at no more than the configured rate."""

    def __init__(
        self,
        db_engine: Engine,
        funnels: Callable[[], Funnels],
        transport: Transport,
        clock: Clock,
        settings: DispatchSettings,
        limiter: RateLimiter,
        db_executor: Executor,
        stoplist: Stoplist | None = None,
        throttle: DomainThrottle | None = None,
        warmup: Warmup | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db_engine = db_engine
        self.funnels = funnels
        self.transport = transport
        self.clock = clock
        self.settings = settings
        self.limiter = limiter
        self.db_executor = db_executor
        self.paused_domains: dict[str, datetime] = {}  # 421: this destination refuses for a while
        self.throttle = throttle  # per recipient domain; None: no per-domain limit
        self.warmup = warmup
        self.metrics = metrics
        self._warmup_left: int | None = None  # marketing emails today's warm-up still allows
        self._warmup_logged_until: datetime | None = None  # the day `warmup_limit` was logged for
        self.stopping = False
        self._committer = _Committer(self._write)
        # Unsubscribes stop claimed mail too: this process's web side adds them at once,
        # other processes' arrive with every commit (_see_unsubscribes).
        self.stoplist = stoplist if stoplist is not None else Stoplist(settings.lease.total_seconds() * 2)
        self._seen_event: int | None = None
        self._seen_unsubscribes: set[int] = set()  # event ids within the look-back, already added

    async def dispatch(self) -> int:
        """Send what is due until nothing is, the rate allows no more or a stop is asked; attempts made."""
        attempted = 0
        while not self.stopping:
            wanted = self.limiter.take(self.settings.batch_size)
            if wanted == 0:
                break
            now = self.clock.now()
            claimed = await in_db_thread(self.db_executor, self._claim, now, wanted)
            self.limiter.give_back(wanted - len(claimed))
            if not claimed:
                break
            held = await self._send_all(claimed)
            # Held mail was not sent: its share of the global rate goes to the next claim,
            # so mail to other domains still goes out in this tick.
            self.limiter.give_back(held)
            attempted += len(claimed) - held
            if held == len(claimed):
                # All of it held (a throttled domain's backlog, a spent warm-up): claiming on
                # would only rewrite the rest of that backlog, row by row, within this tick.
                break
        return attempted

    def _claim(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        with self.db_engine.begin() as conn:
            # Counted before the claim, in its transaction: the day's volume without this batch.
            self._warmup_left = self.warmup.remaining(conn, now) if self.warmup else None
            rows = queries.claim_due_deliveries(conn, now, limit, now + self.settings.lease)
            blocked = queries.suppressed_hashes(conn, (email_hash(r["email"]) for r in rows))
            self._see_unsubscribes(conn, now)
        for row in rows:
            row["suppressed"] = bool(blocked) and email_hash(row["email"]) in blocked
        for row in rows:
            if row["status"] == "sending":  # its lease ran out: the daemon holding it died
                log(
                    "recovered",
                    delivery=row["id"],
                    message_id=row["message_id"],
                    funnel=row["funnel"],
                    step=row["step"],
                    attempts=row["attempts"],
                )
        return rows

    async def _send_all(self, claimed: list[dict[str, Any]]) -> int:
        """Send a claimed batch; how many of it a domain's rate or the warm-up held back."""
        queue = deque(claimed)
        throttled: Counter[str] = Counter()  # domain -> messages its rate held back
        held = 0

        async def worker() -> None:
            nonlocal held
            while queue:
                row = queue.popleft()
                # Rendering here, one message at a time, spreads the CPU work between the
                # network waits instead of stalling every connection for a whole batch.
                prepared = self._prepare(row)
                if (
                    isinstance(prepared, Outgoing)
                    and row["marketing"]
                    and self.stoplist.stops(row["subscriber_id"], row["funnel"])
                ):
                    prepared = _final(row, "suppressed", self.clock.now(), reply="not sent: unsubscribed")
                if isinstance(prepared, Outgoing) and row["marketing"] and self._warmup_left is not None:
                    # Spent only by mail that goes: not by a failed render or a stopped send.
                    # No await since _prepare's check, so the workers cannot both take the last one.
                    self._warmup_left -= 1
                if isinstance(prepared, Outgoing):
                    result = await self.transport.send(prepared)
                    update = self._after_attempt(row, result)
                    outcome = update["status"]
                else:
                    update = prepared
                    outcome = _unsent_outcome(update)
                await self._committer.record(update)
                if update.get("~held"):
                    held += 1
                    if update["~held"] == "throttle":
                        throttled[update["~domain"]] += 1
                if self.metrics is not None:
                    self.metrics.sends.inc(outcome)

        await asyncio.gather(*(worker() for _ in range(min(self.settings.concurrency, len(claimed)))))
        if throttled:  # once per batch, not per message
            log("throttled", held=sum(throttled.values()), domains=dict(throttled.most_common(20)))
        return held

    def _prepare(self, row: dict[str, Any]) -> Outgoing | dict[str, Any]:
        """The message to send, or the update that explains why it is not sent now."""
        now = self.clock.now()
        status = "suppressed" if row["suppressed"] else row["subscriber_status"]
        if status in (*queries.BLOCKED_STATUSES, "suppressed") or (
            row["marketing"] and status == "unsubscribed"
        ):
            return _final(row, "suppressed", now, reply=f"not sent: the address is {status}")
        funnels = self.funnels()
        plan = funnels.plans.get(row["funnel"])
        if plan is None:
            # The whole file is gone (renamed, or mid-deploy): wait for it as its
            # enrollments do, rather than lose the email.
            return _later(
                row,
                now + MISSING_FUNNEL_RETRY,
                now,
                f"waiting: no sequence file defines funnel '{row['funnel']}'",
            )
        email = plan.email(row["step"])
        if email is None:  # the marketer removed this step: it is not to be sent
            return _final(
                row,
                "failed",
                now,
                reply=f"not sent: step '{row['step']}' of funnel "
                f"'{row['funnel']}' is no longer in the sequence files",
            )
        if row["marketing"] and plan.window and not plan.window.contains(now, row["timezone"]):
            # Late (downtime, a backlog): wait for the window rather than arrive at night.
            return _later(
                row, plan.window.next_open(now, row["timezone"]), now, "waiting for the send window"
            )
        domain = recipient_domain(row["email"])
        paused = self.paused_domains.get(domain)
        if paused and paused > now:
            return _later(row, paused, now, f"{domain} answered 421; waiting")
        held = self._hold(row, now)
        if held is not None:
            return held
        links = SignedLinks(
            self.settings.base_url,
            self.settings.secret,
            row["message_id"],
            row["created_at"],
        )
        if email.path is PathKind.CONFIRM:
            # Until they confirm, the name and fields are what a stranger may have typed into
            # a form: the confirmation carries none of it (a signup form is no way to mail
            # text to someone), neither in the To header nor in the template.
            subscriber = Subscriber(email=row["email"], locale=row["locale"], timezone=row["timezone"])
        else:
            subscriber = Subscriber(
                email=row["email"],
                name=row["name"],
                locale=row["locale"],
                timezone=row["timezone"],
                fields=dict(row["fields"] or {}),
            )
        try:
            context = template_context(
                plan,
                email,
                subscriber,
                links,
                magnet=row["magnet"],
                segment=row["segment"],
                uses=funnels.renderer.names(email.template, email.subject),
            )
            rendered = funnels.renderer.render(
                email, context, key=(plan.funnel, email.id, row["magnet"], row["segment"])
            )
            html, text = rendered.html, rendered.text
            if email.path is not PathKind.CONFIRM:  # nothing is counted before consent
                html, text = track(
                    html,
                    text,
                    links,
                    self.settings.base_url,
                    clicks=self.settings.track_clicks,
                    opens=self.settings.track_opens,
                )
            data = build_message(
                sender=plan.sender,
                to_name=subscriber.name,
                to_address=subscriber.email,
                subject=rendered.subject,
                html=html,
                text=text,
                message_id=row["message_id"],
                date=now,
                reply_to=plan.reply_to,
                # Every email to a subscriber carries it; only the double opt-in request does not
                # (the person is not on the list until they confirm).
                list_unsubscribe=None if email.path is PathKind.CONFIRM else links.unsubscribe(email),
            )
        except (TemplateError, ValueError) as error:
            reason = _render_problem(email.template, error)
            log("render_failed", delivery=row["id"], funnel=row["funnel"], step=row["step"], error=reason)
            return _final(row, "failed", now, reply=f"not sent: {reason}"[:500])
        return Outgoing(row["message_id"], plan.sender_parts[1], subscriber.email, data)

    def _hold(self, row: dict[str, Any], now: datetime) -> dict[str, Any] | None:
        """The update that holds `row` back (no attempt) if today's warm-up or its domain's rate is spent."""
        left = self._warmup_left if row["marketing"] else None  # None: the warm-up does not apply
        if left is not None and left <= 0 and self.warmup is not None:
            day, volume, until = self.warmup.day(now), self.warmup.limit(now), self.warmup.next_day(now)
            if self._warmup_logged_until != until:  # once a day
                self._warmup_logged_until = until
                log("warmup_limit", day=day, volume=volume, resumes_at=until.isoformat())
            reply = f"waiting: warm-up day {day} allows {volume} marketing emails; used up"
            return {**_later(row, until, now, reply), "~held": "warmup"}
        if self.throttle is not None:
            domain = recipient_domain(row["email"])
            wait = self.throttle.take(domain)
            if wait > 0:
                reply = f"throttled: {domain} takes {self.throttle.rate_for(domain):g} emails a second"
                later = _later(row, now + timedelta(seconds=wait), now, reply)
                return {**later, "~held": "throttle", "~domain": domain}
        return None

    def _after_attempt(self, row: dict[str, Any], result: Result) -> dict[str, Any]:
        now = self.clock.now()
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
            return _final(row, "sent", now, result, attempts, sent_at=now)
        if outcome is Outcome.UNKNOWN and self.settings.resend_unknown:
            outcome = Outcome.RETRY
        if outcome is Outcome.RETRY:
            if result.domain_wide:
                domain = recipient_domain(row["email"])
                self.paused_domains[domain] = now + backoff(attempts)
            # From the first attempt, not the decision: mail held for the warm-up or a
            # throttled domain may wait days before it is first tried.
            if now - (row["first_attempt_at"] or now) >= self.settings.retry_lifetime:
                log("failed", why="retried for the whole retry lifetime", **where)
                return _final(row, "failed", now, result, attempts)
            log("deferred", retry_at=(now + backoff(attempts)).isoformat(), **where)
            return _later(row, now + backoff(attempts), now, result.reply, result, attempts)
        status = {Outcome.BOUNCED: "bounced", Outcome.REJECTED: "rejected", Outcome.UNKNOWN: "unknown"}[
            outcome
        ]
        log(status, **where)
        return _final(row, status, now, result, attempts)

    async def _write(self, updates: list[dict[str, Any]]) -> None:
        await in_db_thread(self.db_executor, self._write_sync, updates)

    def _see_unsubscribes(self, conn: Connection, now: datetime) -> None:
        """Add unsubscribes recorded since the last look (by any process) to the stop list."""
        if self._seen_event is None:
            # First look: those recent enough to matter for a claim still in flight.
            newest = queries.last_event_id(conn)
            rows = queries.unsubscribes_after(conn, 0, since=now - self.settings.lease * 2)
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

    def _write_sync(self, updates: list[dict[str, Any]]) -> None:
        with self.db_engine.begin() as conn:
            self._see_unsubscribes(conn, updates[0]["updated_at"])
            queries.record_outcomes(
                conn, [{k: v for k, v in u.items() if not k.startswith("~")} for u in updates]
            )
            for update in updates:
                if update["status"] == "bounced":
                    now = update["updated_at"]
                    queries.suppress(conn, update["~email"], "bounced", now, update["last_reply"])
                    queries.set_subscriber_status(conn, update["~subscriber_id"], "bounced", now)
                    queries.cancel_pending_deliveries(conn, update["~subscriber_id"], "suppressed", now)
                    queries.wake_enrollments(conn, update["~subscriber_id"], now)


def _unsent_outcome(update: dict[str, Any]) -> str:
    """The metrics' outcome of a delivery that was not attempted (docs/operations.md, "Metrics")."""
    if update.get("~held"):
        return "throttled"
    return "waiting" if update["status"] == "deferred" else str(update["status"])


def _render_problem(template: str, error: Exception) -> str:
    """What went wrong for this one subscriber, and what the marketer can write instead."""
    if isinstance(error, UndefinedError):
        # validate checks every name a template uses; only a custom field can be missing
        # for one subscriber and not for the sample ones.
        return (
            f"{template}: {error.message}; this subscriber lacks a value the template uses: "
            "write {{ subscriber.fields.NAME | default('') }} or give every subscriber the field"
        )
    if isinstance(error, TemplateError):
        return f"{template}: {error}"
    return str(error)  # the address or the sender cannot be written into a message


def _update(
    row: dict[str, Any],
    status: str,
    now: datetime,
    next_attempt_at: datetime | None,
    result: Result | None,
    attempts: int | None,
    reply: str | None,
    sent_at: datetime | None,
) -> dict[str, Any]:
    tried = attempts is not None and attempts > row["attempts"]
    return {
        "_id": row["id"],
        "status": status,
        "next_attempt_at": next_attempt_at,
        "attempts": row["attempts"] if attempts is None else attempts,
        "last_code": result.code if result else row["last_code"],
        "last_reply": (result.reply if result else reply or row["last_reply"] or "")[:500],
        "sent_at": sent_at,
        "first_attempt_at": row["first_attempt_at"] or (now if tried else None),
        "updated_at": now,
        # Not columns: what the write needs to suppress a bounced address.
        "~email": row["email"],
        "~subscriber_id": row["subscriber_id"],
    }


def _final(
    row: dict[str, Any],
    status: str,
    now: datetime,
    result: Result | None = None,
    attempts: int | None = None,
    reply: str | None = None,
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    return _update(row, status, now, None, result, attempts, reply, sent_at)


def _later(
    row: dict[str, Any],
    at: datetime,
    now: datetime,
    reply: str,
    result: Result | None = None,
    attempts: int | None = None,
) -> dict[str, Any]:
    return _update(row, "deferred", now, at, result, attempts, reply, None)
