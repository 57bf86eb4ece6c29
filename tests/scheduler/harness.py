"""Drive a real Daemon (real database, real renderer) with a frozen clock and a memory transport."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.config import Settings
from engine.daemon.wiring import Daemon, build_daemon
from engine.mail.memory import MemoryTransport
from engine.scheduler.clock import FrozenClock
from engine.scheduler.tick import TickReport
from engine.store import queries
from engine.store.db import make_engine
from engine.store.tables import DELIVERY
from engine.subscribers.leads import Added, Lead, Proof, add_lead

# The link-signing key: at least 32 characters (engine/config.py).
SECRET = "test-secret-0123456789abcdef0123456789"


class Harness:
    """One daemon over `db_url` and `project`, ticking only when told to."""

    def __init__(
        self,
        db_url: str,
        project: Path,
        start: datetime,
        transport: MemoryTransport | None = None,
        busy_timeout_ms: int = 10_000,
        **settings: Any,
    ) -> None:
        self.clock = FrozenClock(start)
        self.transport = transport or MemoryTransport()
        values = {
            "send_rate": 10_000,
            "secret_key": SECRET,
            "reload_settle_seconds": 0,  # the tests save whole files and tick at once
            "base_url": "https://funnel.example",
            **settings,
        }
        self.daemon: Daemon = build_daemon(
            Settings.model_validate(values),
            project,
            clock=self.clock,
            transport=self.transport,
            db_engine=make_engine(db_url, busy_timeout_ms),
        )
        self.db_engine = self.daemon.db_engine

    def close(self) -> None:
        """Release threads and connections."""
        self.daemon.db_executor.shutdown(wait=True)
        self.daemon.web_executor.shutdown(wait=True)
        self.db_engine.dispose()

    def tick(self) -> TickReport:
        """One tick at the clock's time."""
        return asyncio.run(self.daemon.ticker.tick())

    def run_until(self, end: datetime, every: timedelta = timedelta(hours=1)) -> None:
        """Tick every `every` until `end`."""
        while self.clock.now() < end:
            self.tick()
            self.clock.advance(every)

    def add(
        self, email: str, funnel: str = "minimal", answers: Mapping[str, str] | None = None, **values: Any
    ) -> Added:
        """Sign a lead up now."""
        plan = self.daemon.live.current.plans[funnel]
        with self.db_engine.begin() as conn:
            return add_lead(
                conn,
                plan,
                Lead(email=email, answers=answers or {}, **values),
                Proof("signup", form="test"),
                self.clock.now(),
            )

    def event(self, email: str, kind: str, funnel: str | None = None, **fields: Any) -> None:
        """Something happens to a subscriber now."""
        with self.db_engine.begin() as conn:
            subscriber = queries.find_subscriber(conn, email)
            assert subscriber is not None
            queries.record_event(conn, subscriber["id"], kind, self.clock.now(), funnel=funnel, **fields)

    def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery row, in decision order."""
        with self.db_engine.connect() as conn:
            rows = conn.execute(sa.select(DELIVERY).order_by(DELIVERY.c.created_at, DELIVERY.c.id)).mappings()
            return [dict(r) for r in rows]

    def sent_steps(self, email: str | None = None) -> list[str]:
        """Step ids of the messages the transport took, in order."""
        by_id = {d["message_id"]: d["step"] for d in self.deliveries()}
        return [by_id[m.message_id] for m in self.transport.sent if email in (None, m.rcpt_to)]
