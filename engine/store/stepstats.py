"""Per-email numbers read from the database: what each step sent and what people did with it.

Shared by `funnel stats`, `/api/stats`, the dashboard and the guardrails, so that the
number that pauses a step is the number a marketer sees next to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.flow.state import EventType
from engine.store.status import LEFT, PENDING, DeliveryStatus
from engine.store.tables import DELIVERY, EVENT

# Left the engine and got an answer from the receiving server: what rates are taken over.
SENT_STATUSES = LEFT
# Still on its way: queued, being sent, or waiting to retry after a 4xx.
PENDING_STATUSES = PENDING
# Unique people per step, from events that name the email they came from.
_PEOPLE = {
    EventType.OPEN.value: "opened",
    EventType.CLICK.value: "clicked",
    EventType.UNSUBSCRIBE.value: "unsubscribed",
    EventType.COMPLAINT.value: "complained",
}


@dataclass(frozen=True)
class StepCounts:
    """One email step's numbers. `opened` is a weak signal: image proxies fetch pixels too."""

    funnel: str
    step: str
    sent: int = 0  # accepted, bounced or of unknown outcome: the base of every rate
    delivered: int = 0  # accepted by the receiving server and not bounced since
    bounced: int = 0  # hard bounces, at the SMTP conversation or reported later
    failed: int = 0  # refused (not the mailbox) or retried until the retry lifetime ran out
    pending: int = 0
    opened: int = 0  # unique people
    clicked: int = 0  # unique people
    unsubscribed: int = 0  # unique people
    complained: int = 0  # unique people

    def rate(self, count: int) -> float:
        """`count` over the sends, 0 when nothing was sent yet."""
        return count / self.sent if self.sent else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The counts and the rates over sent, as the JSON and CSV outputs show them."""
        values: dict[str, Any] = asdict(self)
        for name in ("delivered", "bounced", "opened", "clicked", "unsubscribed", "complained"):
            values[f"{name}_rate"] = round(self.rate(values[name]), 6)
        return values


def step_counts(
    conn: Connection,
    funnel: str | None = None,
    since: datetime | None = None,
    steps: Iterable[str] | None = None,
    mail_since: datetime | None = None,
) -> list[StepCounts]:
    """Every step that has mail, of one funnel or all, counting mail and events from `since` on.

    `mail_since` counts only mail decided from then on, and only the events of that mail:
    after a resume, unsubscribes still coming in from the emails sent before it must not
    count against the new sends.
    """
    found: dict[tuple[str, str], dict[str, int]] = {}
    status = DELIVERY.c.status

    def count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    mail = sa.select(
        DELIVERY.c.funnel,
        DELIVERY.c.step,
        count_if(status.in_(SENT_STATUSES)),
        count_if(status == DeliveryStatus.SENT),
        count_if(status == DeliveryStatus.BOUNCED),
        count_if(status.in_((DeliveryStatus.FAILED, DeliveryStatus.REJECTED))),
        count_if(status.in_(PENDING_STATUSES)),
    ).group_by(DELIVERY.c.funnel, DELIVERY.c.step)
    mail = _narrow(mail, DELIVERY, DELIVERY.c.created_at, funnel, since or mail_since, steps)
    for row in conn.execute(mail):
        found[(row[0], row[1])] = dict(
            zip(
                ("sent", "delivered", "bounced", "failed", "pending"),
                (int(v or 0) for v in row[2:]),
                strict=True,
            )
        )
    people = sa.select(
        EVENT.c.funnel, EVENT.c.step, EVENT.c.type, sa.func.count(sa.distinct(EVENT.c.subscriber_id))
    ).where(EVENT.c.step.is_not(None), EVENT.c.funnel.is_not(None), EVENT.c.type.in_(list(_PEOPLE)))
    if mail_since is not None:
        of_new_mail = sa.and_(
            DELIVERY.c.subscriber_id == EVENT.c.subscriber_id,
            DELIVERY.c.funnel == EVENT.c.funnel,
            DELIVERY.c.step == EVENT.c.step,
            DELIVERY.c.created_at >= mail_since,
        )
        people = people.join(DELIVERY, of_new_mail)
    people = _narrow(
        people.group_by(EVENT.c.funnel, EVENT.c.step, EVENT.c.type), EVENT, EVENT.c.at, funnel, since, steps
    )
    for event_funnel, step, kind, count in conn.execute(people):
        found.setdefault((event_funnel, step), {})[_PEOPLE[kind]] = int(count)
    return [StepCounts(funnel=f, step=s, **values) for (f, s), values in sorted(found.items())]


def _narrow(
    statement: sa.Select[Any],
    table: sa.Table,
    when: sa.ColumnElement[datetime],
    funnel: str | None,
    since: datetime | None,
    steps: Iterable[str] | None,
) -> sa.Select[Any]:
    if funnel is not None:
        statement = statement.where(table.c.funnel == funnel)
    if since is not None:
        statement = statement.where(when >= since)
    if steps is not None:
        statement = statement.where(table.c.step.in_(list(steps)))
    return statement
