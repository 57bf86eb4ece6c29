"""explain(): what comes next and why it waits, pinned word for word; step()'s wait reasons it words."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.flow import waits
from engine.flow.actions import Send
from engine.flow.explain import explain, when, words
from engine.flow.state import Event, EventType, Facts, Stage, State
from engine.flow.step import start, step
from engine.sequences.plan import Plan
from engine.sequences.values import parse_cap, parse_window
from engine.sequences.window import SendWindow
from tests.flow.plans import make_plan, segment, survey
from tests.flow.test_properties import ZONES, plans
from tests.flow.test_winback_pause import nurturing, run, with_winback

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
CONFIRMED = Facts(events=(Event(EventType.CONFIRMED, T0),))


def walk(plan: Plan, facts: Facts, until: datetime) -> State:
    """The state the daemon would have stored after ticking at every wake time up to `until`."""
    state, at = start(plan, T0), T0
    while at is not None and at <= until:
        outcome = step(plan, state, facts, at)
        state, at = outcome.state, outcome.wake_at
    return state


def test_waiting_for_the_confirmation_click_names_the_magnet_that_follows() -> None:
    plan = make_plan()
    state = walk(plan, Facts(), T0)
    found = explain(plan, state, Facts(), T0 + DAY)
    assert found.step is not None and found.step.id == "magnet"
    assert found.at is None
    assert found.reason == "waiting for the confirmation click"


def test_the_survey_email_waits_for_its_delay() -> None:
    plan = make_plan(survey_plan=survey(after=timedelta(hours=2)))
    state = walk(plan, CONFIRMED, T0)
    assert state.stage is Stage.SURVEY
    found = explain(plan, state, CONFIRMED, T0 + timedelta(minutes=30))
    assert found.step is not None and found.step.id == "survey"
    assert found.at == T0 + timedelta(hours=2)
    assert found.reason == "survey email 'survey' due at Mon 2026-03-02 11:00 UTC"


def test_an_unanswered_survey_falls_back_to_the_default_segment_then_spacing() -> None:
    plan = make_plan()
    state = walk(plan, CONFIRMED, T0)
    assert state.stage is Stage.ANSWERING
    found = explain(plan, state, CONFIRMED, T0 + DAY)
    assert found.step is not None and found.step.id == "one-nurture-0"
    assert found.at == T0 + 5 * DAY
    assert found.reason == (
        "waiting for the survey answer until Thu 2026-03-05 09:00 UTC, then the default segment 'one'; "
        "then spacing: 'one-nurture-0' is due at Sat 2026-03-07 09:00 UTC, 2d after the nurture path began")


def test_spacing_after_the_last_email_in_the_subscriber_s_zone() -> None:
    plan = make_plan()
    facts = Facts(timezone="Europe/Budapest", events=(
        Event(EventType.CONFIRMED, T0), Event(EventType.ANSWER, T0, question="level", answer="new")))
    state = walk(plan, facts, T0 + 2 * DAY)
    assert state.step == "one-nurture-1" and state.last_sent_at == T0 + 2 * DAY
    found = explain(plan, state, facts, T0 + 3 * DAY)
    assert found.step is not None and found.step.id == "one-nurture-1"
    assert found.at == T0 + 4 * DAY
    assert found.reason == ("spacing: 'one-nurture-1' is due at Fri 2026-03-06 10:00 Europe/Budapest, "
                            "2d after the last email")


def test_a_due_email_outside_the_send_window_waits_for_it_to_open() -> None:
    window = parse_window("weekdays 07:00-10:00")
    plan = make_plan(window=window)
    facts = Facts(events=(Event(EventType.CONFIRMED, T0),
                          Event(EventType.ANSWER, T0, question="level", answer="new")))
    state = walk(plan, facts, T0 + 2 * DAY)  # Wednesday 09:00: e0 went out
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    found = explain(plan, state, facts, saturday)
    assert found.at == datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
    assert found.reason == ("outside the send window (weekdays 07:00-10:00): "
                            "opens at Mon 2026-03-09 07:00 UTC")


def test_spacing_that_ends_outside_the_window_says_both() -> None:
    plan = make_plan(window=parse_window("weekdays 07:00-10:00"))
    facts = Facts(events=(Event(EventType.CONFIRMED, T0),
                          Event(EventType.ANSWER, T0, question="level", answer="new")))
    state = walk(plan, facts, T0 + 5 * DAY)  # e1 went out on Friday 09:00
    assert state.last_sent_at == datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    found = explain(plan, state, facts, state.last_sent_at + timedelta(hours=1))
    assert found.reason == ("spacing: 'one-nurture-2' is due at Sun 2026-03-08 09:00 UTC, 2d after the "
                            "last email; outside the send window (weekdays 07:00-10:00): "
                            "opens at Mon 2026-03-09 07:00 UTC")
    assert found.at == datetime(2026, 3, 9, 7, 0, tzinfo=UTC)


def test_the_frequency_cap_counts_mail_from_other_funnels() -> None:
    plan = make_plan(cap=parse_cap("1/day"))
    answered = (Event(EventType.CONFIRMED, T0), Event(EventType.ANSWER, T0, question="level", answer="new"))
    state = walk(plan, Facts(events=answered), T0 + DAY)  # the first nurture email is due at T0 + 2d
    other = T0 + 2 * DAY - timedelta(hours=1)  # another funnel mailed them that morning
    facts = Facts(events=answered, marketing_sent=(other,))
    found = explain(plan, state, facts, T0 + 2 * DAY + timedelta(minutes=1))
    assert found.at == datetime(2026, 3, 5, 0, 0, tzinfo=UTC)
    assert found.reason == "frequency cap 1/day reached: next allowed at Thu 2026-03-05 00:00 UTC"


def test_a_due_email_goes_out_at_the_next_tick() -> None:
    plan = make_plan()
    state = start(plan, T0)
    found = explain(plan, state, Facts(), T0 + timedelta(seconds=5))
    assert found.step is not None and found.step.id == "confirm"
    assert found.reason == "'confirm' is due now: it goes out at the daemon's next tick"


def test_sales_over_and_ended() -> None:
    plan = make_plan(segment("one", nurture="E", sales="S", customer="E"), segment("two"))
    facts = Facts(events=(Event(EventType.CONFIRMED, T0),
                          Event(EventType.ANSWER, T0, question="level", answer="new")))
    state = walk(plan, facts, T0 + 30 * DAY)
    assert state.stage is Stage.SALES_DONE
    found = explain(plan, state, facts, T0 + 31 * DAY)
    assert found.step is not None and found.step.id == "one-customer-0" and found.at is None
    assert found.reason == ("sales path over without a purchase; "
                            "waiting for a purchase, which starts the customer path")
    gone = Facts(events=(*facts.events, Event(EventType.UNSUBSCRIBE, T0 + 31 * DAY)))
    ended = explain(plan, state, gone, T0 + 32 * DAY)
    assert (ended.step, ended.at, ended.reason) == (None, None, "ended: unsubscribed")


def test_times_carry_the_zone_name_and_unknown_zones_are_utc() -> None:
    assert when(T0, "America/New_York") == "Mon 2026-03-02 04:00 America/New_York"
    assert when(T0, "Mars/Olympus") == "Mon 2026-03-02 09:00 UTC"


@settings(max_examples=150)
@given(plan=plans(), zone_name=st.sampled_from(ZONES), answer=st.sampled_from([None, "new", "pro"]),
       ticks=st.integers(0, 40), fraction=st.floats(0, 0.999))
def test_explain_agrees_with_the_interpreter(plan: Plan, zone_name: str, answer: str | None, ticks: int,
                                            fraction: float) -> None:
    """Tick like the daemon, then ask at a moment before the next wake: the email, the time and the
    time named in the reason are the interpreter's own."""
    events = [Event(EventType.CONFIRMED, T0 + timedelta(minutes=2))]
    if answer:
        events.append(Event(EventType.ANSWER, T0 + timedelta(hours=1), question="level", answer=answer))
    facts = Facts(timezone=zone_name, events=tuple(events))
    state, last, at = start(plan, T0), T0, T0
    for _ in range(ticks):
        if at is None:
            break
        outcome = step(plan, state, facts, at)
        sent = tuple(at for a in outcome.actions if isinstance(a, Send) and a.email.marketing)
        facts = replace(facts, marketing_sent=(*facts.marketing_sent, *sent))
        state, last, at = outcome.state, at, outcome.wake_at
    asked = last + (at - last) * fraction if at is not None else last + 400 * DAY
    found = explain(plan, state, facts, asked)

    known = facts.until(asked)  # what happens later is not known when asking
    settled = step(plan, state, known, asked)
    truth, t, expected = state, asked, None
    for _ in range(400):
        outcome = step(plan, truth, known, t)
        sends = [a for a in outcome.actions if isinstance(a, Send)]
        if sends:
            expected = (sends[0].email.id, t)
            break
        if outcome.wake_at is None:
            break
        truth, t = outcome.state, outcome.wake_at
    got = (found.step.id, found.at) if found.step is not None and found.at is not None else None
    assert got == expected, found.reason
    if not any(isinstance(a, Send) for a in settled.actions):
        assert found.reason.split("; then ")[0] == words(plan, settled.wait, zone_name)


