"""Sending a claimed batch: messages composed a round ahead, a few workers each sending one at a time.

For each claimed delivery the sender decides whether it may go (the address, the funnel
and step still there, the sending policy) and composes it; a worker then checks the stop
list and the domain's 421 pause once more, sends it through the transport and waits for
its outcome to be committed before taking the next one: a process killed at any moment
leaves at most one message per connection sent but unrecorded (docs/delivery.md).

Messages are composed a round at a time (as many as there are workers), not one between
each send: composing is CPU work, and done back to back it keeps its code and data in the
CPU's caches. Interleaved with the sockets, the event loop and the database thread it
cost about half as much again (docs/benchmarks.md, "Composed a round ahead").
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from engine.flow.status import BLOCKED_STATUSES, SubscriberStatus
from engine.logs import log
from engine.mail.compose import ComposeError, TemplateFileError, Tracking, compose
from engine.mail.context import Subscriber
from engine.mail.links import SignedLinks
from engine.mail.transport import OK, Outgoing, Transport, TransportState
from engine.scheduler.clock import Clock
from engine.scheduler.decide import MISSING_FUNNEL_RETRY
from engine.scheduler.funnels import Funnels
from engine.scheduler.outcomes import Claimed, DeliveryUpdate, final, later
from engine.scheduler.policy import SendPolicy
from engine.scheduler.recording import Recorder, RetryRules, after_attempt
from engine.scheduler.stoplist import Stoplist
from engine.stats.metrics import Metrics
from engine.store.status import DeliveryStatus

# A render the files broke (engine/mail/compose.py, TemplateFileError) is tried again this
# often: the fix may come in any reload, and the email must not be lost meanwhile.
RENDER_HELD_RETRY = timedelta(minutes=10)
RENDER_HELD_FIX = ("correct the template or the sequence file: held emails go once a release that "
                   "renders them is live (tried again at each reload and every 10 minutes)")
COMPOSE_CRASHED_FIX = ("a fault of the engine, not of your files: report it with this line; the email "
                       "waits and is tried again every 10 minutes, and the rest of the batch is sent")
TRANSPORT_FIX = ("check that the SMTP server is up and reachable from here and the smtp_* settings "
                 "(host, port, tls, username, password); emails wait and are retried, none is lost")


@dataclass
class _RenderHold:
    """The emails of one batch held for one reason: a template of a release that could not render
    them, or one kind of fault in composing (logged once for the batch either way)."""

    error: str  # the first one's; each delivery's own is in its last_reply
    steps: set[str] = field(default_factory=set)  # "funnel/step"
    held: int = 0


def _held(holds: dict[Any, _RenderHold], key: Any, reason: str, row: Claimed, now: datetime,
          reply: str) -> DeliveryUpdate:
    """Hold `row` 10 minutes, counted in `holds[key]` for the batch's one log line of that reason."""
    hold = holds.setdefault(key, _RenderHold(reason))
    hold.held += 1
    hold.steps.add(f"{row['funnel']}/{row['step']}")
    return later(row, now + RENDER_HELD_RETRY, now, reply[:500])


class _Composed(NamedTuple):
    """A claimed delivery, the release it was composed with, and its message (or why it may not go)."""

    row: Claimed
    funnels: Funnels
    prepared: Outgoing | DeliveryUpdate


@dataclass(frozen=True)
class SendSettings:
    """What sending needs from Settings: links, tracking, retries and how many messages go at once."""

    base_url: str
    secret: str
    concurrency: int
    retry: RetryRules
    track_clicks: bool = True
    track_opens: bool = True


