"""One enrollment's Facts from what is stored about its subscriber: the tick, `subscribers show` and
`simulate` build them here, so all three hand `step` the same picture.

Pure: the caller reads the rows (engine/store/rows.py turns them into Events) and
passes plain values; which of them one funnel's interpreter sees is decided here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from engine.flow.state import Event, EventType, Facts, Trial
from engine.sequences.plan import PathKind, Plan

# The frequency cap counts per local day or ISO week; 8 days of history cover both
# in every time zone.
CAP_HISTORY = timedelta(days=8)
# Opens and clicks on any funnel's email count in every funnel: a reader of one funnel is
# not idle in another (win-back and sunset, docs/guardrails.md).
_ENGAGEMENT_ANYWHERE = frozenset({EventType.OPEN, EventType.CLICK})


def seen_by(funnel: str, events: Iterable[Event]) -> tuple[Event, ...]:
    """The events `funnel`'s interpreter sees: its own, those for every funnel, every open and click."""
    return tuple(e for e in events if e.funnel in (None, funnel) or e.type in _ENGAGEMENT_ANYWHERE)


def facts_for(
    funnel: str,
    *,
    timezone: str,
    status: str,
    magnet: str | None,
    joined_at: datetime | None,
    events: Iterable[Event],
    marketing_sent: Iterable[datetime],
    paused: Mapping[str, frozenset[str]],
    confirmations: Iterable[datetime] = (),
    held: Iterable[str] = (),
    broadcasts: Iterable[tuple[str, datetime]] = (),
    trials: Mapping[str, Trial] | None = None,
    key: str = "",
) -> Facts:
    """The facts of one enrollment in `funnel`.

    `events`: all of the subscriber's, in every funnel; `marketing_sent`: their marketing
    emails in every funnel (the last CAP_HISTORY is enough); `paused`: the paused step ids
    of every funnel; `confirmations`: when confirmation requests were decided for the
    address (the last engine.flow.joining.CONFIRMATION_GAP is enough); `held`: the steps of
    this enrollment whose emails are held for their files; `broadcasts`: the broadcasts it
    is a recipient of, (id, when due to it); `trials`: the funnel's experiments' counts by
    step; `key`: the subscriber's, which seeds the variant they get.
    """
    return Facts(
        timezone=timezone,
        magnet=magnet,
        events=seen_by(funnel, events),
        marketing_sent=tuple(marketing_sent),
        joined_at=joined_at,
        paused=paused.get(funnel, frozenset()),
        status=status,
        confirmations=tuple(confirmations),
        held=tuple(held),
        broadcasts=tuple(broadcasts),
        trials=trials or {},
        key=key,
    )


def confirmation_steps(plans: Iterable[Plan]) -> list[tuple[str, str]]:
    """(funnel, step id) of every confirmation request: the deliveries the one-a-day gap counts."""
    return [(plan.funnel, email.id) for plan in plans for email in plan.emails()
            if email.path is PathKind.CONFIRM]
