"""What an enrollment gets next, when, and why it waits: `funnel subscribers show` in a marketer's words.

Pure, like `step`. The *what* and *when* come from `step` itself: it settles the state at
`now`, then is called again at each wake time until it sends something, so the time named
here is the time the daemon acts on (if no event comes first). The *why* is the reason
`step` returned with each wait (engine/flow/waits.py), put into words: nothing here
decides anything `step` did not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import assert_never

from engine.flow import waits
from engine.flow.actions import Action, Send, Skip
from engine.flow.state import Facts, State
from engine.flow.step import Outcome, step
from engine.sequences.plan import EmailStep, PathKind, Plan
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
    reasons = [words(plan, outcome.wait, facts.timezone)]
    skipped: list[str] = []
    # Every wake sends, skips or changes stage, so the emails of the funnel bound the loop.
    for _ in range(4 * plan.email_count + 16):
        at = outcome.wake_at
        if at is None:
            break
        later = step(plan, outcome.state, facts, at)
        skipped.extend(f"'{a.email.id}' is skipped ({a.reason})"
                       for a in later.actions if isinstance(a, Skip))
        sent = _first_send(later.actions)
        if sent is not None:
            return Explanation(sent, at, "; then ".join(reasons + skipped))
        if later.wake_at is not None and later.wake_at != at:
            reasons.append(words(plan, later.wait, facts.timezone))
        outcome = later
    return Explanation(_after_event(plan, outcome, facts), None, "; then ".join(reasons + skipped))


def words(plan: Plan, wait: waits.Wait, timezone: str) -> str:
    """Why `step` left an enrollment of `plan` waiting, in a marketer's words; times in `timezone`."""
    tz, window = timezone, plan.window
    match wait:
        case waits.Ended(reason):
            return f"ended: {reason or 'no reason recorded'}"
        case waits.AddressBlocked(status):
            return f"the address {status}: ends at the daemon's next tick"
        case waits.SalesOver():
            return ("sales path over without a purchase; "
                    "waiting for a purchase, which starts the customer path")
        case waits.ConfirmationClick() | waits.ConfirmationAgain():
            return "waiting for the confirmation click"
        case waits.ConfirmationGap(last, at):
            return (f"one confirmation request a day per address: the last went out at {when(last, tz)}, "
                    f"the next may go at {when(at, tz)}")
        case waits.SunsetStage(reason):
            return f"{reason or 'sunset'}; no more marketing email unless they click again"
        case waits.SurveyDue(email, at):
            return f"survey email '{email.id}' due at {when(at, tz)}"
        case waits.SurveyAnswer(segment, by_default, at):
            then = (f"the default segment '{segment}'" if by_default
                    else f"segment '{segment}' from the answers given so far")
            return f"waiting for the survey answer until {when(at, tz)}, then {then}"
        case waits.Paused(email):
            return (f"'{email.id}' is paused (a guardrail or a person stopped it); waits here until "
                    f"someone resumes it: funnel resume {plan.funnel} {email.id}")
        case waits.Held(step, at):
            return (f"'{step}' is held: the template files cannot render it (see the render_held "
                    f"warning); the next email waits for it, looked at again at {when(at, tz)}")
        case waits.Spacing(email, path, after_last, due, at):
            anchor = "the last email" if after_last else _STARTS[path]
            text = (f"spacing: '{email.id}' is due at {when(due, tz)}, "
                    f"{format_delay(email.after)} after {anchor}")
            if at != due and window:
                text += f"; outside the send window ({window.text}): opens at {when(at, tz)}"
            return text
        case waits.OutsideWindow(at):
            return f"outside the send window ({window.text if window else ''}): opens at {when(at, tz)}"
        case waits.CapReached(allowed, at):
            cap = plan.cap.text or plan.cap.limit
            text = f"frequency cap {cap} reached: next allowed at {when(allowed, tz)}"
            if at != allowed and window:
                text += f"; the send window ({window.text}) opens at {when(at, tz)}"
            return text
        case waits.BroadcastDue(email, at):
            return f"broadcast '{email.id}' goes to them at {when(at, tz)}"
        case waits.WinnerPending(email, at):
            return (f"broadcast '{email.id}' goes to them with its experiment's winner, not chosen yet; "
                    f"looked at again at {when(at, tz)}")
        case waits.SunsetDue(after):
            return (f"win-back emails sent; sunset if there is no click within {format_delay(after)} "
                    "of the last")
    assert_never(wait)


def _after_event(plan: Plan, outcome: Outcome, facts: Facts) -> EmailStep | None:
    """The email an awaited event would bring: the magnet after the click, onboarding after a purchase,
    the held email after a resume."""
    match outcome.wait:
        case waits.ConfirmationClick():
            return plan.magnet(facts.magnet).email
        case waits.Paused(email):  # a resume sends it
            return email
        case waits.SalesOver():
            segment = plan.segment(outcome.state.segment)
            return segment.customer.steps[0] if segment and segment.customer.steps else None
    return None


def _first_send(actions: tuple[Action, ...]) -> EmailStep | None:
    return next((a.email for a in actions if isinstance(a, Send)), None)
