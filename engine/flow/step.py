"""The pure interpreter: one enrollment, its facts and `now` in; new state, actions, wake time out.

No I/O happens here. The live scheduler and `funnel simulate` both call `step`, so what
a marketer simulates is what the daemon does. Calling `step` again before `wake_at` (or
with no new event) changes nothing and emits nothing, so a tick that runs early or twice
is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from engine.flow import variants, waits
from engine.flow.actions import Action, Defer, End, EnterPath, EnterSegment, Send, Skip
from engine.flow.broadcasts import deferred_waiting, on_broadcasts, pending
from engine.flow.broadcasts import skip as skip_broadcast
from engine.flow.joining import on_answering, on_confirming, on_magnet, on_survey
from engine.flow.late import late_answer
from engine.flow.moves import Move, end, send
from engine.flow.position import next_email
from engine.flow.state import Done, Event, EventType, Facts, Stage, State
from engine.flow.status import BLOCKED_STATUSES
from engine.sequences.plan import EmailStep, PathKind, PathPlan, Plan, Role, SegmentPlan
from engine.sequences.values import format_delay

# Signs that a person still reads: idle time (for win-back) counts from the latest of these.
ENGAGED = frozenset({EventType.OPEN, EventType.CLICK, EventType.ANSWER, EventType.PURCHASE,
                     EventType.CONFIRMED, EventType.SIGNED_UP_AGAIN})
# What brings someone back from win-back or sunset: not an open, which an image proxy fakes.
RETURNS = ENGAGED - {EventType.OPEN}
# How often an enrollment waiting behind a held email looks again (held mail is retried as often).
HELD_RECHECK = timedelta(minutes=10)


@dataclass(frozen=True)
class Outcome:
    """What one call of `step` decided."""

    state: State
    actions: tuple[Action, ...]
    wake_at: datetime | None  # None: nothing to do until an event arrives
    wait: waits.Wait  # why it waits until wake_at (engine/flow/waits.py); its `at` is wake_at
    entered: tuple[Stage, ...] = ()  # stages entered on the way, in order: the funnel's milestones


def start(plan: Plan, signed_up_at: datetime) -> State:
    """The state of a new enrollment."""
    stage = Stage.CONFIRMING if plan.double_opt_in else Stage.MAGNET
    return State(stage=stage, since=signed_up_at)


def step(plan: Plan, state: State, facts: Facts, now: datetime) -> Outcome:
    """Advance one enrollment to `now`: send what is due, move on, say when to wake next."""
    facts = facts.until(now)
    if facts.status in BLOCKED_STATUSES and state.stage is not Stage.ENDED:
        return _blocked(plan, state, facts)
    actions: list[Action] = []
    entered: list[Stage] = []
    # Every move sends, skips or changes stage, so the loop ends; the bound is a guard.
    for _ in range(8 * plan.email_count + 32):
        result = _next(plan, state, facts, now)
        if not isinstance(result, Move):
            return Outcome(state, tuple(actions), result.at, result, tuple(entered))
        if result.state.stage is not state.stage:
            entered.append(result.state.stage)
        state = result.state
        for action in result.actions:
            if isinstance(action, Send) and action.variant is None and action.email.variants:
                action = replace(action, variant=variants.for_step(action.email, facts))
            actions.append(action)
            if isinstance(action, Send):
                facts = facts.after_send(action.email, now)
    raise RuntimeError(f"funnel '{plan.funnel}': step() made no progress at {now}")  # pragma: no cover


def _blocked(plan: Plan, state: State, facts: Facts) -> Outcome:
    """A bounced or complained address ends the enrollment, whatever it waited for; its pending
    broadcasts are skipped with it, as nothing will look at the enrollment again."""
    reason = f"the address {facts.status}"
    skips: list[Action] = []
    for broadcast, _due in pending(plan, state, facts):
        spared = skip_broadcast(state, broadcast, reason)
        state = spared.state
        skips.extend(spared.actions)
    ended = state.replaced(stage=Stage.ENDED, step=None, reason=reason)
    # Not in `entered`: ended from outside the funnel's walk, this ending never wrote a
    # milestone, and the stage counts (engine/store/funnelstats.py) stay as they were.
    return Outcome(ended, (*skips, End(reason)), None, waits.AddressBlocked(facts.status))


def _next(plan: Plan, state: State, facts: Facts, now: datetime) -> waits.Wait | Move:
    """The next move, or why none is due: a due broadcast first, then the funnel's own walk;
    of two waits, the one that ends sooner."""
    broadcast = on_broadcasts(plan, state, facts, now, lambda: ahead(plan, state, facts)) \
        if facts.broadcasts else None
    if isinstance(broadcast, Move):
        return broadcast
    walked = _walk_funnel(plan, state, facts, now)
    if broadcast is not None and not isinstance(walked, Move) and (
            walked.at is None or (broadcast.at is not None and broadcast.at < walked.at)):
        return broadcast
    return walked


def ahead(plan: Plan, state: State, facts: Facts) -> tuple[EmailStep, ...]:
    """The emails still ahead of the enrollment in the path it walks, in order ((): none, or not a path)."""
    if state.stage.path is None:
        return ()
    path = walked_path(plan, state, facts)
    current = _current(path, state) if path is not None else None
    if path is None or current is None:
        return ()
    index = path.index(current.id)
    return path.steps[index:] if index is not None else ()


def _walk_funnel(plan: Plan, state: State, facts: Facts, now: datetime) -> waits.Wait | Move:
    if state.stage is Stage.ENDED:
        return waits.Ended(state.reason)
    if facts.first(EventType.UNSUBSCRIBE):
        return end(state, "unsubscribed")
    if state.stage in (Stage.WINBACK, Stage.SUNSET):
        back = _returned(plan, state, facts)
        if back is not None:
            return back
    bought = _purchase_moves(plan, state, facts)
    if bought is not None:
        return bought
    late = late_answer(plan, state, facts)  # engine/flow/late.py: the rule for late answers
    if late is not None:
        return late
    handler = _HANDLERS[state.stage]
    return handler(plan, state, facts, now)


def _purchase_moves(plan: Plan, state: State, facts: Facts) -> Move | None:
    """A qualifying purchase ends nurture or sales at once and starts the customer path."""
    if state.stage not in (Stage.SURVEY, Stage.ANSWERING, Stage.NURTURE, Stage.SALES,
                           Stage.SALES_DONE) or not any(e.type is EventType.PURCHASE for e in facts.events):
        return None
    segment_id = state.segment if plan.segment(state.segment) else _decide(plan, facts)
    segment = plan.segment(segment_id) or plan.segments[0]
    purchase = _qualifying_purchase(segment, facts)
    if purchase is None:
        return None
    actions: list[Action] = []
    if state.segment != segment.id:
        actions.append(EnterSegment(segment.id, "purchase before the survey was answered"))
    # The product may name another segment's customer path (`products:`); the reason says which.
    _, why = plan.customer_segment(segment, purchase.product)
    actions.append(EnterPath(PathKind.CUSTOMER, why))
    # Spacing counts from the purchase, or from the current stage when the purchase is
    # older (a customer who signs up again must not get their onboarding in a rush).
    moved = state.replaced(stage=Stage.CUSTOMER, segment=segment.id,
                    since=max(purchase.at, state.since), step=None, last_sent_at=None,
                    deadline=None)
    return Move(moved, tuple(actions))


def _qualifying_purchase(segment: SegmentPlan, facts: Facts) -> Event | None:
    """The earliest purchase that ends `segment`'s sales path: the one that makes a customer."""
    return min((e for e in facts.events if e.type is EventType.PURCHASE and segment.ends_sales(e.product)),
               key=lambda e: e.at, default=None)


