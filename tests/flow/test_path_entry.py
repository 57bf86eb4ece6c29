"""Entering a path's email: step() goes on to send it in the same move, as if already there."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from engine.flow.position import next_email
from engine.flow.state import Done, Facts, Stage, State
from engine.flow.step import step, walked_path
from engine.sequences.plan import Plan
from tests.flow.test_properties import START, ZONES, plans

PATH_STAGES = [Stage.NURTURE, Stage.SALES, Stage.CUSTOMER]


@given(plans(), st.sampled_from(PATH_STAGES), st.sampled_from(["one", "two"]), st.integers(0, 5),
       st.integers(0, 30 * 24), st.integers(0, 30 * 24), st.sampled_from(ZONES), st.booleans(),
       st.booleans(), st.lists(st.integers(0, 10 * 24), max_size=3))
def test_moving_to_the_email_first_changes_nothing(
        plan: Plan, stage: Stage, segment: str, sent: int, since_hours: int, now_hours: int, tz: str,
        paused: bool, held: bool, marketing_hours: list[int]) -> None:
    """step() from a state at no step equals step() from the same state already at its email:
    the move to the email (the first of every path) is folded into the walk without a trace."""
    since = START + timedelta(hours=since_hours)
    now = since + timedelta(hours=now_hours)
    state = State(stage=stage, since=since, segment=segment)
    path = walked_path(plan, state, Facts())
    assert path is not None and stage.path is not None
    done = tuple(Done(e.id, stage.path, e.role) for e in path.steps[:sent])
    state = state.replaced(done=done, last_sent_at=since if done else None)
    email = next_email(path, done)
    facts = Facts(timezone=tz, paused=frozenset({email.id}) if paused and email else frozenset(),
                  held=("elsewhere",) if held else (),
                  marketing_sent=tuple(now - timedelta(hours=h) for h in marketing_hours))
    plain = step(plan, state.replaced(step=email.id) if email else state, facts, now)
    assert step(plan, state, facts, now) == plain
