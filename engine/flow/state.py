"""What the interpreter reads and writes: an enrollment's State and a subscriber's Facts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from engine.flow.status import SubscriberStatus
from engine.sequences.plan import EmailStep, PathKind, Role

_Frozen = TypeVar("_Frozen", "State", "Facts")


def _copy(original: _Frozen, names: frozenset[str], changes: dict[str, Any]) -> _Frozen:
    """`dataclasses.replace(original, **changes)` for State and Facts, at a fifth of its cost.

    `step` copies a State or Facts about four times per email; `replace` looks up every
    field and runs the frozen `__init__`, whose `object.__setattr__` per field costs more
    than the copy itself (4.0 µs against 0.8 µs for State). Taking the instance's
    `__dict__` as it is says the same because neither class has a `__post_init__`, an
    `init=False` field or a cached value in its `__dict__` (tests/flow/test_state_copy.py
    keeps it so); an unknown field is refused as `replace` refuses it.
    """
    unknown = changes.keys() - names
    if unknown:
        raise TypeError(f"{type(original).__name__} has no field {sorted(unknown)[0]!r}")
    copied = object.__new__(type(original))
    values = copied.__dict__
    values.update(original.__dict__)
    values.update(changes)
    return copied


class Stage(StrEnum):
    """Where an enrollment stands in its funnel."""

    CONFIRMING = "confirming"  # double opt-in: confirmation sent, waiting for the click
    MAGNET = "magnet"  # confirmed: the lead magnet goes out now
    SURVEY = "survey"  # the survey email goes out after survey.after
    ANSWERING = "answering"  # waiting for answers until the deadline
    NURTURE = "nurture"
    SALES = "sales"
    SALES_DONE = "sales_done"  # sales path over without a purchase; a purchase still counts
    CUSTOMER = "customer"
    WINBACK = "winback"  # idle too long: the win-back emails; a click returns them to where they were
    SUNSET = "sunset"  # the win-back brought no click: no more marketing email; a click returns them
    ENDED = "ended"

    @property
    def path(self) -> PathKind | None:
        """The path this stage walks, for the path stages."""
        return _PATHS.get(self)


_PATHS = {Stage.NURTURE: PathKind.NURTURE, Stage.SALES: PathKind.SALES,
          Stage.CUSTOMER: PathKind.CUSTOMER, Stage.WINBACK: PathKind.WINBACK}


class EventType(StrEnum):
    """The closed vocabulary of things that happen to a subscriber."""

    CONFIRMED = "confirmed"
    SIGNED_UP_AGAIN = "signup_again"  # a repeated signup while the double opt-in waits
    ANSWER = "answer"
    PURCHASE = "purchase"
    UNSUBSCRIBE = "unsubscribe"
    CLICK = "click"
    OPEN = "open"
    TAG = "tag"
    UNTAG = "untag"
    CUSTOM = "custom"
    COMPLAINT = "complaint"  # marked as spam: the address is suppressed
    BOUNCE = "bounce"  # a hard bounce reported after the SMTP server accepted the message


@dataclass(frozen=True)
class Event:
    """Something that happened to the subscriber at a moment."""

    type: EventType
    at: datetime
    question: str | None = None
    answer: str | None = None
    product: str | None = None
    name: str | None = None  # a tag's or a custom event's name
    step: str | None = None  # the email it came from (a click, an unsubscribe, a complaint)
    funnel: str | None = None  # the funnel it happened in; None: every funnel (engine/flow/facts.py)


@dataclass(frozen=True)
class Done:
    """An email of this enrollment that was sent (or skipped on purpose).

    A sequence sale that a broadcast's sale kept out of the ratio's window is deferred, not
    skipped (engine/flow/broadcasts.py): noted `deferred` and `skipped` while it waits, and
    once more, `deferred` and not skipped, when it goes. Deferred entries never mark a
    position in the path (engine/flow/position.py).

    A broadcast's entry keeps the stage the recipient was in when it went (`during`): it
    takes a place in the ratio's window of the path they were walking then, not of a path
    they walk later (engine/flow/step.py). None: not a broadcast, one skipped (it takes no
    place in any window), or one recorded before 2026-12-06, which counts in every path's
    window as it always did.
    """

    step: str
    path: PathKind
    role: Role
    skipped: bool = False
    deferred: bool = False
    during: Stage | None = None


@dataclass(frozen=True)
class State:
    """One subscriber's position in one funnel; stored as one row by the daemon."""

    stage: Stage
    since: datetime  # when the current stage (or path) began
    segment: str | None = None
    step: str | None = None  # the step id the subscriber is at in the current path
    last_sent_at: datetime | None = None  # the last email of the current path
    deadline: datetime | None = None  # when an unanswered survey falls back to the default
    done: tuple[Done, ...] = ()
    reason: str | None = None  # why the enrollment ended
    # Where a subscriber in win-back or sunset goes back to when they click again.
    resume_stage: Stage | None = None
    resume_step: str | None = None

    def replaced(self, **changes: Any) -> State:
        """This state with `changes` to its fields: `dataclasses.replace`, faster (see _copy)."""
        return _copy(self, _STATE_FIELDS, changes)

    def sent_ids(self) -> frozenset[str]:
        """Step ids of every email actually sent to this subscriber in this funnel."""
        return frozenset(d.step for d in self.done if not d.skipped)

    def passed_ids(self) -> frozenset[str]:
        """Step ids sent or skipped: never to be considered again."""
        return frozenset(d.step for d in self.done)