def _customer_path(plan: Plan, segment: SegmentPlan, state: State, facts: Facts) -> PathPlan:
    """The customer path a customer walks: the one they already had emails from, else the one
    their purchase starts (so that adding a product to `products:` moves nobody mid-path)."""
    had = [d.step for d in state.done if d.path is PathKind.CUSTOMER]
    if had:
        walked = next((s for s in plan.segments if s.customer.index(had[-1]) is not None), None)
        if walked is not None:
            return walked.customer
    purchase = _qualifying_purchase(segment, facts)
    return plan.customer_segment(segment, purchase.product if purchase else None)[0].customer


def walked_path(plan: Plan, state: State, facts: Facts) -> PathPlan | None:
    """The path a nurture, sales, customer or win-back stage walks; None: its section was removed."""
    kind = state.stage.path
    if kind is PathKind.WINBACK:
        return plan.winback.path if plan.winback else None
    segment = plan.segment(state.segment)
    if kind is None or segment is None:
        return None
    return _customer_path(plan, segment, state, facts) if kind is PathKind.CUSTOMER \
        else segment.path(kind)


def _decide(plan: Plan, facts: Facts) -> str:
    return plan.survey.decide(facts.answers()) if plan.survey else plan.default_segment


def _walk(plan: Plan, state: State, facts: Facts, now: datetime) -> waits.Wait | Move:
    """Nurture, sales, customer and win-back: send each email of the path when due, in order."""
    kind = state.stage.path
    assert kind is not None
    path = walked_path(plan, state, facts)
    if path is None and kind is PathKind.WINBACK:  # the section was removed: back to where they were
        return _back(state, now, "the win-back emails were removed")
    if path is None:
        moved = state.replaced(segment=plan.default_segment, step=None)
        return Move(moved, (EnterSegment(plan.default_segment,
                                          f"segment '{state.segment}' was removed"),))
    deferred = deferred_waiting(state, path.steps)
    ready = next((e for e in deferred if not _breaks_ratio(plan, state, kind)), None)
    email = ready or _current(path, state)
    if email is None and deferred:  # the path is over before the ratio let them go
        return _drop_deferred(state, deferred)
    if email is None:
        return _path_finished(plan, state, kind, now)
    if email.id != state.step and ready is None:
        # Moving to the email changes only `step`, which nothing in step() reads before this
        # line: the walk goes on from there at once instead of in a second call of _next (the
        # first email of every path). Its wait is still a move of its own, which step() keeps.
        at_email = state.replaced(step=email.id)
        went = _at_email(plan, at_email, facts, now, path, kind, email, ready)
        return went if isinstance(went, Move) else Move(at_email)
    return _at_email(plan, state, facts, now, path, kind, email, ready)


