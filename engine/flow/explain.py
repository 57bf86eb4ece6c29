"""What an enrollment gets next, when, and why it waits: `funnel subscribers show` in a marketer's words.

Pure, like `step`. The *what* and *when* come from `step` itself: it settles the state at
`now`, then is called again at each wake time until it sends something, so the time named
here is the time the daemon acts on (if no event comes first). The *why* mirrors step's
own computations (spacing from the last email, `plan.window.next_open`,
`plan.cap.next_allowed`); tests/flow/test_explain.py checks the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.flow.actions import Action, Send, Skip
from engine.flow.state import Facts, Stage, State
from engine.flow.step import step
from engine.sequences.plan import EmailStep, PathKind, PathPlan, Plan
from engine.sequences.values import format_delay
from engine.sequences.window import zone

_STARTS = {
    PathKind.NURTURE: "the nurture path began",
    PathKind.SALES: "the sales path began",
    PathKind.CUSTOMER: "the customer path began",
    PathKind.WINBACK: "the subscriber was found idle",
}


@dataclass(frozen=True)
class Explanation:
    """The next email of one enrollment (None: nothing is planned), when it goes out, and why not sooner."""

    step: EmailStep | None
    at: datetime | None  # UTC; None: only an event (a click, an answer, a purchase) moves it on
    reason: str


def when(at: datetime, timezone: str) -> str:
    """`at` in the subscriber's zone, with the zone's name: 'Tue 2026-03-03 09:00 Europe/Budapest'."""
    tzinfo = zone(timezone)
    return f"{at.astimezone(tzinfo):%a %Y-%m-%d %H:%M} {tzinfo.key}"


def explain(plan: Plan, state: State, facts: Facts, now: datetime) -> Explanation:
    """What `step` will send next for this enrollment, at what time, and the reason it waits until then."""
    facts = facts.until(now)
    outcome = step(plan, state, facts, now)
    sent = _first_send(outcome.actions)
    if sent is not None:
        return Explanation(sent, now, f"'{sent.id}' is due now: it goes out at the daemon's next tick")
    state, at = outcome.state, outcome.wake_at
    reasons = [why(plan, state, facts, now)]
    skipped: list[str] = []
    # Every wake sends, skips or changes stage, so the emails of the funnel bound the loop.
    for _ in range(4 * plan.email_count + 16):
        if at is None:
            break
        later = step(plan, state, facts, at)
        skipped.extend(f"'{a.email.id}' is skipped ({a.reason})"
                       for a in later.actions if isinstance(a, Skip))
        sent = _first_send(later.actions)
        if sent is not None:
            return Explanation(sent, at, "; then ".join(reasons + skipped))
        state = later.state
        if later.wake_at is not None and later.wake_at != at:
            reasons.append(why(plan, state, facts, at))
        at = later.wake_at
    return Explanation(_after_event(plan, state, facts), None, "; then ".join(reasons + skipped))


def why(plan: Plan, state: State, facts: Facts, now: datetime) -> str:
    """Why a settled state (one `step` left waiting at `now`) waits: mirrors step's wait branches."""
    tz = facts.timezone
    if state.stage is Stage.ENDED:
        return f"ended: {state.reason or 'no reason recorded'}"
    if state.stage is Stage.SALES_DONE:
        return "sales path over without a purchase; waiting for a purchase, which starts the customer path"
    if state.stage is Stage.CONFIRMING:
        return "waiting for the confirmation click"
    if state.stage is Stage.SUNSET:
        return f"{state.reason or 'sunset'}; no more marketing email unless they click again"
    survey = plan.survey
    if state.stage is Stage.SURVEY and survey is not None:
        return f"survey email '{survey.email.id}' due at {when(state.since + survey.after, tz)}"
    if state.stage is Stage.ANSWERING and survey is not None:
        deadline = state.deadline or state.since + survey.wait
        answers = facts.answers()
        chosen = survey.decide(answers)
        then = (f"the default segment '{chosen}'" if chosen == survey.default_segment and not answers
                else f"segment '{chosen}' from the answers given so far")
        return f"waiting for the survey answer until {when(deadline, tz)}, then {then}"
    kind = state.stage.path
    path = _path(plan, state)
    index = path.index(state.step) if path and state.step else None
    if path is None or kind is None or index is None:
        if state.stage is Stage.WINBACK and plan.winback:
            after = format_delay(plan.winback.sunset_after)
            return f"win-back emails sent; sunset if there is no click within {after} of the last"
        return f"waiting at stage '{state.stage.value}'"
    email = path.steps[index]
    if email.id in facts.paused:
        return (f"'{email.id}' is paused (a guardrail or a person stopped it); waits here until "
                f"someone resumes it: funnel resume {plan.funnel} {email.id}")
    return _walk_wait(plan, state, facts, now, email, kind)


def _path(plan: Plan, state: State) -> PathPlan | None:
    kind = state.stage.path
    if kind is PathKind.WINBACK:
        return plan.winback.path if plan.winback else None
    segment = plan.segment(state.segment)
    return segment.path(kind) if segment and kind else None


def _walk_wait(plan: Plan, state: State, facts: Facts, now: datetime, email: EmailStep,
               kind: PathKind) -> str:
    """The wait of a nurture, sales or customer step: spacing, then the window, then the cap."""
    tz, window = facts.timezone, plan.window
    due = (state.last_sent_at or state.since) + email.after
    if now < due:
        anchor = "the last email" if state.last_sent_at else _STARTS[kind]
        text = f"spacing: '{email.id}' is due at {when(due, tz)}, {format_delay(email.after)} after {anchor}"
        opens = window.next_open(due, tz) if window else due
        if opens != due and window:
            text += f"; outside the send window ({window.text}): opens at {when(opens, tz)}"
        return text
    if window and not window.contains(now, tz):
        return f"outside the send window ({window.text}): opens at {when(window.next_open(now, tz), tz)}"
    allowed = plan.cap.next_allowed(facts.marketing_sent, now, tz)
    if allowed > now:
        text = f"frequency cap {plan.cap.text or plan.cap.limit} reached: next allowed at {when(allowed, tz)}"
        opens = window.next_open(allowed, tz) if window else allowed
        if opens != allowed and window:
            text += f"; the send window ({window.text}) opens at {when(opens, tz)}"
        return text
    return f"'{email.id}' is due now"


def _after_event(plan: Plan, state: State, facts: Facts) -> EmailStep | None:
    """The email an awaited event would bring: the magnet after the click, onboarding after a purchase,
    the held email after a resume."""
    if state.stage is Stage.CONFIRMING:
        return plan.magnet(facts.magnet).email
    path = _path(plan, state)
    if path is not None and state.step in facts.paused:  # a resume sends it
        index = path.index(state.step)
        return path.steps[index] if index is not None else None
    segment = plan.segment(state.segment)
    if state.stage is Stage.SALES_DONE and segment and segment.customer.steps:
        return segment.customer.steps[0]
    return None


def _first_send(actions: tuple[Action, ...]) -> EmailStep | None:
    return next((a.email for a in actions if isinstance(a, Send)), None)
