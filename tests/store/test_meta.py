"""The meta table keeps the first value written under a key (the clock mark), on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from engine.store import meta

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
