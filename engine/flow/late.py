"""Survey answers that come after the segment was chosen: the one rule for what they change.

A late answer (after the survey's `wait`, or a changed answer) moves the subscriber to
the segment it points to while no email of their nurture path has gone out: up to then
nothing written for the wrong segment has reached them, so the move costs them nothing
and they get the whole path meant for them, timed from the answer. After the first
nurture email the answer is kept with the events and changes nothing: moving would
start a second story from its beginning, with a second introduction and, soon, a
second sales pitch. `step` applies the rule; `unheeded` says why an answer changed
nothing, for `funnel simulate` and `funnel subscribers show`.
"""

from __future__ import annotations

from engine.flow.actions import EnterPath, EnterSegment
from engine.flow.moves import Move
from engine.flow.state import Event, EventType, Facts, Stage, State
from engine.sequences.plan import PathKind, Plan

# Before the segment is chosen an answer is not late: the survey stages count it.
_DECIDING = (Stage.CONFIRMING, Stage.MAGNET, Stage.SURVEY, Stage.ANSWERING)


def late_answer(plan: Plan, state: State, facts: Facts) -> Move | None:
    """Move to the segment a late answer points to, while no nurture email has gone out."""
    if state.stage is not Stage.NURTURE or plan.survey is None or _nurture_begun(state):
        return None
    late = [e.at for e in facts.events if e.type is EventType.ANSWER and e.at > state.since]
    if not late:
        return None
    chosen = plan.survey.decide(facts.answers())
    if chosen == state.segment or plan.segment(chosen) is None:
        return None
    moved = state.replaced(segment=chosen, since=max(late), step=None, last_sent_at=None)
    reason = f"late survey answer, before any nurture email of segment '{state.segment}'"
    return Move(moved, (EnterSegment(chosen, reason),
                        EnterPath(PathKind.NURTURE, f"segment '{chosen}' chosen")))


def unheeded(plan: Plan, state: State, facts: Facts, answer: Event) -> str | None:
    """Why the survey answers, `answer` the latest, do not decide the segment of `state`; None if they do."""
    survey = plan.survey
    if survey is None or state.segment is None or state.stage in _DECIDING:
        return None
    chosen = survey.decide(facts.answers())
    if chosen == state.segment or (state.stage is Stage.NURTURE and not _nurture_begun(state)):
        return None  # they agree, or `step` moves them at its next call
    kept = (f"late answer {answer.question}={answer.answer} (after the segment was chosen): "
            f"kept segment '{state.segment}'")
    if plan.segment(chosen) is None:
        return f"{kept}; the answers' segment '{chosen}' is no longer in the file"
    if Stage.CUSTOMER in (state.stage, state.resume_stage):
        return f"{kept}: already a customer, whose emails follow the purchase"
    if state.stage is Stage.ENDED:
        return f"{kept}: the enrollment has ended"
    first = next((f" ('{d.step}')" for d in state.done if d.path is PathKind.NURTURE), "")
    return (f"{kept} (not '{chosen}') because its nurture emails had begun{first}; "
            "a late answer changes the segment only before the first nurture email")


def _nurture_begun(state: State) -> bool:
    """Whether an email of the nurture path was sent (or skipped): the segment's story has begun."""
    return any(d.path is PathKind.NURTURE for d in state.done)
