"""Why an enrollment waits after a call of `step`: one typed reason per wait branch of the interpreter.

`step` returns the reason with its wake time (`Outcome.wait`), so `explain` words what
the interpreter decided instead of computing it a second time. Every reason's `at` is
the outcome's `wake_at`: None for the reasons only an event (a click, an answer, a
purchase, a resume) ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.sequences.plan import EmailStep, PathKind


@dataclass(frozen=True)
class Ended:
    """The enrollment is over; `reason` is the one stored with it."""

    reason: str | None
    at: None = None


@dataclass(frozen=True)
class AddressBlocked:
    """The address bounced or complained: `step` ended the enrollment just now."""

    status: str
    at: None = None


@dataclass(frozen=True)
class SalesOver:
    """The sales path ended without a purchase; a purchase still starts the customer path."""

    at: None = None


@dataclass(frozen=True)
class SunsetStage:
    """Sunset: no more marketing email unless they click again; `reason` says why they got here."""

    reason: str | None
    at: None = None


@dataclass(frozen=True)
class ConfirmationClick:
    """Double opt-in: the request went out, the click has not come."""

    at: None = None


@dataclass(frozen=True)
class ConfirmationAgain:
    """They signed up again unconfirmed: the request goes once more at `at`, a day after the first."""

    at: datetime


@dataclass(frozen=True)
class ConfirmationGap:
    """One confirmation request per address a day: the last one went at `last`, this one waits until `at`."""

    last: datetime
    at: datetime


@dataclass(frozen=True)
class SurveyDue:
    """The survey email goes out at `at`, its delay after the magnet."""

    email: EmailStep
    at: datetime


@dataclass(frozen=True)
class SurveyAnswer:
    """Waiting for the answers until `at`; then `segment` (`by_default`: nothing was answered)."""

    segment: str
    by_default: bool
    at: datetime


@dataclass(frozen=True)
class Paused:
    """A guardrail or a person paused `email`: it holds here until someone resumes it."""

    email: EmailStep
    at: None = None


@dataclass(frozen=True)
class Held:
    """An earlier email of this enrollment (`step`) is held for its files; the next one waits for it.

    Looked at again at `at`: a held email is retried every few minutes, and goes as soon as a
    release renders it.
    """

    step: str
    at: datetime


@dataclass(frozen=True)
class Spacing:
    """`email` is due at `due`, its delay after the last email (`after_last`) or the start of `path`.

    `at` is later than `due` when `due` falls outside the send window.
    """

    email: EmailStep
    path: PathKind
    after_last: bool
    due: datetime
    at: datetime


@dataclass(frozen=True)
class OutsideWindow:
    """The email is due but the send window is closed: it opens at `at`."""

    at: datetime


@dataclass(frozen=True)
class CapReached:
    """The frequency cap allows the next marketing email at `allowed`; the window may open later, at `at`."""

    allowed: datetime
    at: datetime


@dataclass(frozen=True)
class BroadcastDue:
    """The broadcast `email` goes to this recipient at `at` (their local time, or its one instant)."""

    email: EmailStep
    at: datetime


@dataclass(frozen=True)
class WinnerPending:
    """The broadcast `email` is due, but this recipient gets its experiment's winner, not chosen yet."""

    email: EmailStep
    at: datetime


@dataclass(frozen=True)
class SunsetDue:
    """The win-back emails went out; without a click within `after` of the last, sunset at `at`."""

    after: timedelta
    at: datetime


Wait = (Ended | AddressBlocked | SalesOver | SunsetStage | ConfirmationClick | ConfirmationAgain
        | ConfirmationGap | SurveyDue | SurveyAnswer | Paused | Held | Spacing | OutsideWindow | CapReached
        | BroadcastDue | WinnerPending | SunsetDue)