def _at_email(plan: Plan, state: State, facts: Facts, now: datetime, path: PathPlan, kind: PathKind,
              email: EmailStep, ready: EmailStep | None) -> waits.Wait | Move:
    """The walk at `email` of `path`, the one it is at (or a deferred sale, `ready`): sent when due,
    else why it waits."""
    if email.id in facts.paused:
        # A guardrail (or a person) holds this email: wait here, do not skip it. Resuming
        # the step wakes everyone waiting at it.
        return waits.Paused(email)
    if facts.held:
        # An email before this one is held for its files: sending this one now would put it
        # in their inbox first, out of the path's order (and out of the ratio's windows).
        return waits.Held(facts.held[0], now + HELD_RECHECK)
    due = (state.last_sent_at or state.since) + email.after
    # An `anytime` email (a welcome) goes when due: no send window, no frequency cap.
    window = None if email.anytime else plan.window
    if now < due:
        return waits.Spacing(email, kind, state.last_sent_at is not None, due,
                       window.next_open(due, facts.timezone) if window else due)
    if window and not window.contains(now, facts.timezone):
        return waits.OutsideWindow(window.next_open(now, facts.timezone))
    allowed = now if email.anytime else plan.cap.next_allowed(facts.marketing_sent, now, facts.timezone)
    if allowed > now:
        return waits.CapReached(allowed, window.next_open(allowed, facts.timezone) if window else allowed)
    idle = _idle_since(facts)
    if kind is not PathKind.WINBACK and plan.winback and idle and now - idle >= plan.winback.after \
            and _mailed_since(state, facts, idle):
        # Not one more regular email to someone who stopped reading: win them back first.
        moved = state.replaced(stage=Stage.WINBACK, since=now, step=None, last_sent_at=None,
                        resume_stage=state.stage, resume_step=email.id)
        reason = f"no open or click for {format_delay(now - idle)}"
        return Move(moved, (EnterPath(PathKind.WINBACK, reason),))
    if ready is not None:  # a deferred sale goes now; the walk stays where it is
        went = Done(email.id, kind, email.role, deferred=True)
        return Move(state.replaced(done=(*state.done, went), last_sent_at=now), (Send(email, state.segment),))
    if email.role is Role.SALE and kind in _RATIO_PATHS and _breaks_ratio(plan, state, kind):
        after = _after(path, email)
        if not _breaks_ratio(plan, state, kind, broadcasts=False):
            # Only a broadcast's emails stand in its way: it waits instead of being lost.
            waiting = state.replaced(step=after, done=(*state.done, Done(email.id, kind, email.role,
                                                                         skipped=True, deferred=True)))
            return Move(waiting, (Defer(email, "a broadcast's sale is in the window of the "
                                               f"{plan.ratio} rule; it goes once the rule allows"),))
        skipped = state.replaced(step=after, done=(*state.done, Done(email.id, kind, email.role,
                                                                     skipped=True)))
        return Move(skipped, (Skip(email, f"sending it now would break the {plan.ratio} rule"),))
    return send(state, email, step=_after(path, email), last_sent_at=now)


# The ratio rule governs the paths that mix teaching and selling; sales and win-back do not.
_RATIO_PATHS = (PathKind.NURTURE, PathKind.CUSTOMER)


def _current(path: PathPlan, state: State) -> EmailStep | None:
    """The email the subscriber is at: the rule for edited paths is in engine/flow/position.py."""
    return next_email(path, state.done)


def _after(path: PathPlan, email: EmailStep) -> str | None:
    index = path.index(email.id)
    nxt = path.steps[index + 1] if index is not None and index + 1 < len(path.steps) else None
    return nxt.id if nxt else None