# The stages each wait reason may leave an enrollment in.
_STAGES: dict[type, set[Stage]] = {
    waits.Ended: {Stage.ENDED}, waits.AddressBlocked: {Stage.ENDED}, waits.SalesOver: {Stage.SALES_DONE},
    waits.SunsetStage: {Stage.SUNSET}, waits.ConfirmationClick: {Stage.CONFIRMING},
    waits.ConfirmationAgain: {Stage.CONFIRMING}, waits.ConfirmationGap: {Stage.CONFIRMING},
    waits.SurveyDue: {Stage.SURVEY}, waits.SurveyAnswer: {Stage.ANSWERING},
    waits.Paused: {Stage.NURTURE, Stage.SALES, Stage.CUSTOMER, Stage.WINBACK},
    waits.Spacing: {Stage.NURTURE, Stage.SALES, Stage.CUSTOMER, Stage.WINBACK},
    waits.OutsideWindow: {Stage.NURTURE, Stage.SALES, Stage.CUSTOMER, Stage.WINBACK},
    waits.CapReached: {Stage.NURTURE, Stage.SALES, Stage.CUSTOMER, Stage.WINBACK},
    waits.SunsetDue: {Stage.WINBACK},
}


@settings(max_examples=150)
@given(plan=plans(), zone_name=st.sampled_from(ZONES), answer=st.sampled_from([None, "new", "pro"]),
       reader=st.booleans(), purchase_day=st.one_of(st.none(), st.integers(1, 60)),
       paused=st.sampled_from([frozenset(), frozenset({"one-nurture-1"}), frozenset({"one-sales-0"})]))
