"""Survey answers after the segment was chosen: they move a subscriber only before the first nurture email."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.flow.actions import EnterPath, EnterSegment, Send
from engine.flow.late import unheeded
from engine.flow.simulate import Ignored, Script, ScriptedAnswer, simulate
from engine.flow.state import Done, Event, EventType, Facts, Stage, State
from engine.flow.step import step
from engine.sequences.plan import PathKind, Role
from tests.flow.plans import make_plan

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
# make_plan(): survey sent at T0+2m (the click), wait 3d, default 'one'; nurture emails 2d apart.
DEADLINE = T0 + timedelta(minutes=2) + 3 * DAY


def _late(offset: timedelta) -> Script:
    return Script(T0, answers=(ScriptedAnswer("level", "pro", offset),), days=12)


def test_a_late_answer_before_the_first_nurture_email_moves_the_subscriber() -> None:
    timeline = simulate(make_plan(), _late(4 * DAY))
    moves = [e.action for e in timeline.entries if isinstance(e.action, EnterSegment)]
    assert moves == [EnterSegment("one", "no answer within 3d"),
                     EnterSegment("two", "late survey answer, before any nurture email of segment 'one'")]
    nurture = [e for e in timeline.sends() if e.action.email.path is PathKind.NURTURE]
    # The whole path meant for them, timed from the answer; nothing of segment 'one'.
    assert nurture[0].action.email.id == "two-nurture-0" and nurture[0].at == T0 + 6 * DAY
    assert {e.action.email.segment for e in nurture} == {"two"}
    assert not any(isinstance(e.action, Ignored) for e in timeline.entries)


def test_a_late_answer_after_the_first_nurture_email_is_kept_and_explained() -> None:
    timeline = simulate(make_plan(), _late(6 * DAY))
    assert timeline.final is not None and timeline.final.segment == "one"
    assert {e.action.email.segment for e in timeline.sends()
            if e.action.email.path is PathKind.NURTURE} == {"one"}
    ignored = [e for e in timeline.entries if isinstance(e.action, Ignored)]
    assert len(ignored) == 1 and ignored[0].at == T0 + 6 * DAY
    assert ignored[0].action.reason == (
        "late answer level=pro (after the segment was chosen): kept segment 'one' (not 'two') because "
        "its nurture emails had begun ('one-nurture-0'); a late answer changes the segment only "
        "before the first nurture email")


def test_a_changed_answer_counts_like_a_late_one() -> None:
    # Answered 'new' in time ('one'), then clicked 'pro' before any nurture email.
    script = Script(T0, answers=(ScriptedAnswer("level", "new", DAY),
                                 ScriptedAnswer("level", "pro", 2 * DAY)), days=6)
    timeline = simulate(make_plan(), script)
    assert timeline.final is not None and timeline.final.segment == "two"


def test_the_move_happens_once_and_step_stays_idempotent() -> None:
    plan = make_plan()
    state = State(stage=Stage.NURTURE, since=DEADLINE, segment="one")
    facts = Facts(events=(Event(EventType.ANSWER, T0 + 4 * DAY, "level", "pro"),))
    moved = step(plan, state, facts, T0 + 4 * DAY)
    assert moved.state.segment == "two" and moved.state.since == T0 + 4 * DAY
    assert EnterPath(PathKind.NURTURE, "segment 'two' chosen") in moved.actions
    again = step(plan, moved.state, facts, T0 + 4 * DAY)
    assert again.actions == () and again.state == moved.state
    assert not any(isinstance(a, Send) for a in moved.actions)


def test_a_purchase_wins_over_a_late_answer_and_a_customer_keeps_their_segment() -> None:
    plan = make_plan()
    answer = Event(EventType.ANSWER, T0 + 4 * DAY, "level", "pro")
    facts = Facts(events=(answer, Event(EventType.PURCHASE, T0 + 4 * DAY)))
    state = State(stage=Stage.NURTURE, since=DEADLINE, segment="one")
    outcome = step(plan, state, facts, T0 + 4 * DAY)
    assert outcome.state.stage is Stage.CUSTOMER and outcome.state.segment == "one"
    assert unheeded(plan, outcome.state, facts, answer) == (
        "late answer level=pro (after the segment was chosen): kept segment 'one': already a "
        "customer, whose emails follow the purchase")


def test_answers_that_agree_or_come_in_time_need_no_note() -> None:
    plan = make_plan()
    answer = Event(EventType.ANSWER, T0 + DAY, "level", "new")
    facts = Facts(events=(answer,))
    begun = (Done("one-nurture-0", PathKind.NURTURE, Role.EDUCATION),)
    assert unheeded(plan, State(Stage.NURTURE, T0, "one", done=begun), facts, answer) is None
    assert unheeded(plan, State(Stage.ANSWERING, T0), facts, answer) is None