def _breaks_ratio(plan: Plan, state: State, kind: PathKind, broadcasts: bool = True) -> bool:
    """Whether one more sale now would put too many sales in the last window of emails.

    The validator already enforces the ratio on every file; this guards the mixed
    timelines that editing a live funnel can produce, and the broadcasts that came
    between the path's emails (`broadcasts=False`: as if they had not). A broadcast counts
    in the window of the path the recipient walked when it went, not in a later path's (a
    sale broadcast in nurture does not hold back a customer's sale months later); one
    recorded before its stage was kept counts in every path's (Done.during).
    """
    sent = [d.role for d in state.done if not d.skipped and _in_window(d, kind, broadcasts)]
    recent = sent[-(plan.ratio.window - 1):] if plan.ratio.window > 1 else []
    return not sent or sum(r is Role.SALE for r in recent) + 1 > plan.ratio.sale


def _in_window(done: Done, kind: PathKind, broadcasts: bool) -> bool:
    """Whether an email takes a place in the ratio's window of `kind`: the path's own, and a
    broadcast that went while it was walked (or before its stage was kept: Done.during)."""
    if done.path is kind:
        return True
    went_in = done.during
    return broadcasts and done.path is PathKind.BROADCAST and (went_in is None or went_in.path is kind)


def _drop_deferred(state: State, deferred: list[EmailStep]) -> Move:
    """The path ended while these sales still waited for the ratio: they are skipped, said so."""
    dropped = tuple(Done(e.id, e.path, e.role, skipped=True) for e in deferred)
    reason = "its path ended before the ratio allowed it after a broadcast's sale"
    return Move(state.replaced(done=(*state.done, *dropped)), tuple(Skip(e, reason) for e in deferred))


def _idle_since(facts: Facts) -> datetime | None:
    """Since when the subscriber has shown no sign of reading (None: unknown, never idle)."""
    seen = [e.at for e in facts.events if e.type in ENGAGED]
    if facts.joined_at is not None:
        seen.append(facts.joined_at)
    return max(seen, default=None)


def _mailed_since(state: State, facts: Facts, idle: datetime) -> bool:
    """Whether they were sent marketing email since `idle`: weeks of silence from us are not theirs."""
    return (state.last_sent_at is not None and state.last_sent_at > idle) or any(
        at > idle for at in facts.marketing_sent)


def _returned(plan: Plan, state: State, facts: Facts) -> Move | None:
    """A click (answer, purchase, new signup) during win-back or after sunset: back on their path."""
    sign = min((e for e in facts.events if e.type in RETURNS and e.at > state.since),
               key=lambda e: e.at, default=None)
    if sign is None:
        return None
    return _back(state, sign.at, f"{sign.type.value} after {state.stage.value}")


def _back(state: State, at: datetime, reason: str) -> Move:
    stage = state.resume_stage or Stage.NURTURE
    moved = state.replaced(stage=stage, since=at, step=state.resume_step, last_sent_at=None,
                    resume_stage=None, resume_step=None, reason=None)
    assert stage.path is not None
    return Move(moved, (EnterPath(stage.path, reason),))


def _path_finished(plan: Plan, state: State, kind: PathKind, now: datetime) -> waits.Wait | Move:
    if kind is PathKind.WINBACK:
        sunset_after = plan.winback.sunset_after if plan.winback else timedelta(0)
        due = (state.last_sent_at or state.since) + sunset_after
        if now < due:
            return waits.SunsetDue(sunset_after, due)
        reason = f"sunset: no click within {format_delay(sunset_after)} of the win-back emails"
        return Move(state.replaced(stage=Stage.SUNSET, since=due, step=None, reason=reason),
                     (End(reason),))
    if kind is PathKind.NURTURE:
        moved = state.replaced(stage=Stage.SALES, since=state.last_sent_at or state.since,
                        step=None, last_sent_at=None)
        return Move(moved, (EnterPath(PathKind.SALES, "nurture path finished"),))
    if kind is PathKind.SALES:
        reason = "sales path finished without a purchase"
        moved = state.replaced(stage=Stage.SALES_DONE, step=None, last_sent_at=None)
        return Move(moved, (End(reason),))
    return end(state, "customer path finished")


def _idle(plan: Plan, state: State, facts: Facts, now: datetime) -> waits.Wait:
    if state.stage is Stage.SUNSET:
        return waits.SunsetStage(state.reason)
    if state.stage is Stage.SALES_DONE:
        return waits.SalesOver()
    return waits.Ended(state.reason)


_HANDLERS = {
    Stage.CONFIRMING: on_confirming,
    Stage.MAGNET: on_magnet,
    Stage.SURVEY: on_survey,
    Stage.ANSWERING: on_answering,
    Stage.NURTURE: _walk,
    Stage.SALES: _walk,
    Stage.CUSTOMER: _walk,
    Stage.WINBACK: _walk,
    Stage.SUNSET: _idle,
    Stage.SALES_DONE: _idle,
    Stage.ENDED: _idle,
}
