"""The interpreter, one rule at a time, on plans built in code."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.flow.actions import End, EnterPath, EnterSegment, Send, Skip
from engine.flow.simulate import Script, ScriptedAnswer, simulate
from engine.flow.state import Done, Event, EventType, Facts, Stage, State
from engine.flow.step import start, step
from engine.sequences.plan import PathKind, PathPlan, Role
from engine.sequences.values import parse_cap, parse_window
from tests.flow.plans import make_plan, segment

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)


def sent_ids(plan, script):  # type: ignore[no-untyped-def]
    return [e.action.email.id for e in simulate(plan, script).sends()]


def test_double_opt_in_sends_one_confirmation_and_waits_for_the_click() -> None:
    plan = make_plan()
    state = start(plan, T0)
    first = step(plan, state, Facts(), T0)
    assert [a.email.id for a in first.actions if isinstance(a, Send)] == ["confirm"]
    assert first.wake_at is None  # nothing until the confirmation event
    again = step(plan, first.state, Facts(), T0 + DAY)
    assert again.actions == () and again.state == first.state


def test_signing_up_again_resends_the_confirmation_once_and_not_within_a_day() -> None:
    plan = make_plan()
    first = step(plan, start(plan, T0), Facts(), T0)
    soon = Facts(events=(Event(EventType.SIGNED_UP_AGAIN, T0 + timedelta(hours=2)),))
    waiting = step(plan, first.state, soon, T0 + timedelta(hours=2))
    assert waiting.actions == () and waiting.wake_at == T0 + DAY  # a day after the first
    resent = step(plan, waiting.state, soon, T0 + DAY)
    assert [a.email.id for a in resent.actions if isinstance(a, Send)] == ["confirm~again"]
    assert resent.wake_at is None
    more = Facts(events=(*soon.events, Event(EventType.SIGNED_UP_AGAIN, T0 + 5 * DAY)))
    assert step(plan, resent.state, more, T0 + 5 * DAY).actions == ()  # only once
    confirmed = Facts(events=(*more.events, Event(EventType.CONFIRMED, T0 + 6 * DAY)))
    after = step(plan, resent.state, confirmed, T0 + 6 * DAY)
    assert [a.email.id for a in after.actions if isinstance(a, Send)] == ["magnet", "survey"]


def test_confirmation_delivers_the_chosen_magnet_then_the_survey() -> None:
    plan = make_plan()
    confirmed = Facts(events=(Event(EventType.CONFIRMED, T0 + timedelta(minutes=5)),))
    state = step(plan, start(plan, T0), confirmed, T0).state
    outcome = step(plan, state, confirmed, T0 + timedelta(minutes=5))
    assert [a.email.id for a in outcome.actions if isinstance(a, Send)] == ["magnet", "survey"]
    assert outcome.state.stage is Stage.ANSWERING
    assert outcome.wake_at == T0 + timedelta(minutes=5) + timedelta(days=3)


def test_single_opt_in_skips_confirmation() -> None:
    plan = make_plan(double_opt_in=False)
    outcome = step(plan, start(plan, T0), Facts(), T0)
    assert [a.email.id for a in outcome.actions if isinstance(a, Send)] == ["magnet", "survey"]


def test_answer_on_the_signup_form_skips_the_survey_email() -> None:
    plan = make_plan()
    script = Script(T0, answers=(ScriptedAnswer("level", "pro", timedelta(0)),), days=3)
    timeline = simulate(plan, script)
    assert "survey" not in [e.action.email.id for e in timeline.sends()]
    skips = [e.action for e in timeline.entries if isinstance(e.action, Skip)]
    assert [s.email.id for s in skips] == ["survey"]
    assert timeline.final is not None and timeline.final.segment == "two"


def test_no_answer_falls_back_to_the_default_segment_at_the_deadline() -> None:
    plan = make_plan()
    timeline = simulate(plan, Script(T0, days=10))
    chosen = [e for e in timeline.entries if isinstance(e.action, EnterSegment)]
    assert len(chosen) == 1
    assert chosen[0].action == EnterSegment("one", "no answer within 3d")
    survey_sent = next(e.at for e in timeline.sends() if e.action.email.id == "survey")
    assert chosen[0].at == survey_sent + timedelta(days=3)


def test_an_answer_moves_the_subscriber_into_its_segment_at_once() -> None:
    plan = make_plan()
    timeline = simulate(plan, Script(T0, answers=(ScriptedAnswer("level", "pro"),), days=30))
    segments = {e.segment for e in timeline.sends() if e.action.email.path is PathKind.NURTURE}
    assert segments == {"two"}


def test_spacing_is_measured_from_the_previous_email_of_the_path() -> None:
    plan = make_plan(segment("one", nurture="EEE", spacing=timedelta(days=3)))
    sends = [e for e in simulate(plan, Script(T0, days=30)).sends()
             if e.action.email.path is PathKind.NURTURE]
    gaps = [b.at - a.at for a, b in itertools.pairwise(sends)]
    assert gaps == [timedelta(days=3), timedelta(days=3)]


def test_marketing_waits_for_the_send_window_in_the_subscribers_zone() -> None:
    window = parse_window("weekdays 08:00-11:00")
    plan = make_plan(window=window)
    sends = simulate(plan, Script(T0, timezone="America/New_York", days=40)).sends()
    marketing = [e for e in sends if e.action.email.marketing]
    assert marketing
    for entry in marketing:
        assert window.contains(entry.at, "America/New_York"), entry
        local = entry.at.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
        assert local.weekday() < 5 and 8 <= local.hour < 11
    transactional = [e for e in sends if not e.action.email.marketing]
    assert transactional[0].at == T0  # confirmation is not held back by the window


def test_an_overdue_email_waits_for_the_next_window_instead_of_going_out_at_night() -> None:
    window = parse_window("daily 08:00-11:00")
    plan = make_plan(segment("one", nurture="EE"), window=window)
    state = State(stage=Stage.NURTURE, since=T0, segment="one")
    night = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
    outcome = step(plan, state, Facts(), night)
    assert not any(isinstance(a, Send) for a in outcome.actions)
    assert outcome.wake_at == datetime(2026, 3, 11, 8, 0, tzinfo=UTC)


def test_frequency_cap_defers_across_funnels_and_never_drops() -> None:
    plan = make_plan(segment("one", nurture="EE"), cap=parse_cap("1/day"))
    state = State(stage=Stage.NURTURE, since=T0 - 5 * DAY, segment="one")
    other_funnel_mail = Facts(marketing_sent=(T0 - timedelta(hours=1),))
    outcome = step(plan, state, other_funnel_mail, T0)
    assert not any(isinstance(a, Send) for a in outcome.actions)
    assert outcome.wake_at == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    later = step(plan, outcome.state, other_funnel_mail, outcome.wake_at)
    assert [a.email.id for a in later.actions if isinstance(a, Send)] == ["one-nurture-0"]


def test_nurture_flows_into_sales_and_the_sales_path_ends_without_purchase() -> None:
    plan = make_plan(segment("one", nurture="EEEESE", sales="SSS"))
    timeline = simulate(plan, Script(T0, days=60))
    paths = [e.action.email.path for e in timeline.sends() if e.action.email.marketing]
    assert paths == [PathKind.NURTURE] * 6 + [PathKind.SALES] * 3
    assert timeline.final is not None and timeline.final.stage is Stage.SALES_DONE


def test_a_purchase_ends_the_sales_path_at_once_and_starts_the_customer_path() -> None:
    plan = make_plan(segment("one", nurture="EEEE", sales="SSS", spacing=DAY))
    # nurture: days 1-4 after the default at day 3; sales starts around day 8
    timeline = simulate(plan, Script(T0, events=(Event(EventType.PURCHASE, T0 + 9 * DAY),),
                                     days=40))
    after = [e for e in timeline.sends() if e.at >= T0 + 9 * DAY]
    assert after and all(e.action.email.path is PathKind.CUSTOMER for e in after)
    moved = [e for e in timeline.entries if isinstance(e.action, EnterPath)
             and e.action.path is PathKind.CUSTOMER]
    assert moved[0].at == T0 + 9 * DAY


def test_only_listed_products_end_a_sales_path() -> None:
    seg = segment("one", nurture="EEEE", sales="SSS", spacing=DAY,
                  exit_products=frozenset({"course"}))
    plan = make_plan(seg)
    other = simulate(plan, Script(T0, events=(
        Event(EventType.PURCHASE, T0 + 9 * DAY, product="socks"),), days=40))
    assert [e.action.email.path for e in other.sends()].count(PathKind.SALES) == 3
    assert all(e.action.email.path is not PathKind.CUSTOMER for e in other.sends())
    course = simulate(plan, Script(T0, events=(
        Event(EventType.PURCHASE, T0 + 9 * DAY, product="course"),), days=40))
    assert any(e.action.email.path is PathKind.CUSTOMER for e in course.sends())


def test_a_purchase_after_the_sales_path_still_starts_the_customer_path() -> None:
    plan = make_plan(segment("one", nurture="E", sales="S", spacing=DAY))
    timeline = simulate(plan, Script(T0, events=(Event(EventType.PURCHASE, T0 + 30 * DAY),),
                                     days=60))
    assert any(e.action.email.path is PathKind.CUSTOMER for e in timeline.sends())


def test_unsubscribe_stops_everything_at_once() -> None:
    plan = make_plan()
    timeline = simulate(plan, Script(T0, events=(Event(EventType.UNSUBSCRIBE, T0 + 7 * DAY),),
                                     days=60))
    assert all(e.at < T0 + 7 * DAY for e in timeline.sends())
    assert isinstance(timeline.entries[-1].action, End)
    assert timeline.final is not None and timeline.final.reason == "unsubscribed"


def test_calling_step_again_before_it_is_due_changes_nothing() -> None:
    plan = make_plan()
    facts = Facts(events=(Event(EventType.CONFIRMED, T0),))
    first = step(plan, start(plan, T0), facts, T0)
    assert first.wake_at is not None
    for moment in (T0, T0 + timedelta(hours=5), first.wake_at - timedelta(seconds=1)):
        again = step(plan, first.state, facts, moment)
        assert again.actions == () and again.state == first.state
        assert again.wake_at == first.wake_at


def test_future_events_are_invisible_until_they_happen() -> None:
    plan = make_plan()
    facts = Facts(events=(Event(EventType.CONFIRMED, T0 + DAY),))
    outcome = step(plan, start(plan, T0), facts, T0)
    assert outcome.state.stage is Stage.CONFIRMING


def _at(nurture: PathPlan, index: int) -> State:
    """A subscriber who received the first `index` nurture emails and is at the next."""
    return State(stage=Stage.NURTURE, since=T0, segment="one", step=nurture.steps[index].id,
                 last_sent_at=T0,
                 done=tuple(Done(s.id, PathKind.NURTURE, s.role) for s in nurture.steps[:index]))


def test_edited_funnel_keeps_people_on_their_step_id() -> None:
    plan = make_plan(segment("one", nurture="EEEESE"))
    nurture = plan.segments[0].nurture
    at_third = _at(nurture, 2)
    # A new email is inserted at the front: the subscriber still gets step 2 next.
    inserted = replace(nurture.steps[0], id="new-first")
    edited = replace(plan, segments=(replace(plan.segments[0], nurture=PathPlan(
        PathKind.NURTURE, (inserted, *nurture.steps))),))
    outcome = step(edited, at_third, Facts(), T0 + 3 * DAY)
    assert [a.email.id for a in outcome.actions if isinstance(a, Send)] == [nurture.steps[2].id]


def test_a_removed_step_is_skipped_forward() -> None:
    plan = make_plan(segment("one", nurture="EEEESE"))
    nurture = plan.segments[0].nurture
    at_third = _at(nurture, 2)
    without = tuple(s for s in nurture.steps if s.id != nurture.steps[2].id)
    edited = replace(plan, segments=(replace(plan.segments[0], nurture=PathPlan(
        PathKind.NURTURE, without)),))
    outcome = step(edited, at_third, Facts(), T0 + 3 * DAY)
    assert [a.email.id for a in outcome.actions if isinstance(a, Send)] == [nurture.steps[3].id]


def test_a_sale_that_an_edit_brings_too_close_to_another_is_skipped_not_sent() -> None:
    plan = make_plan(segment("one", nurture="EEEESE"))
    nurture = plan.segments[0].nurture
    sale = nurture.steps[4]
    # Sent so far: the fourth email, then a sale of an older version of the file. Next is
    # the sale: too close.
    state = State(stage=Stage.NURTURE, since=T0, segment="one", step=sale.id, last_sent_at=T0,
                  done=(Done(nurture.steps[3].id, PathKind.NURTURE, Role.EDUCATION),
                        Done("old-s", PathKind.NURTURE, Role.SALE)))
    outcome = step(plan, state, Facts(), T0 + 3 * DAY)
    skips = [a for a in outcome.actions if isinstance(a, Skip)]
    assert [s.email.id for s in skips] == [sale.id]
    assert [a.email.id for a in outcome.actions if isinstance(a, Send)] == [nurture.steps[5].id]


def test_a_removed_segment_falls_back_to_the_default() -> None:
    plan = make_plan(segment("one"))
    state = State(stage=Stage.NURTURE, since=T0, segment="gone")
    outcome = step(plan, state, Facts(), T0 + 3 * DAY)
    assert outcome.state.segment == "one"
    assert EnterSegment("one", "segment 'gone' was removed") in outcome.actions


def test_simulate_says_why_a_purchase_of_another_product_changed_nothing() -> None:
    from engine.flow.simulate import Ignored

    seg = segment("one", nurture="EEEE", sales="SSS", spacing=DAY,
                  exit_products=frozenset({"course"}))
    timeline = simulate(make_plan(seg), Script(T0, events=(
        Event(EventType.PURCHASE, T0 + 9 * DAY),), days=40))
    ignored = [e.action for e in timeline.entries if isinstance(e.action, Ignored)]
    assert [i.reason for i in ignored] == [
        "purchase without a product ignored: segment 'one' leaves its sales path only on a "
        "purchase of course (write --event purchase:PRODUCT@OFFSET)"]


def test_a_purchase_from_before_signup_does_not_rush_the_customer_path() -> None:
    # An old customer signs up again: they go to the customer path, but its spacing
    # counts from their enrollment, not from a purchase made long ago.
    plan = make_plan(segment("one", customer="EE", spacing=2 * DAY), double_opt_in=False)
    old_purchase = Event(EventType.PURCHASE, T0 - 300 * DAY)
    timeline = simulate(plan, Script(T0, events=(old_purchase,), days=30))
    customer = [e.at for e in timeline.sends() if e.action.email.path is PathKind.CUSTOMER]
    assert customer == [T0 + 2 * DAY, T0 + 4 * DAY]
