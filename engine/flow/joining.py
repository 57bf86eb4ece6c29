"""Joining a funnel: the double opt-in, the lead magnet, the survey and the segment it chooses.

The stages before a subscriber walks a path (engine/flow/step.py calls these handlers).
Each returns a Move, or the reason it waits (engine/flow/waits.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.flow import waits
from engine.flow.actions import Action, EnterPath, EnterSegment, Skip
from engine.flow.moves import Move, send
from engine.flow.state import EventType, Facts, Stage, State
from engine.sequences.plan import EmailStep, PathKind, Plan
from engine.sequences.values import format_delay

# A double opt-in request is sent once more, no sooner than this after the first, when
# the person signs up again without having confirmed.
CONFIRM_AGAIN_AFTER = timedelta(hours=24)
# Against subscription bombing: at most one double opt-in request per address in this
# time, whatever the funnels; a further one waits until this long after the last.
CONFIRMATION_GAP = timedelta(hours=24)


def on_confirming(plan: Plan, state: State, facts: Facts, now: datetime) -> waits.Wait | Move:
    """Double opt-in: send the request (once more after a repeated signup), then wait for the click."""
    confirmed = facts.first(EventType.CONFIRMED)
    if not plan.double_opt_in or plan.confirmation is None:
        return Move(state.replaced(stage=Stage.MAGNET, since=now))
    if confirmed is not None:
        return Move(state.replaced(stage=Stage.MAGNET, since=confirmed.at))
    sent = state.sent_ids()
    if plan.confirmation.id not in sent:
        return _request(state, plan.confirmation, facts, now)
    again = plan.confirmation_again
    asked = any(e.type is EventType.SIGNED_UP_AGAIN and e.at > state.since for e in facts.events)
    if again is None or again.id in sent or not asked:
        return waits.ConfirmationClick()
    # They signed up again: the first request got lost. Once more, and only once, and not
    # within a day of the first (a form is no way to flood someone's inbox).
    due = state.since + CONFIRM_AGAIN_AFTER
    if now < due:
        return waits.ConfirmationAgain(due)
    return _request(state, again, facts, now)


def _request(state: State, email: EmailStep, facts: Facts, now: datetime) -> waits.Wait | Move:
    """A confirmation request, unless the address got one (in any funnel) within CONFIRMATION_GAP.

    Someone signing a stranger up for every funnel must not fill their inbox: each further
    request waits until a day after the one before.
    """
    last = max(facts.confirmations, default=None)
    if last is not None and now - last < CONFIRMATION_GAP:
        return waits.ConfirmationGap(last, last + CONFIRMATION_GAP)
    return send(state, email)


def on_magnet(plan: Plan, state: State, facts: Facts, now: datetime) -> waits.Wait | Move:
    """Send the lead magnet signed up for, then go on to the survey."""
    email = plan.magnet(facts.magnet).email
    if email.id in state.sent_ids():
        return Move(state.replaced(stage=Stage.SURVEY, since=now))
    return send(state, email, stage=Stage.SURVEY, since=now)


def _segment_chosen(state: State, segment: str, reason: str,
                    since: datetime, extra: tuple[Action, ...] = ()) -> Move:
    moved = state.replaced(stage=Stage.NURTURE, segment=segment, since=since, step=None,
                    last_sent_at=None, deadline=None)
    return Move(moved, (*extra, EnterSegment(segment, reason),
                        EnterPath(PathKind.NURTURE, f"segment '{segment}' chosen")))


def on_survey(plan: Plan, state: State, facts: Facts, now: datetime) -> waits.Wait | Move:
    """Send the survey email after its delay, unless the signup form answered it already."""
    survey = plan.survey
    if survey is None:
        return _segment_chosen(state, plan.default_segment, "no survey", now)
    answers = facts.answers()
    if survey.complete(answers):
        skip = Skip(survey.email, "answered on the signup form")
        return _segment_chosen(state, survey.decide(answers), "answered the survey", now,
                               (skip,))
    due = state.since + survey.after
    if now < due:
        return waits.SurveyDue(survey.email, due)
    return send(state, survey.email, stage=Stage.ANSWERING, since=now, deadline=now + survey.wait)


def on_answering(plan: Plan, state: State, facts: Facts, now: datetime) -> waits.Wait | Move:
    """Wait for every answer until the deadline; then choose the segment from what was answered."""
    survey = plan.survey
    if survey is None:
        return _segment_chosen(state, plan.default_segment, "the survey was removed", now)
    answers = facts.answers()
    if survey.complete(answers):
        return _segment_chosen(state, survey.decide(answers), "answered the survey",
                               facts.last_answer_at() or now)
    deadline = state.deadline or state.since + survey.wait
    if now < deadline:
        chosen = survey.decide(answers)
        return waits.SurveyAnswer(chosen, chosen == survey.default_segment and not answers, deadline)
    reason = f"no answer within {format_delay(survey.wait)}"
    if answers:
        reason = f"only some questions answered within {format_delay(survey.wait)}"
    return _segment_chosen(state, survey.decide(answers), reason, deadline)
