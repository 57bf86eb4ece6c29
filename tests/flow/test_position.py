"""A subscriber's position after an edit: go on after the last email received; never skip one ahead."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.flow.actions import Send
from engine.flow.position import next_email, passed_unsent
from engine.flow.state import Done, Facts, Stage, State
from engine.flow.step import step
from engine.sequences.plan import EmailStep, PathKind, PathPlan, Plan, Role
from tests.flow.plans import make_plan, segment

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _plan() -> Plan:
    return make_plan(segment("one", nurture="EEEEEEEEE", spacing=DAY))


def _ids(plan: Plan) -> list[str]:
    return [e.id for e in plan.segments[0].nurture.steps]


def _with(plan: Plan, steps: list[EmailStep]) -> Plan:
    seg = plan.segments[0]
    return replace(plan, segments=(replace(seg, nurture=PathPlan(PathKind.NURTURE, tuple(steps))),))


def _edited(plan: Plan, order: list[str], new: tuple[EmailStep, ...] = ()) -> Plan:
    """`plan` with its nurture path in `order` (ids of the old path or of `new`)."""
    by_id = {e.id: e for e in (*plan.segments[0].nurture.steps, *new)}
    return _with(plan, [by_id[i] for i in order])


def _received(*ids: str) -> State:
    done = tuple(Done(i, PathKind.NURTURE, Role.EDUCATION) for i in ids)
    return State(Stage.NURTURE, T0, segment="one", step=None, last_sent_at=T0, done=done)


def _walk(plan: Plan, state: State, days: int = 30) -> list[str]:
    """Every nurture email sent from `state` on, a day at a time."""
    sent: list[str] = []
    for day in range(1, days):
        outcome = step(plan, state, Facts(), T0 + day * DAY)
        sent += [a.email.id for a in outcome.actions
                 if isinstance(a, Send) and a.email.path is PathKind.NURTURE]
        state = outcome.state
    return sent


def test_moving_a_received_email_later_and_deleting_the_next_skips_nothing() -> None:
    # The bug of issue 12: received 0 1 2, at 3; 1 moved to the end and 3 deleted.
    plan = _plan()
    e = _ids(plan)
    edited = _edited(plan, [e[0], e[2], e[4], e[5], e[6], e[7], e[1], e[8]])
    state = replace(_received(e[0], e[1], e[2]), step=e[3])
    assert _walk(edited, state) == [e[4], e[5], e[6], e[7], e[8]]


def test_the_email_they_wait_for_moved_later_does_not_skip_the_ones_now_before_it() -> None:
    plan = _plan()
    e = _ids(plan)
    edited = _edited(plan, [e[0], e[1], e[3], e[4], e[2], *e[5:]])
    assert _walk(edited, replace(_received(e[0], e[1]), step=e[2]))[:3] == [e[3], e[4], e[2]]


def test_an_email_inserted_behind_is_not_sent_unless_it_says_so() -> None:
    plan = _plan()
    e = _ids(plan)
    new = replace(plan.segments[0].nurture.steps[0], id="new")
    state = replace(_received(*e[:5]), step=e[5])
    behind = _edited(plan, [e[0], "new", *e[1:]], (new,))
    assert _walk(behind, state) == e[5:]
    assert passed_unsent(behind.segments[0].nurture, state.done) == (new,)
    flagged = _edited(plan, [e[0], "new", *e[1:]], (replace(new, send_to_passed=True),))
    assert _walk(flagged, state) == ["new", *e[5:]]


def test_a_sent_passed_email_does_not_move_them_back() -> None:
    plan = _plan()
    e = _ids(plan)
    template = plan.segments[0].nurture.steps[0]
    flagged = replace(template, id="flagged", send_to_passed=True)
    plain = replace(template, id="plain")
    edited = _edited(plan, [e[0], "flagged", e[1], "plain", *e[2:]], (flagged, plain))
    state = replace(_received(*e[:5]), step=e[5])
    assert _walk(edited, state) == ["flagged", *e[5:]]


def test_an_email_inserted_ahead_is_sent() -> None:
    plan = _plan()
    e = _ids(plan)
    new = replace(plan.segments[0].nurture.steps[0], id="new")
    edited = _edited(plan, [*e[:6], "new", *e[6:]], (new,))
    assert _walk(edited, replace(_received(*e[:5]), step=e[5])) == [e[5], "new", *e[6:]]


def test_when_the_last_received_email_was_deleted_the_earlier_ones_place_them() -> None:
    plan = _plan()
    e = _ids(plan)
    edited = _edited(plan, [e[0], e[1], e[3], e[4], *e[5:]])  # e[2] deleted
    assert _walk(edited, replace(_received(e[0], e[1], e[2]), step=e[3])) == [e[3], *e[4:]]


def test_when_no_received_email_is_left_the_path_starts_over_without_repeats() -> None:
    plan = _plan()
    e = _ids(plan)
    path = _edited(plan, e[4:]).segments[0].nurture
    assert next_email(path, _received("gone-1", "gone-2").done) == path.steps[0]
    new = replace(plan.segments[0].nurture.steps[0], id="new")
    rewritten = _edited(plan, ["new", e[1]], (new,)).segments[0].nurture
    # e[1] was received under an older id order and is the only one left: they go on after it.
    assert next_email(rewritten, _received("gone", e[1]).done) is None
