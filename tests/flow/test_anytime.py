"""An `anytime` email goes when due: outside the send window, over the cap; never to an unsubscriber."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.flow.actions import Send
from engine.flow.state import Event, EventType, Facts, Stage, State
from engine.flow.step import step
from engine.sequences.plan import PathKind, PathPlan
from engine.sequences.values import parse_window
from tests.flow.plans import make_plan, segment

SATURDAY = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _plan(anytime: bool):  # type: ignore[no-untyped-def]
    seg = segment("one", customer="EEEES")
    welcome = replace(seg.customer.steps[0], after=HOUR, anytime=anytime)
    seg = replace(seg, customer=PathPlan(PathKind.CUSTOMER, (welcome, *seg.customer.steps[1:])))
    return make_plan(seg, window=parse_window("weekdays 07:00-10:00"))


def _bought_saturday(*more: Event, marketing_sent: tuple[datetime, ...] = (),
                     status: str = "active") -> tuple[State, Facts]:
    state = State(Stage.CUSTOMER, SATURDAY, segment="one")
    events = (Event(EventType.PURCHASE, SATURDAY), *more)
    return state, Facts(events=events, marketing_sent=marketing_sent, status=status)


def _sent(outcome) -> list[str]:  # type: ignore[no-untyped-def]
    return [a.email.id for a in outcome.actions if isinstance(a, Send)]


def test_an_anytime_welcome_goes_on_saturday_outside_the_window() -> None:
    state, facts = _bought_saturday()
    assert _sent(step(_plan(anytime=True), state, facts, SATURDAY + HOUR)) == ["one-customer-0"]
    held = step(_plan(anytime=False), state, facts, SATURDAY + HOUR)
    assert _sent(held) == [] and held.wake_at == datetime(2026, 3, 9, 7, 0, tzinfo=UTC)  # Monday


def test_an_anytime_email_goes_over_the_frequency_cap() -> None:
    state, facts = _bought_saturday(marketing_sent=(SATURDAY,))  # the cap (1/day) is spent
    outcome = step(_plan(anytime=True), state, facts, SATURDAY + HOUR)
    assert _sent(outcome) == ["one-customer-0"]
    # The next one (not anytime) is due two days later, Monday 16:00, and waits for the window.
    assert outcome.wake_at == datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
    assert _sent(step(_plan(anytime=False), state, facts, SATURDAY + HOUR)) == []


def test_an_anytime_email_never_goes_to_an_unsubscribed_or_blocked_address() -> None:
    state, facts = _bought_saturday(Event(EventType.UNSUBSCRIBE, SATURDAY + HOUR / 2))
    outcome = step(_plan(anytime=True), state, facts, SATURDAY + HOUR)
    assert _sent(outcome) == [] and outcome.state.stage is Stage.ENDED
    state, facts = _bought_saturday(status="complained")
    outcome = step(_plan(anytime=True), state, facts, SATURDAY + HOUR)
    assert _sent(outcome) == [] and outcome.state.stage is Stage.ENDED
