"""A served daemon whose subscribers have mail behind them, and what complaints and bounces wrote."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.mail.memory import MemoryTransport
from engine.mail.transport import Outcome, Outgoing, Result
from engine.store.stepstats import step_counts
from engine.store.tables import EVENT, SUBSCRIBER, SUPPRESSION
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project
from tests.web.conftest import API_KEY, START, Site
from tests.web.served import serve


def _deferring_e2(message: Outgoing) -> Result:
    # E2 waits for a retry: an email still pending when the complaint comes.
    if b"\r\nSubject: E2\r\n" in message.data:
        return Result(Outcome.RETRY, 451, "4.7.1 try again later")
    return Result(Outcome.SENT, 250, "2.0.0 ok")


@contextmanager
def open_shop(db_url: str, tmp_path: Path) -> Iterator[Site]:
    """Ann (subscriber 1) and Bo (2) got the magnet and E1 (sent); their E2 is deferred."""
    harness = Harness(db_url, minimal_project(tmp_path / "p"), START, api_key=API_KEY,
                      webhook_key=API_KEY, transport=MemoryTransport(_deferring_e2))
    try:
        for address in ("ann@example.com", "bo@example.com"):
            harness.add(address, answers={"level": "new"})
            harness.event(address, "confirmed", funnel="minimal")
        for _ in range(3):
            harness.tick()
            harness.clock.advance(timedelta(days=2))
        assert [(d["step"], d["status"]) for d in harness.deliveries() if d["subscriber_id"] == 1] == [
            ("magnet", "sent"), ("e1", "sent"), ("e2", "deferred")]
        with serve(harness) as http:
            yield Site(harness, http)
    finally:
        harness.close()


def message_id_of(site: Site, email: str, step: str) -> str:
    """The Message-ID (no brackets) of the email `step` sent to `email`."""
    with site.harness.db_engine.connect() as conn:
        subscriber = conn.execute(sa.select(SUBSCRIBER.c.id).where(SUBSCRIBER.c.email == email)).scalar_one()
    [found] = [d["message_id"] for d in site.harness.deliveries()
               if d["subscriber_id"] == subscriber and d["step"] == step]
    return str(found)


def written(site: Site) -> dict[str, Any]:
    """What complaints and bounces can change: their events, the suppression list, statuses, deliveries."""
    with site.harness.db_engine.connect() as conn:
        events = [(e.type, e.funnel, e.step) for e in conn.execute(
            sa.select(EVENT).where(EVENT.c.type.in_(("complaint", "bounce"))).order_by(EVENT.c.id))]
        suppressed = {row.email_hash: row.reason for row in conn.execute(sa.select(SUPPRESSION))}
        people = conn.execute(sa.select(SUBSCRIBER.c.email, SUBSCRIBER.c.status))
        statuses = {row.email: row.status for row in people}
    return {"events": events, "suppressed": suppressed, "statuses": statuses,
            "deliveries": [(d["subscriber_id"], d["step"], d["status"]) for d in site.harness.deliveries()]}


def numbers(site: Site, step: str = "e1") -> dict[str, int]:
    """A step's numbers as `funnel stats` shows them."""
    with site.harness.db_engine.connect() as conn:
        [found] = [c for c in step_counts(conn, "minimal") if c.step == step]
    return {"sent": found.sent, "delivered": found.delivered, "bounced": found.bounced,
            "complained": found.complained}
