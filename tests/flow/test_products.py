"""A purchase starts the customer path its product names (`products:`), else the segment's own."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.flow.actions import EnterPath
from engine.flow.simulate import Script, simulate
from engine.flow.state import Done, Event, EventType, Facts, Stage, State
from engine.flow.step import step
from engine.sequences.plan import PathKind, PathPlan, Role
from tests.flow.plans import make_plan, segment

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)


def _plan(**products: str):  # type: ignore[no-untyped-def]
    plan = make_plan(segment("one", nurture="EEEE", sales="SSS", spacing=DAY),
                     segment("two", nurture="EEEE", sales="SSS", spacing=DAY))
    return replace(plan, products=products)


def _bought(plan, product: str | None):  # type: ignore[no-untyped-def]
    """Someone in segment 'one' (no answer) who buys `product` on day 9."""
    return simulate(plan, Script(T0, events=(Event(EventType.PURCHASE, T0 + 9 * DAY, product=product),),
                                 days=40))


def _customer_emails(timeline) -> list[str]:  # type: ignore[no-untyped-def]
    return [e.action.email.id for e in timeline.sends() if e.action.email.path is PathKind.CUSTOMER]


def _entered(timeline) -> str:  # type: ignore[no-untyped-def]
    return next(e.action.reason for e in timeline.entries
                if isinstance(e.action, EnterPath) and e.action.path is PathKind.CUSTOMER)


def test_a_named_product_starts_its_segments_customer_path_and_says_why() -> None:
    timeline = _bought(_plan(**{"pro-course": "two"}), "pro-course")
    assert _customer_emails(timeline) == [f"two-customer-{i}" for i in range(5)]
    assert _entered(timeline) == "bought 'pro-course' (products: segment 'two')"
    # The subscriber stays in their own segment: the stats by segment keep their history.
    assert timeline.final is not None and timeline.final.segment == "one"


def test_a_product_not_named_starts_the_buyers_own_customer_path() -> None:
    timeline = _bought(_plan(**{"pro-course": "two"}), "socks")
    assert _customer_emails(timeline) == [f"one-customer-{i}" for i in range(5)]
    assert _entered(timeline) == "bought 'socks' (segment 'one')"
    assert _entered(_bought(_plan(), None)) == "purchase (segment 'one')"


def test_a_named_segment_without_customer_emails_falls_back_to_the_buyers_own() -> None:
    plan = _plan(**{"pro-course": "two"})
    two = replace(plan.segments[1], customer=PathPlan(PathKind.CUSTOMER, ()))
    plan = replace(plan, segments=(plan.segments[0], two))
    timeline = _bought(plan, "pro-course")
    assert _customer_emails(timeline) == [f"one-customer-{i}" for i in range(5)]
    assert _entered(timeline) == "bought 'pro-course' (segment 'one')"


def test_a_customer_already_on_a_path_stays_on_it_when_products_changes() -> None:
    # Mid-way through segment one's customer path; then 'products:' names segment two for
    # what they bought. They go on where they are rather than start another onboarding.
    plan = _plan(**{"pro-course": "two"})
    state = State(Stage.CUSTOMER, T0, segment="one", step="one-customer-1", last_sent_at=T0,
                  done=(Done("one-customer-0", PathKind.CUSTOMER, Role.EDUCATION),))
    facts = Facts(events=(Event(EventType.PURCHASE, T0 - DAY, product="pro-course"),))
    outcome = step(plan, state, facts, T0 + 3 * DAY)
    assert [a.email.id for a in outcome.actions if hasattr(a, "email")] == ["one-customer-1"]
