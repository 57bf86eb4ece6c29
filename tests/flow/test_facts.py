"""The one facts builder: which events a funnel's interpreter sees, and what each enrollment gets."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.flow.facts import confirmation_steps, facts_for, seen_by
from engine.flow.state import Event, EventType
from tests.flow.plans import make_plan

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _event(funnel: str | None, kind: EventType) -> Event:
    return Event(kind, AT, step="x", funnel=funnel)


def test_a_funnel_sees_its_own_events_every_funnels_events_and_all_opens_and_clicks() -> None:
    events = [_event("a", EventType.ANSWER), _event("a", EventType.UNSUBSCRIBE), _event("a", EventType.CLICK),
              _event("a", EventType.OPEN), _event(None, EventType.PURCHASE), _event("b", EventType.ANSWER)]
    seen = [e.type for e in seen_by("b", events)]
    # Another funnel's answer or unsubscribe is not this one's; a click anywhere shows the
    # person still reads (win-back).
    assert seen == [EventType.CLICK, EventType.OPEN, EventType.PURCHASE, EventType.ANSWER]


def test_each_enrollment_gets_its_funnel_s_events_and_pauses_and_the_address_s_history() -> None:
    events = [_event("a", EventType.ANSWER), _event("b", EventType.ANSWER)]
    facts = facts_for("b", timezone="Europe/Budapest", status="bounced", magnet="guide", joined_at=AT,
                      events=events, marketing_sent=[AT], confirmations=[AT],
                      paused={"a": frozenset({"a1"}), "b": frozenset({"b2"})})
    assert [e.funnel for e in facts.events] == ["b"]
    assert facts.paused == frozenset({"b2"})
    assert (facts.timezone, facts.status, facts.magnet, facts.joined_at) == ("Europe/Budapest", "bounced",
                                                                            "guide", AT)
    assert facts.marketing_sent == (AT,) and facts.confirmations == (AT,)
    assert facts_for("c", timezone="UTC", status="active", magnet=None, joined_at=None, events=events,
                     marketing_sent=(), paused={}).paused == frozenset()


def test_the_confirmation_requests_of_every_funnel_count_for_the_gap() -> None:
    plans = [make_plan(), make_plan(double_opt_in=False)]
    assert confirmation_steps(plans) == [("test", "confirm"), ("test", "confirm~again")]
