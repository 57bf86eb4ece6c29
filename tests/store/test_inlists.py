"""one_of: a batch's ids in a WHERE, the same rows on both databases, one array parameter on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.store import subscribers
from engine.store.inlists import one_of
from engine.store.tables import SUBSCRIBER
from tests.support.databases import statements_run

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_the_rows_of_the_values_given_and_none_for_none(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        ids = [subscribers.upsert_subscriber(conn, {"email": f"p{i}@example.com"}, T0)[0] for i in range(5)]
    ran = statements_run(db_engine)
    with db_engine.connect() as conn:
        def found(values: Iterable[object], column: sa.ColumnElement[Any] = SUBSCRIBER.c.id) -> list[int]:
            statement = sa.select(SUBSCRIBER.c.id).where(one_of(conn, column, values))
            return list(conn.execute(statement.order_by(SUBSCRIBER.c.id)).scalars())

        assert found([ids[3], ids[1], ids[3], 10_000]) == [ids[1], ids[3]]  # repeated and unknown values
        assert found([]) == []
        assert found(iter(ids[:2])) == ids[:2]  # any iterable, read once
        assert found(["p2@example.com", "P4@EXAMPLE.COM"], SUBSCRIBER.c.email_key) == [ids[2]]
    selects = [sql for sql in ran if sql.startswith("SELECT")]
    assert len(selects) == 4
    if db_engine.dialect.name == "postgresql":  # one parameter, whatever the number of values
        assert all("= ANY (%(param_1)s::" in sql and "%(param_2)s" not in sql for sql in selects)
    else:
        assert "IN (?, ?, ?, ?)" in selects[0]