def test_every_wait_carries_a_reason_whose_time_is_the_wake_time(
        plan: Plan, zone_name: str, answer: str | None, reader: bool, purchase_day: int | None,
        paused: frozenset[str]) -> None:
    """Tick like the daemon through a whole journey: each outcome says why it waits, for its stage,
    until exactly its wake time, and that reason can be put into words."""
    events = [Event(EventType.CONFIRMED, T0 + timedelta(minutes=2))]
    if answer:
        events.append(Event(EventType.ANSWER, T0 + timedelta(hours=1), question="level", answer=answer))
    if purchase_day is not None:
        events.append(Event(EventType.PURCHASE, T0 + purchase_day * DAY))
    facts = Facts(timezone=zone_name, events=tuple(events), joined_at=T0, paused=paused)
    state, at, seen = start(plan, T0), T0, set()
    for _ in range(300):
        outcome = step(plan, state, facts, at)
        assert outcome.wait.at == outcome.wake_at, outcome.wait
        assert outcome.state.stage in _STAGES[type(outcome.wait)], (outcome.wait, outcome.state.stage)
        assert words(plan, outcome.wait, zone_name)
        seen.add(type(outcome.wait))
        sent = tuple(at for a in outcome.actions if isinstance(a, Send) and a.email.marketing)
        opened = tuple(Event(EventType.OPEN, t + timedelta(hours=1)) for t in sent) if reader else ()
        facts = replace(facts, marketing_sent=(*facts.marketing_sent, *sent), events=(*facts.events, *opened))
        state = outcome.state
        upcoming = [e.at for e in facts.events if e.at > at]
        if outcome.wake_at is not None:
            upcoming.append(outcome.wake_at)
        if not upcoming:
            break
        at = min(upcoming)
    assert seen


def test_a_paused_step_holds_and_its_resume_sends_it() -> None:
    plan = make_plan()
    facts = Facts(events=(Event(EventType.CONFIRMED, T0), Event(EventType.ANSWER, T0, question="level",
                                                                 answer="new")),
                  paused=frozenset({"one-nurture-0"}))
    outcome = step(plan, walk(plan, facts, T0), facts, T0 + 3 * DAY)
    assert outcome.wait == waits.Paused(plan.email("one-nurture-0")) and outcome.wake_at is None
    found = explain(plan, outcome.state, facts, T0 + 3 * DAY)
    assert found.step is not None and (found.step.id, found.at) == ("one-nurture-0", None)
    assert found.reason == ("'one-nurture-0' is paused (a guardrail or a person stopped it); waits here "
                            "until someone resumes it: funnel resume test one-nurture-0")


def test_windows_are_judged_in_the_subscriber_s_zone() -> None:
    window = SendWindow(frozenset(range(5)), time(8), time(11), "weekdays 08:00-11:00")
    plan = make_plan(window=window)
    facts = Facts(timezone="Asia/Tokyo", events=(
        Event(EventType.CONFIRMED, T0), Event(EventType.ANSWER, T0, question="level", answer="new")))
    state = walk(plan, facts, T0 + 2 * DAY)
    found = explain(plan, state, facts, T0 + 4 * DAY + timedelta(hours=3))  # Friday 21:00 in Tokyo
    assert found.reason == ("outside the send window (weekdays 08:00-11:00): "
                            "opens at Mon 2026-03-09 08:00 Asia/Tokyo")


def test_win_back_sent_then_sunset_say_what_ends_them() -> None:
    plan = with_winback()
    facts = Facts(joined_at=T0)  # reads nothing: idle from the start
    state, sent, _ = run(plan, nurturing(plan), facts, T0 + 33 * DAY)
    assert (state.stage, sent[-2:]) == (Stage.WINBACK, ["wb-winback-0", "wb-winback-1"])
    waiting = explain(plan, state, facts, T0 + 34 * DAY)
    assert (waiting.step, waiting.at) == (None, None)
    assert waiting.reason == "win-back emails sent; sunset if there is no click within 7d of the last"
    sunset = step(plan, state, facts, T0 + 40 * DAY).state
    assert explain(plan, sunset, facts, T0 + 41 * DAY).reason == (
        "sunset: no click within 7d of the win-back emails; no more marketing email unless they click again")
