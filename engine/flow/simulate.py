"""Run the interpreter on a fake clock with scripted answers and events: a dated timeline.

This is the same `step` the daemon calls; only the clock and the facts are scripted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from engine.flow.actions import Action, EnterPath, Send
from engine.flow.broadcasts import matches
from engine.flow.facts import facts_for
from engine.flow.late import unheeded
from engine.flow.state import Event, EventType, Facts, Stage, State, Trial
from engine.flow.status import SubscriberStatus
from engine.flow.step import start, step
from engine.sequences.plan import PathKind, Plan

# How long a simulated subscriber takes to click: the confirmation link, and an
# answer link when the script gives no time for it.
CONFIRM_DELAY = timedelta(minutes=2)
ANSWER_DELAY = timedelta(hours=1)
OPEN_DELAY = timedelta(hours=1)


@dataclass(frozen=True)
class ScriptedAnswer:
    """An answer; `offset` from signup, or None for 'an hour after the survey email'."""

    question: str
    answer: str
    offset: timedelta | None = None


@dataclass(frozen=True)
class Script:
    """Who signs up when, and what they do."""

    start: datetime
    timezone: str = "UTC"
    magnet: str | None = None
    answers: tuple[ScriptedAnswer, ...] = ()
    events: tuple[Event, ...] = ()  # at absolute times
    days: int = 120
    # A reader opens every marketing email an hour after it arrives; an idle subscriber opens
    # nothing, which shows the win-back emails and the sunset.
    reader: bool = True
    tags: frozenset[str] = frozenset()  # the tags they have from the start (tag events add more)
    # The variant to show of every email that has it; None: the one the experiment's rule picks
    # for this simulated person (and a broadcast's first variant where its winner would be).
    variant: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A scripted event that changed nothing, and why: a marketer's likely surprise."""

    event: Event
    reason: str


@dataclass(frozen=True)
class Entry:
    """One line of a timeline: an action taken (or an event ignored) at a moment."""

    at: datetime
    segment: str | None
    stage: Stage
    action: Action | Ignored


@dataclass
class Timeline:
    """The simulated history of one subscriber."""

    entries: list[Entry] = field(default_factory=list)
    final: State | None = None

    def sends(self) -> list[Entry]:
        """Only the emails sent."""
        return [e for e in self.entries if isinstance(e.action, Send)]


def simulate(plan: Plan, script: Script) -> Timeline:
    """Walk one subscriber through `plan` from `script.start` for `script.days` days."""
    until = script.start + timedelta(days=script.days)
    events = list(script.events)
    if plan.double_opt_in and not any(e.type is EventType.CONFIRMED for e in events):
        events.append(Event(EventType.CONFIRMED, script.start + CONFIRM_DELAY))
    events.extend(Event(EventType.ANSWER, script.start + a.offset, a.question, a.answer)
                  for a in script.answers if a.offset is not None)
    facts = facts_for(plan.funnel, timezone=script.timezone, status=SubscriberStatus.ACTIVE,
                      magnet=script.magnet, joined_at=script.start, events=events, marketing_sent=(),
                      paused={})
    # Not known before it is sent: a broadcast experiment's winner shows as its first variant.
    unknown = {b.id: Trial(winner=b.email.variants[0].id) for b in plan.broadcasts if b.email.variants}
    facts = replace(facts, key="simulated", variant=script.variant, trials=unknown)
    state = start(plan, script.start)
    timeline = Timeline()
    now = script.start
    # A broadcast takes its audience at its first moment (engine/scheduler/broadcasts.py): from
    # those who signed up before it, as they stand then.
    unasked = {b.id: b.first_due() for b in plan.broadcasts if b.first_due() > script.start}
    while True:
        for broadcast in plan.broadcasts:
            if unasked.get(broadcast.id, until + timedelta(days=1)) <= now:
                del unasked[broadcast.id]
                if matches(broadcast.audience, state, facts.until(now), _tags(script, facts, now),
                           script.start, now):
                    facts = replace(facts, broadcasts=(*facts.broadcasts,
                                                       (broadcast.id, broadcast.due_at(script.timezone))))
        outcome = step(plan, state, facts, now)
        for action in outcome.actions:
            timeline.entries.append(Entry(now, outcome.state.segment, outcome.state.stage, action))
            facts = _record(plan, script, facts, action, now)
        state = outcome.state
        for event in facts.events:
            if event.at == now and event.type is EventType.PURCHASE and not any(
                    isinstance(a, EnterPath) and a.path is PathKind.CUSTOMER
                    for a in outcome.actions):
                reason = _why_ignored(plan, state, event)
                if reason:
                    timeline.entries.append(Entry(now, state.segment, state.stage,
                                                  Ignored(event, reason)))
            if event.at == now and event.type is EventType.ANSWER:
                late = unheeded(plan, state, facts.until(now), event)
                if late:
                    timeline.entries.append(Entry(now, state.segment, state.stage, Ignored(event, late)))
        upcoming = [e.at for e in facts.events if e.at > now] + list(unasked.values())
        if outcome.wake_at is not None:
            upcoming.append(max(outcome.wake_at, now + timedelta(seconds=1)))
        if not upcoming or min(upcoming) > until:
            break
        now = min(upcoming)
    timeline.final = state
    return timeline


def _tags(script: Script, facts: Facts, now: datetime) -> frozenset[str]:
    """The tags the scripted subscriber has at `now`: the script's, then tag and untag events in order."""
    tags = set(script.tags)
    for event in sorted((e for e in facts.events if e.at <= now and e.name), key=lambda e: e.at):
        if event.type is EventType.TAG:
            tags.add(event.name or "")
        elif event.type is EventType.UNTAG:
            tags.discard(event.name or "")
    return frozenset(tags)


def _why_ignored(plan: Plan, state: State, event: Event) -> str | None:
    """Why a purchase moved nobody; None where it will still count later."""
    if state.stage in (Stage.CUSTOMER, Stage.ENDED):
        return "already a customer" if state.stage is Stage.CUSTOMER else "the enrollment has ended"
    segment = plan.segment(state.segment)
    if segment is None or segment.exit_products is None:
        return None  # before the survey: it counts once a segment is chosen
    what = f"'{event.product}'" if event.product else "without a product"
    products = ", ".join(sorted(segment.exit_products))
    return (f"purchase {what} ignored: segment '{segment.id}' leaves its sales path only on "
            f"a purchase of {products} (write --event purchase:PRODUCT@OFFSET)")


def _record(plan: Plan, script: Script, facts: Facts, action: Action, now: datetime) -> Facts:
    """What the daemon would store after an action: sends count for the cap and the confirmation
    gap, answers follow."""
    if not isinstance(action, Send):
        return facts
    counted = facts.after_send(action.email, now)
    if action.email.marketing:
        opened = (Event(EventType.OPEN, now + OPEN_DELAY),) if script.reader else ()
        return replace(counted, events=(*counted.events, *opened))
    if plan.survey and action.email.id == plan.survey.email.id:
        later = tuple(Event(EventType.ANSWER, now + ANSWER_DELAY, a.question, a.answer)
                      for a in script.answers if a.offset is None)
        return replace(counted, events=(*counted.events, *later))
    return counted
