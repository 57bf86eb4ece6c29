"""Paused steps, win-back and sunset in the interpreter, on plans built in code."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.flow.actions import End, EnterPath, Send
from engine.flow.explain import explain
from engine.flow.state import Event, EventType, Facts, Stage, State
from engine.flow.step import step
from engine.sequences.plan import PathKind, PathPlan, Plan, WinbackPlan
from tests.flow.plans import make_plan, path, segment

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def with_winback(after: timedelta = 30 * DAY, sunset_after: timedelta = 7 * DAY) -> Plan:
    """Segment 'one' with 40 nurture emails two days apart, and two win-back emails (the first at once)."""
    first, second = path(PathKind.WINBACK, "one", "EE", 3 * DAY, prefix="wb").steps
    steps = (replace(first, segment=None, after=timedelta(0)), replace(second, segment=None))
    winback = WinbackPlan(after, sunset_after, PathPlan(PathKind.WINBACK, steps))
    return replace(make_plan(segment("one", nurture="E" * 40, spacing=2 * DAY)), winback=winback)


def nurturing(plan: Plan) -> State:
    return State(stage=Stage.NURTURE, since=T0, segment="one")


def run(plan: Plan, state: State, facts: Facts, until: datetime) -> tuple[State, list[str], list[Stage]]:
    """Step at every wake until `until`: (final state, ids sent in order, stages entered)."""
    sent: list[str] = []
    entered: list[Stage] = []
    now = T0
    for _ in range(500):
        outcome = step(plan, state, facts, now)
        sent += [a.email.id for a in outcome.actions if isinstance(a, Send)]
        entered += outcome.entered
        state = outcome.state
        if outcome.wake_at is None or outcome.wake_at > until:
            return state, sent, entered
        now = max(outcome.wake_at, now)
    raise AssertionError("no end")


def test_a_paused_step_holds_the_subscriber_there_instead_of_skipping_it() -> None:
    plan = make_plan(segment("one", nurture="EEEESE"))
    state = State(stage=Stage.NURTURE, since=T0, segment="one")
    paused = Facts(paused=frozenset({"one-nurture-1"}))
    held, sent, _ = run(plan, state, paused, T0 + 60 * DAY)
    assert sent == ["one-nurture-0"]
    assert held.step == "one-nurture-1" and held.stage is Stage.NURTURE
    assert step(plan, held, paused, T0 + 90 * DAY).wake_at is None  # only a resume wakes it
    explained = explain(plan, held, paused, T0 + 90 * DAY)
    assert explained.step is not None and explained.step.id == "one-nurture-1" and explained.at is None
    reason = explained.reason
    assert "'one-nurture-1' is paused" in reason and "funnel resume test one-nurture-1" in reason
    # Resumed: the same subscriber goes on with the held email, nothing skipped.
    resumed = step(plan, held, Facts(), T0 + 90 * DAY)
    assert [a.email.id for a in resumed.actions if isinstance(a, Send)] == ["one-nurture-1"]


def test_an_idle_subscriber_gets_the_win_back_emails_then_is_sunset() -> None:
    plan = with_winback()
    facts = Facts(joined_at=T0)
    final, sent, entered = run(plan, nurturing(plan), facts, T0 + 120 * DAY)
    regular = [s for s in sent if s.startswith("one-")]
    # 30 days idle from joining: emails every 2 days at days 2..28 (14), then win-back.
    assert len(regular) == 14
    assert sent[14:] == ["wb-winback-0", "wb-winback-1"]
    assert entered == [Stage.WINBACK, Stage.SUNSET]
    assert final.stage is Stage.SUNSET and final.resume_stage is Stage.NURTURE
    assert final.resume_step == "one-nurture-14"
    assert "sunset: no click within 7d" in (final.reason or "")
    assert step(plan, final, facts, T0 + 400 * DAY).actions == ()  # no more marketing email


def test_opens_and_clicks_keep_a_subscriber_out_of_win_back() -> None:
    plan = with_winback()
    clicks = tuple(Event(EventType.CLICK, T0 + n * 20 * DAY) for n in range(1, 5))
    opens = (Event(EventType.OPEN, T0 + 95 * DAY),)
    _, sent, entered = run(plan, nurturing(plan), Facts(joined_at=T0, events=clicks + opens), T0 + 79 * DAY)
    assert Stage.WINBACK not in entered and all(s.startswith("one-") for s in sent) and len(sent) == 39


def test_a_click_during_win_back_returns_them_to_the_email_they_were_at() -> None:
    plan = with_winback()
    idle, sent, _ = run(plan, nurturing(plan), Facts(joined_at=T0), T0 + 31 * DAY)
    assert idle.stage is Stage.WINBACK and sent[-1] == "wb-winback-0"
    click = Event(EventType.CLICK, T0 + 32 * DAY)
    back = step(plan, idle, Facts(joined_at=T0, events=(click,)), T0 + 32 * DAY)
    assert back.state.stage is Stage.NURTURE and back.state.step == "one-nurture-14"
    assert back.state.resume_stage is None
    assert any(isinstance(a, EnterPath) and a.path is PathKind.NURTURE and "click after winback" in a.reason
               for a in back.actions)
    later = step(plan, back.state, Facts(joined_at=T0, events=(click,)), T0 + 34 * DAY)
    assert [a.email.id for a in later.actions if isinstance(a, Send)] == ["one-nurture-14"]


def test_an_open_does_not_bring_a_sunset_subscriber_back_but_a_click_does() -> None:
    plan = with_winback()
    sunset, _, _ = run(plan, nurturing(plan), Facts(joined_at=T0), T0 + 120 * DAY)
    assert sunset.stage is Stage.SUNSET
    opened = Facts(joined_at=T0, events=(Event(EventType.OPEN, T0 + 130 * DAY),))
    assert step(plan, sunset, opened, T0 + 131 * DAY).state.stage is Stage.SUNSET
    clicked = Facts(joined_at=T0, events=(Event(EventType.CLICK, T0 + 130 * DAY),))
    assert step(plan, sunset, clicked, T0 + 131 * DAY).state.stage is Stage.NURTURE


def test_without_a_winback_section_nobody_is_sunset() -> None:
    plan = make_plan(segment("one", nurture="E" * 40, spacing=2 * DAY))
    _, sent, entered = run(plan, nurturing(plan), Facts(joined_at=T0), T0 + 100 * DAY)
    assert len([s for s in sent if "-nurture-" in s]) == 40 and Stage.WINBACK not in entered
    assert entered == [Stage.SALES, Stage.SALES_DONE]


def test_an_unsubscribe_during_win_back_ends_it() -> None:
    plan = with_winback()
    idle, _, _ = run(plan, nurturing(plan), Facts(joined_at=T0), T0 + 31 * DAY)
    gone = Facts(joined_at=T0, events=(Event(EventType.UNSUBSCRIBE, T0 + 31 * DAY),))
    outcome = step(plan, idle, gone, T0 + 32 * DAY)
    assert outcome.state.stage is Stage.ENDED and isinstance(outcome.actions[-1], End)


def test_a_long_gap_of_ours_is_not_their_idleness() -> None:
    """A customer path with seven weeks between emails: a reader who clicked the last one
    gets the next one, not the win-back emails; someone who ignored it is won back."""
    base = with_winback()
    seven_weeks = replace(segment("one", nurture="EE", spacing=49 * DAY), id="one")
    plan = replace(base, segments=(seven_weeks,))
    state = State(stage=Stage.NURTURE, since=T0, segment="one")
    first = step(plan, state, Facts(joined_at=T0), T0 + 49 * DAY)
    assert [a.email.id for a in first.actions if isinstance(a, Send)] == ["one-nurture-0"]
    sent_at = T0 + 49 * DAY
    clicked = Facts(joined_at=T0, events=(Event(EventType.CLICK, sent_at + timedelta(hours=1)),))
    later = step(plan, first.state, clicked, sent_at + 49 * DAY)
    assert [a.email.id for a in later.actions if isinstance(a, Send)] == ["one-nurture-1"]
    ignored = step(plan, first.state, Facts(joined_at=T0), sent_at + 49 * DAY)
    assert ignored.state.stage is Stage.WINBACK
