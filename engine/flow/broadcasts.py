"""Broadcasts in a recipient's timeline: when one goes, waits or is skipped, and the ratio it shares.

Pure, like the rest of the interpreter: `step` (engine/flow/step.py) asks `on_broadcasts`
before it walks the funnel's paths, so the daemon, `funnel simulate` and `subscribers
show` apply one rule. Who is a recipient at all is the audience (`matches` here; the
store's SQL counts the same conditions over the whole list): a recipient's broadcasts
come in `Facts.broadcasts`, and each one they got or were spared is a `Done` of path
`broadcast` in their enrollment, so that it is decided once.

A broadcast is marketing mail of its funnel: it obeys the funnel's send window (unless
the file says `window: ignore`), the frequency cap counts it, a guardrail can pause it,
and it takes a place in the running window of the funnel's emails that the ratio (4:1)
is kept over: a sale broadcast counts as a sale, an education broadcast as education.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from engine.flow import waits
from engine.flow.actions import Send, Skip
from engine.flow.moves import Move
from engine.flow.state import Done, EventType, Facts, Stage, State
from engine.flow.status import BLOCKED_STATUSES
from engine.flow.variants import for_broadcast
from engine.sequences.plan import Audience, BroadcastPlan, EmailStep, PathKind, Plan, RatioBreak, Role

# Always left out of a broadcast, whatever its audience says; the reason a skip records.
# How often a recipient who gets an experiment's winner looks again while none is chosen.
WINNER_RECHECK = timedelta(minutes=1)
LEFT_OUT = {
    Stage.CONFIRMING: "they have not confirmed their address",
    Stage.WINBACK: "they are in win-back",
    Stage.SUNSET: "they were sunset",
}


def pending(plan: Plan, state: State, facts: Facts) -> list[tuple[BroadcastPlan, datetime]]:
    """The recipient's broadcasts not yet sent or skipped, earliest due first.

    A broadcast whose file left the release is not pending: nothing could render it.
    """
    passed = state.passed_ids()
    found = [(broadcast, due) for broadcast, due in
             ((plan.broadcast(broadcast_id), due) for broadcast_id, due in facts.broadcasts)
             if broadcast is not None and broadcast.email.id not in passed]
    return sorted(found, key=lambda pair: pair[1])


def on_broadcasts(plan: Plan, state: State, facts: Facts, now: datetime,
                  ahead: Callable[[], Sequence[EmailStep]]) -> Move | waits.Wait | None:
    """The earliest due broadcast sent or skipped (a Move); else why it waits; None: none is pending.

    `ahead`: the next emails of the recipient's path, in order (a sale among the first of
    them is a conflict for a `skip` broadcast; engine/flow/step.py knows the path), asked
    only for a sale broadcast that is due.
    """
    queue = pending(plan, state, facts)
    if not queue:
        return None
    broadcast, due = queue[0]
    email = broadcast.email
    if due > now:
        return waits.BroadcastDue(email, due)
    left_out = left_out_because(state, facts)
    if left_out is not None:
        return skip(state, broadcast, left_out)
    if email.id in facts.paused:
        return waits.Paused(email)
    tz = facts.timezone
    window = plan.window if broadcast.use_window else None
    if window and not window.contains(now, tz):
        return waits.OutsideWindow(window.next_open(now, tz))
    allowed = plan.cap.next_allowed(facts.marketing_sent, now, tz)
    if allowed > now:
        return waits.CapReached(allowed, window.next_open(allowed, tz) if window else allowed)
    if email.role is Role.SALE:
        conflict = ratio_conflict(plan, state, broadcast, ahead())
        if conflict is not None:
            return skip(state, broadcast, conflict)
    ready, variant = for_broadcast(broadcast, facts)
    if not ready:
        return waits.WinnerPending(email, now + WINNER_RECHECK)
    sent = Done(email.id, PathKind.BROADCAST, email.role, during=state.stage)
    return Move(state.replaced(done=(*state.done, sent)), (Send(email, state.segment, variant),))


def skip(state: State, broadcast: BroadcastPlan, reason: str) -> Move:
    """Spare the recipient this broadcast, for good, and say why."""
    spared = Done(broadcast.email.id, PathKind.BROADCAST, broadcast.email.role, skipped=True)
    return Move(state.replaced(done=(*state.done, spared)), (Skip(broadcast.email, reason),))


def left_out_because(state: State, facts: Facts) -> str | None:
    """Why a recipient gets no broadcast at all now, whatever its audience: None if they may."""
    if facts.first(EventType.UNSUBSCRIBE):
        return "they unsubscribed"
    if facts.status in BLOCKED_STATUSES:
        return f"the address {facts.status}"
    return LEFT_OUT.get(state.stage)


def marketing_roles(state: State) -> list[Role]:
    """The roles of the marketing emails the enrollment got, in order: sequence and broadcast alike."""
    return [d.role for d in state.done if not d.skipped and d.role is not Role.TRANSACTIONAL]


def ratio_conflict(plan: Plan, state: State, broadcast: BroadcastPlan,
                   ahead: Sequence[EmailStep]) -> str | None:
    """Why sending the sale `broadcast` now would break the funnel's ratio for them; None: it would not.

    Looking back: the emails they got are the window's start (no education email yet, or a
    sale within the last window-1). Looking ahead, for `when_ratio_breaks: skip` only: a
    sequence sale among their next window-1 emails would then have to wait (`defer` lets
    the broadcast go and the sequence sale wait: engine/flow/step.py).
    """
    ratio = plan.ratio
    roles = marketing_roles(state)
    if Role.EDUCATION not in roles:
        return "they have had no education email yet"
    recent = roles[-(ratio.window - 1):] if ratio.window > 1 else []
    if sum(r is Role.SALE for r in recent) + 1 > ratio.sale:
        return f"a sale reached them within their last {ratio.window - 1} emails"
    if broadcast.when_ratio_breaks is RatioBreak.SKIP:
        coming = list(ahead)[:max(ratio.window - 1, 0)]
        if any(e.role is Role.SALE for e in coming):
            return f"a sale of their sequence is due within their next {ratio.window - 1} emails"
    return None


def matches(audience: Audience, state: State, facts: Facts, tags: frozenset[str],
            signed_up_at: datetime, now: datetime) -> bool:
    """Whether an enrollment is in `audience` at `now`: the same conditions as the store's SQL
    (engine/store/audience.py), for `simulate` and for a test that compares the two."""
    answers = facts.answers()
    bought = {e.product or "" for e in facts.events if e.type is EventType.PURCHASE}
    any_purchase = any(e.type is EventType.PURCHASE for e in facts.events)
    checks = (
        audience.segments is None or state.segment in audience.segments,
        audience.stages is None or state.stage.value in audience.stages,
        all(answers.get(question) in accepted for question, accepted in audience.answers),
        audience.tags <= tags,
        not (audience.without_tags & tags),
        audience.bought is None or (bool(bought & audience.bought) if audience.bought else any_purchase),
        audience.not_bought is None or (not (bought & audience.not_bought) if audience.not_bought
                                        else not any_purchase),
        audience.engaged_within is None or any(
            e.type in (EventType.OPEN, EventType.CLICK) and e.at >= now - audience.engaged_within
            for e in facts.events),
        audience.signed_up_after is None or signed_up_at >= audience.signed_up_after,
        audience.signed_up_before is None or signed_up_at < audience.signed_up_before,
    )
    return all(checks)


def deferred_waiting(state: State, path_steps: Sequence[EmailStep]) -> list[EmailStep]:
    """The sales of this path that were deferred and have not gone yet, in the order they were deferred."""
    if not any(entry.deferred and entry.skipped for entry in state.done):
        # The usual case, asked at every move of a path: no sale ever waited, none waits now.
        return []
    return waiting_in(state, path_steps)


def waiting_in(state: State, path_steps: Sequence[EmailStep]) -> list[EmailStep]:
    """`deferred_waiting` without its shortcut: each step's latest entry, if a deferral skipped it."""
    latest: dict[str, Done] = {}
    for entry in state.done:
        latest[entry.step] = entry
    by_id = {e.id: e for e in path_steps}
    return [by_id[step] for step, entry in latest.items()
            if entry.deferred and entry.skipped and step in by_id]
