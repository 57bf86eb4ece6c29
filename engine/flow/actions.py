"""What a step asks the outside world to do, or tells it happened."""

from __future__ import annotations

from dataclasses import dataclass

from engine.sequences.plan import EmailStep, PathKind


@dataclass(frozen=True)
class Send:
    """Send this email now; `variant`: which of its experiment's versions (None: it has one)."""

    email: EmailStep
    segment: str | None
    variant: str | None = None


@dataclass(frozen=True)
class Skip:
    """This email will not be sent, and why."""

    email: EmailStep
    reason: str


@dataclass(frozen=True)
class Defer:
    """This sale waits: a broadcast's sale is in the ratio's window; it goes once the ratio allows."""

    email: EmailStep
    reason: str


@dataclass(frozen=True)
class EnterSegment:
    """The subscriber now belongs to a segment."""

    segment: str
    reason: str


@dataclass(frozen=True)
class EnterPath:
    """The subscriber moved to another path of their segment."""

    path: PathKind
    reason: str


@dataclass(frozen=True)
class End:
    """The enrollment is over (or idle until a purchase, after the sales path)."""

    reason: str


Action = Send | Skip | Defer | EnterSegment | EnterPath | End
