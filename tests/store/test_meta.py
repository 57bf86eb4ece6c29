"""The meta table keeps the first value written under a key (the clock mark), on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from engine.daemon.wiring import ClockMismatch, daemon_clock
from engine.scheduler.clock import ScaledClock
from engine.store import meta
from engine.store.tables import DELIVERY, ENROLLMENT, META, SUBSCRIBER

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_nothing_is_kept_under_a_new_key(db_engine: Engine) -> None:
    assert meta.read(db_engine, "clock") is None


def test_the_first_value_is_kept_and_a_second_gets_it_back(db_engine: Engine) -> None:
    fast = {"kind": "fast", "scale": 3600.0, "since": NOW.isoformat()}
    assert meta.keep_first(db_engine, "clock", fast, NOW) == fast
    assert meta.keep_first(db_engine, "clock", {"kind": "real"}, NOW) == fast
    assert meta.read(db_engine, "clock") == fast


def test_daemons_starting_together_all_get_the_one_value_kept(db_engine: Engine) -> None:
    values = [{"kind": "fast", "scale": 3600.0, "since": str(i)} for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        kept = list(pool.map(lambda v: meta.keep_first(db_engine, "clock", v, NOW), values))
    assert len({str(k) for k in kept}) == 1
    assert kept[0] == meta.read(db_engine, "clock") and kept[0] in values


def test_a_demo_refuses_an_unmarked_database_that_already_sent_mail(db_engine: Engine) -> None:
    """A database from before clock marks (migration 0004) with mail in it is a real run's: a demo
    must not mark it fast; one without mail (an import before the first demo) may be."""
    with db_engine.begin() as conn:
        person = SUBSCRIBER.insert().values(email="a@example.com", email_key="a@example.com", fields={},
                                            created_at=NOW, updated_at=NOW)
        sid = conn.execute(person).inserted_primary_key[0]
        eid = conn.execute(ENROLLMENT.insert().values(subscriber_id=sid, funnel="f", stage="nurture",
                                                      since=NOW, created_at=NOW, updated_at=NOW,
                                                      done=[])).inserted_primary_key[0]
    assert isinstance(daemon_clock(db_engine, 3600.0), ScaledClock)  # no mail yet: the demo may start
    with db_engine.begin() as conn:
        conn.execute(META.delete())
        conn.execute(DELIVERY.insert().values(enrollment_id=eid, subscriber_id=sid, funnel="f", step="e1",
                                              message_id="<m@x>", created_at=NOW, updated_at=NOW))
    with pytest.raises(ClockMismatch, match="holds mail sent before databases recorded their clock"):
        daemon_clock(db_engine, 3600.0)
    assert meta.read(db_engine, "clock") is None  # nothing marked
    assert daemon_clock(db_engine, 1.0) is not None and meta.read(db_engine, "clock") == {"kind": "real"}
