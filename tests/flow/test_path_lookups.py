"""The look-ups step() makes at every move of a path say what their plain forms say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.flow.broadcasts import deferred_waiting, waiting_in
from engine.flow.state import Done, Stage, State
from engine.sequences.plan import EmailStep, PathKind, Role
from tests.flow.plans import segment

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SEGMENT = segment("beginner")
STEPS = SEGMENT.nurture.steps


def _done(email: EmailStep, skipped: bool = False, deferred: bool = False) -> Done:
    return Done(email.id, PathKind.NURTURE, email.role, skipped=skipped, deferred=deferred)


@pytest.mark.parametrize("done", [
    (),
    (_done(STEPS[0]), _done(STEPS[1], skipped=True)),
    (_done(STEPS[0]), _done(STEPS[4], skipped=True, deferred=True)),  # waits
    (_done(STEPS[4], skipped=True, deferred=True), _done(STEPS[4], deferred=True)),  # waited, went
    (_done(STEPS[0], deferred=True),),  # deferred, not skipped: went
    (Done("gone", PathKind.NURTURE, Role.SALE, skipped=True, deferred=True),),  # no longer in the path
])
def test_deferred_waiting_as_its_plain_form(done: tuple[Done, ...]) -> None:
    state = State(stage=Stage.NURTURE, since=T0 - timedelta(days=1), segment="beginner", done=done)
    assert deferred_waiting(state, STEPS) == waiting_in(state, STEPS)


def test_segment_path_by_kind() -> None:
    assert SEGMENT.path(PathKind.NURTURE) is SEGMENT.nurture
    assert SEGMENT.path(PathKind.SALES) is SEGMENT.sales
    assert SEGMENT.path(PathKind.CUSTOMER) is SEGMENT.customer
    with pytest.raises(KeyError):
        SEGMENT.path(PathKind.WINBACK)