class Sender:
    """Sends one claimed batch through a transport; every outcome is committed before the next send."""

    def __init__(
        self,
        funnels: Callable[[], Funnels],
        transport: Transport,
        clock: Clock,
        settings: SendSettings,
        policy: SendPolicy,
        recorder: Recorder,
        metrics: Metrics | None = None,
    ) -> None:
        self.funnels = funnels
        self.transport = transport
        self.clock = clock
        self.settings = settings
        self.policy = policy
        self.recorder = recorder
        self.metrics = metrics
        self._transport_seen: TransportState = OK  # the state last logged

    @property
    def stoplist(self) -> Stoplist:
        """The unsubscribes that stop claimed marketing mail (shared with the recorder and the web side)."""
        return self.recorder.stoplist

    async def send_all(self, claimed: list[Claimed]) -> int:
        """Send a claimed batch; how many of it a domain's rate or the warm-up held back."""
        queue = deque(claimed)
        ready: deque[_Composed] = deque()  # composed, in claim order, waiting for a worker
        throttled: Counter[str] = Counter()  # domain -> messages its rate held back
        render_held: dict[tuple[str, str], _RenderHold] = {}  # (template, release) -> its held emails
        crashed: dict[str, _RenderHold] = {}  # the exception's type -> the emails composing it raised
        held = 0
        workers = min(self.settings.concurrency, len(claimed))

        async def worker() -> None:
            nonlocal held
            while queue or ready:
                if not ready:  # no await until it is filled: one worker composes the round
                    self._compose_round(queue, ready, workers, render_held, crashed)
                update, outcome = await self._send_one(ready.popleft())
                await self.recorder.record(update)
                if update.held:
                    held += 1
                    if update.held == "throttle" and update.domain is not None:
                        throttled[update.domain] += 1
                if self.metrics is not None:
                    self.metrics.sends.inc(outcome)

        await asyncio.gather(*(worker() for _ in range(workers)))
        if throttled:  # once per batch, not per message
            log("throttled", held=sum(throttled.values()), domains=dict(throttled.most_common(20)))
        # Once per template and release a batch, not per email: thousands held would
        # otherwise write thousands of lines at every retry.
        for (template, release), hold in render_held.items():
            log("render_held", logging.WARNING, template=template, release=release, held=hold.held,
                steps=sorted(hold.steps), error=hold.error, fix=RENDER_HELD_FIX)
        for hold in crashed.values():  # the same: a fault in composing may hit every email
            log("compose_crashed", logging.ERROR, held=hold.held, steps=sorted(hold.steps), error=hold.error,
                fix=COMPOSE_CRASHED_FIX)
        return held

    def _compose_round(self, queue: deque[Claimed], ready: deque[_Composed], size: int,
                       render_held: dict[tuple[str, str], _RenderHold],
                       crashed: dict[str, _RenderHold]) -> None:
        """Compose the next `size` claimed deliveries into `ready` (an update for those that may not go).

        A message that is to go is counted against the warm-up now, so that none after it
        in the round can take the same last place (`_send_one` gives it back if it stops).
        """
        funnels = self.funnels()  # one release for the render and the record of it
        for _ in range(min(size, len(queue))):
            row = queue.popleft()
            try:
                prepared = self._prepare(row, funnels, render_held)
            except Exception as error:  # none expected: the engine's own fault, not the files' or data's
                prepared = self._compose_fault(row, error, crashed)
            if isinstance(prepared, Outgoing):
                self.policy.spend(row)
            ready.append(_Composed(row, funnels, prepared))

    def _compose_fault(self, row: Claimed, error: Exception,
                       crashed: dict[str, _RenderHold]) -> DeliveryUpdate:
        """Hold one email that composing raised on unexpectedly (a bug): the rest of the batch goes.

        It waits as a render the files broke does, and is tried again in 10 minutes (a
        release with a fix may be live by then); `crashed` counts it for the batch's one
        error line per kind of exception, which says what to report.
        """
        now = self.clock.now()
        reason = f"{type(error).__name__}: {error}"[:300]
        return _held(crashed, type(error).__name__, reason, row, now, f"held: composing it failed: {reason}")

    async def _send_one(self, composed: _Composed) -> tuple[DeliveryUpdate, str]:
        """Send a composed message if it may still go; its update and its outcome for the metrics."""
        row, funnels, prepared = composed
        if isinstance(prepared, Outgoing):
            # Since it was composed: an unsubscribe, or a 421 from its domain to another message.
            stopped = (
                final(row, DeliveryStatus.SUPPRESSED, self.clock.now(), reply="not sent: unsubscribed")
                if row["marketing"] and self.stoplist.stops(row["subscriber_id"], row["funnel"])
                else self.policy.paused(row, self.clock.now())
            )
            if stopped is not None:  # its warm-up place and its domain's slot go to the next
                self.policy.unspend(row)
                prepared = stopped
        if not isinstance(prepared, Outgoing):
            return prepared, _unsent_outcome(prepared)
        result = await self.transport.send(prepared)
        self._watch_transport()
        update = after_attempt(row, result, self.clock.now(), self.settings.retry, funnels.release.id)
        if update.domain is not None and update.domain_paused_until is not None:
            self.policy.pause(update.domain, update.domain_paused_until)
        return update, str(update.status)

    async def check_transport(self) -> None:
        """Let a degraded transport look for its server (at each tick), and log a change."""
        await self.transport.check()
        self._watch_transport()

    def _watch_transport(self) -> None:
        """One WARNING when the transport degrades and one when it recovers, not one per email.

        Each deferred email still has its own `deferred` line at INFO; these two are the
        ones a person must see. No await between the read and the write: one worker logs.
        """
        state, seen = self.transport.state, self._transport_seen
        if state.ok == seen.ok:
            return
        self._transport_seen = state
        if not state.ok:
            log("transport_degraded", logging.WARNING, error=state.error,
                since=state.since.isoformat(timespec="seconds") if state.since else None, fix=TRANSPORT_FIX)
        else:
            down = (datetime.now(UTC) - seen.since).total_seconds() if seen.since else None
            log("transport_recovered", logging.WARNING, degraded_seconds=down, last_error=seen.error)

    def _prepare(
        self, row: Claimed, funnels: Funnels, render_held: dict[tuple[str, str], _RenderHold]
    ) -> Outgoing | DeliveryUpdate:
        """The message to send, or the update that explains why it is not sent now."""
        now = self.clock.now()
        status = "suppressed" if row["suppressed"] else row["subscriber_status"]
        if status in (*BLOCKED_STATUSES, "suppressed") or (
            row["marketing"] and status == SubscriberStatus.UNSUBSCRIBED
        ):
            return final(row, DeliveryStatus.SUPPRESSED, now, reply=f"not sent: the address is {status}")
        plan = funnels.plans.get(row["funnel"])
        if plan is None:
            # The whole file is gone (renamed, or mid-deploy): wait for it as its
            # enrollments do, rather than lose the email.
            reply = f"waiting: no sequence file defines funnel '{row['funnel']}'"
            return later(row, now + MISSING_FUNNEL_RETRY, now, reply)
        # In the subscriber's language: that language's subject and template, else the
        # funnel's default; then the experiment's version decided for them.
        read = plan.as_read(row["step"], row["locale"], row.get("variant"))
        if read is None:  # the marketer removed this step: it is not to be sent
            return final(
                row,
                DeliveryStatus.FAILED,
                now,
                reply=f"not sent: step '{row['step']}' of funnel "
                f"'{row['funnel']}' is no longer in the sequence files",
            )
        plan, email = read
        held = self.policy.hold(row, plan, email, now)
        if held is not None:
            return held
        settings = self.settings
        links = SignedLinks(settings.base_url, settings.secret, row["message_id"], row["created_at"])
        subscriber = Subscriber(
            email=row["email"],
            name=row["name"],
            locale=row["locale"],
            timezone=row["timezone"],
            fields=row["fields"] or {},  # template_context copies them for the template
            given_first_name=row["first_name"],
            given_last_name=row["last_name"],
        )
        tracking = Tracking(settings.base_url, settings.track_clicks, settings.track_opens)
        try:
            return compose(
                plan, email, subscriber, links, funnels.renderer,
                message_id=row["message_id"], date=now, tracking=tracking,
                magnet=row["magnet"], segment=row["segment"],
            )
        except TemplateFileError as error:
            reason = str(error)
            key = (error.template, funnels.release.id)
            return _held(render_held, key, reason, row, now, f"held: {reason}")
        except ComposeError as error:
            reason = str(error)
            log("render_failed", delivery=row["id"], funnel=row["funnel"], step=row["step"], error=reason)
            return final(row, DeliveryStatus.FAILED, now, reply=f"not sent: {reason}"[:500])


def _unsent_outcome(update: DeliveryUpdate) -> str:
    """The metrics' outcome of a delivery that was not attempted (docs/operations.md, "Metrics")."""
    if update.held:
        return "throttled"
    return "waiting" if update.status is DeliveryStatus.DEFERRED else str(update.status)
