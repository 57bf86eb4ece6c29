"""Per-email numbers read from the database: what each step sent and what people did with it.

Shared by `funnel stats`, `/api/stats`, the dashboard and the guardrails, so that the
number that pauses a step is the number a marketer sees next to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from engine.store.status import DeliveryStatus
from engine.store.tallies import tally_rows
from engine.store.tally_sql import ACTED, PENDING_AS

# Which counts a mail tally's status adds to: `sent` (the base of every rate) is what left
# the engine and got an answer from the receiving server; suppressed mail counts in none.
_STATUS_COUNTS: dict[str, tuple[str, ...]] = {
    DeliveryStatus.SENT.value: ("sent", "delivered"),
    DeliveryStatus.BOUNCED.value: ("sent", "bounced"),
    DeliveryStatus.UNKNOWN.value: ("sent",),
    DeliveryStatus.FAILED.value: ("failed",),
    DeliveryStatus.REJECTED.value: ("failed",),
    PENDING_AS: ("pending",),
}
_COUNTS = ("sent", "delivered", "bounced", "failed", "pending", *ACTED)


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
) -> list[StepCounts]:
    """Every step that has mail, of one funnel or all: the mail decided from `since` on, and what
    its recipients did with it (unique people per step), from the mail tallies.

    Counting only the events of the mail counted keeps every rate a share of its own sends:
    after a guardrail's resume, unsubscribes still coming in from the emails sent before it
    do not count against the new sends.
    """
    wanted = set(steps) if steps is not None else None
    found: dict[tuple[str, str], dict[str, int]] = {}
    for row in tally_rows(conn, funnel, since, ("mail",)):
        if wanted is not None and row.k1 not in wanted:
            continue
        counts = found.setdefault((row.funnel, row.k1), dict.fromkeys(_COUNTS, 0))
        for name in _STATUS_COUNTS.get(row.k2, ()):
            counts[name] += row.n
        acted = int(row.k3)
        for name, bit in ACTED.items():
            if acted & bit:
                counts[name] += row.n
    return [StepCounts(funnel=f, step=s, **values) for (f, s), values in sorted(found.items())]