_STATE_FIELDS = frozenset(f.name for f in fields(State))


@dataclass(frozen=True)
class Trial:
    """What an email's experiment has so far: per variant (id, sends, successes), in the file's
    order, and the winner once one was chosen for good (a broadcast's, written by the daemon)."""

    arms: tuple[tuple[str, int, int], ...] = ()
    winner: str | None = None


@dataclass(frozen=True)
class Facts:
    """What is known about the subscriber; the interpreter reads only what happened by `now`."""

    timezone: str = "UTC"
    magnet: str | None = None
    events: tuple[Event, ...] = ()
    marketing_sent: tuple[datetime, ...] = ()  # every marketing email, across all funnels
    joined_at: datetime | None = None  # when the enrollment began: idle time counts from here at most
    paused: frozenset[str] = frozenset()  # step ids a guardrail (or a person) paused in this funnel
    status: str = SubscriberStatus.ACTIVE  # the address's: a bounced or complained one ends the enrollment
    # When confirmation requests were last decided for this address, in any funnel: one a day.
    confirmations: tuple[datetime, ...] = ()
    # This enrollment's emails held because the files cannot render them (engine/scheduler/sending.py):
    # the next email waits for them, so that what the person receives keeps the path's order.
    held: tuple[str, ...] = ()
    # The broadcasts this enrollment is a recipient of, with when each is due to it: (id, UTC).
    # Those it already got or skipped are in State.done (engine/flow/broadcasts.py).
    broadcasts: tuple[tuple[str, datetime], ...] = ()
    # Experiments (engine/flow/variants.py): each experimental email's counts by step id; the
    # recipient's key, which seeds their variant (the subscriber's id: a retry picks the same);
    # a variant to show whatever the counts say (`funnel simulate --variant`).
    trials: Mapping[str, Trial] = field(default_factory=dict, hash=False)
    key: str = ""
    variant: str | None = None

    def replaced(self, **changes: Any) -> Facts:
        """These facts with `changes` to their fields: `dataclasses.replace`, faster (see _copy)."""
        return _copy(self, _FACTS_FIELDS, changes)

    def until(self, now: datetime) -> Facts:
        """These facts as they stood at `now`.

        Confirmations stay: one decided by a daemon whose clock runs a little ahead still
        spaces the next one.
        """
        if all(e.at <= now for e in self.events) and all(t <= now for t in self.marketing_sent):
            return self  # the usual case: nothing lies ahead of `now`
        return self.replaced(events=tuple(e for e in self.events if e.at <= now),
                             marketing_sent=tuple(t for t in self.marketing_sent if t <= now))

    def after_send(self, email: EmailStep, at: datetime) -> Facts:
        """These facts once `email` was decided at `at`: the frequency cap and the
        confirmation gap count it. The one rule for `step`, the tick's batch and `simulate`."""
        if email.marketing:
            return self.replaced(marketing_sent=(*self.marketing_sent, at))
        if email.path is PathKind.CONFIRM:
            return self.replaced(confirmations=(*self.confirmations, at))
        return self

    def first(self, kind: EventType) -> Event | None:
        """The earliest event of this type."""
        return min((e for e in self.events if e.type is kind), key=lambda e: e.at, default=None)

    def answers(self) -> dict[str, str]:
        """Each question's latest answer."""
        chosen: dict[str, str] = {}
        for event in sorted((e for e in self.events if e.type is EventType.ANSWER),
                            key=lambda e: e.at):
            if event.question and event.answer:
                chosen[event.question] = event.answer
        return chosen

    def last_answer_at(self) -> datetime | None:
        """When the latest answer came in."""
        return max((e.at for e in self.events if e.type is EventType.ANSWER), default=None)


_FACTS_FIELDS = frozenset(f.name for f in fields(Facts))
