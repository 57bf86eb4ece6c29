"""The per-day activity the triggers keep equals a recount from the rows, on SQLite and PostgreSQL.

Random histories of every write a chart over time is made of: signups over four days,
confirmations, emails sent (and their send time moved or taken back), opens and clicks
arriving out of time order, several in one INSERT, some deleted (the next becomes the
first), unsubscribes and complaints with and without an email, purchases of this funnel
and of every funnel (before and after the signup), erasures and folds. After each the
kept `daily` tallies and every read (`day_counts`, for the funnel and one email) must
equal counting the rows afresh; a hand-counted history pins what the numbers mean.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection, Engine

from engine.flow.state import Stage, State
from engine.store import daily, erasure, migrate, milestones, pauses, queries, signups, subscribers, tallies
from engine.store.daily_sql import KIND, METRICS
from engine.store.tables import DELIVERY, ENROLLMENT, EVENT, SUBSCRIBER, TALLY

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
DAYS = [date(2026, 3, 2) + timedelta(days=i) for i in range(4)]
Key = tuple[str, str, str, str, str]


def _kept(conn: Connection) -> dict[Key, tuple[int, float, int]]:
    """The daily tallies kept by the triggers, per (funnel, day, metric, step, currency)."""
    return _by_key(r for r in tallies.tally_rows(conn, kinds=(KIND,), by_day=True))


def _counted(conn: Connection, **narrow: Any) -> dict[Key, tuple[int, float, int]]:
    return _by_key(tallies.recount(conn, kinds=(KIND,), **narrow))


def _by_key(rows: Any) -> dict[Key, tuple[int, float, int]]:
    found: dict[Key, list[float]] = {}
    for row in rows:
        total = found.setdefault((row.funnel, row.day, row.k1, row.k2, row.k3), [0, 0.0, 0])
        total[0] += row.n
        total[1] += row.amount
        total[2] += row.priced
    return {k: (int(v[0]), round(v[1], 6), int(v[2])) for k, v in found.items() if v[0] or v[2]}


def _read(conn: Connection, funnel: str, step: str | None = None) -> Counter[tuple[str, str, str]]:
    """`day_counts` over the four days, as (day, metric, currency) -> n."""
    return Counter(
        {
            (c.day.isoformat(), c.metric, c.currency): c.n
            for c in daily.day_counts(conn, funnel, DAYS[0], DAYS[-1], step)
        }
    )


def _expected(
    counted: dict[Key, tuple[int, float, int]], funnel: str, step: str | None = None
) -> Counter[tuple[str, str, str]]:
    found: Counter[tuple[str, str, str]] = Counter()
    for (f, day, metric, s, currency), (n, _, _) in counted.items():
        if f == funnel and (step is None or s == step) and DAYS[0].isoformat() <= day <= DAYS[-1].isoformat():
            found[(day, metric, currency)] += n
    return +found


class History:
    """Random writes of everything the charts count."""

    def __init__(self, conn: Connection, seed: int) -> None:
        self.conn = conn
        self.random = random.Random(seed)
        self.people: list[int] = []

    def moment(self) -> datetime:
        return T0 + timedelta(minutes=self.random.randrange(0, 4 * 24 * 60))

    def event(self, sid: int, kind: str, **fields: Any) -> dict[str, Any]:
        empty = ("external_id", "name", "step", "question", "answer", "product", "amount", "currency")
        return {
            **dict.fromkeys(empty),
            "subscriber_id": sid,
            "funnel": "f",
            "type": kind,
            "at": self.moment(),
            "data": {},
            **fields,
        }

    def step(self) -> None:
        r, conn = self.random, self.conn
        choice = r.random()
        if choice < 0.15 or not self.people:
            at = self.moment()
            sid = subscribers.upsert_subscriber(conn, {"email": f"p{r.randrange(40)}@example.com"}, at)[0]
            signups.enroll(conn, sid, r.choice(["f", "g"]), State(Stage.CONFIRMING, at), at)
            if sid not in self.people:
                self.people.append(sid)
            return
        sid = r.choice(self.people)
        mine = queries.enrollments_of(conn, sid)
        if not mine:
            return
        e = r.choice(mine)
        step = r.choice(["e1", "e2"])
        if choice < 0.25:
            milestones.record_milestones(
                conn,
                [
                    {
                        "enrollment_id": e["id"],
                        "subscriber_id": sid,
                        "funnel": e["funnel"],
                        "at": self.moment(),
                        "stage": r.choice([Stage.MAGNET, Stage.NURTURE]).value,
                    }
                ],
            )
        elif choice < 0.40:
            at = self.moment()
            queries.queue_deliveries(
                conn,
                [
                    {
                        "enrollment_id": e["id"],
                        "subscriber_id": sid,
                        "funnel": e["funnel"],
                        "step": step,
                        "message_id": f"<{e['id']}.{step}@example.com>",
                        "status": "queued",
                        "created_at": at,
                        "updated_at": at,
                        "next_attempt_at": at,
                    }
                ],
            )
            this = sa.update(DELIVERY).where(DELIVERY.c.enrollment_id == e["id"], DELIVERY.c.step == step)
            for _ in range(r.randrange(3)):  # sent, sent again later (a moved time), or taken back
                conn.execute(
                    this.values(
                        status=r.choice(["sending", "sent", "bounced"]),
                        sent_at=r.choice([self.moment(), self.moment(), None]),
                    )
                )
        elif choice < 0.62:
            kind = r.choice(["open", "click", "click"])
            rows = [
                self.event(
                    sid,
                    kind,
                    funnel=r.choice([e["funnel"], e["funnel"], None]),
                    step=r.choice([step, step, None]),
                )
                for _ in range(r.randrange(1, 4))
            ]
            conn.execute(sa.insert(EVENT).values(rows))  # one INSERT, times in any order
        elif choice < 0.70:
            kind = r.choice(["unsubscribe", "complaint"])
            queries.record_event(
                conn,
                sid,
                kind,
                self.moment(),
                funnel=r.choice([e["funnel"], None]),
                step=r.choice([step, None]),
                wake=False,
            )
        elif choice < 0.80:
            queries.record_event(
                conn,
                sid,
                "purchase",
                self.moment(),
                funnel=r.choice(["f", "g", None]),
                wake=False,
                amount=r.choice([None, 10.0, 19.99]),
                currency=r.choice(["USD", "EUR", None]),
            )
        elif choice < 0.86:
            # A click or open taken away (by hand): the next one of its email becomes its first.
            found = conn.execute(
                sa.select(EVENT.c.id).where(
                    EVENT.c.subscriber_id == sid, EVENT.c.type.in_(["open", "click", "purchase"])
                )
            )
            ids = list(found.scalars())
            if ids:
                conn.execute(sa.delete(EVENT).where(EVENT.c.id == r.choice(ids)))
        elif choice < 0.89:
            conn.execute(sa.delete(DELIVERY).where(DELIVERY.c.enrollment_id == e["id"]))
        elif choice < 0.92:
            row = conn.execute(sa.select(SUBSCRIBER.c.email).where(SUBSCRIBER.c.id == sid)).first()
            if row is not None:
                erasure.erase_subscriber(conn, sid, row.email, self.moment())
            self.people.remove(sid)
        elif choice < 0.94:
            conn.execute(sa.delete(ENROLLMENT).where(ENROLLMENT.c.id == e["id"]))  # cascades
        else:
            tallies.fold(conn)


@pytest.mark.parametrize("seed", range(5))
def test_the_kept_days_equal_a_recount_after_any_history(db_engine: Engine, seed: int) -> None:
    with db_engine.connect() as conn, conn.begin():
        history = History(conn, seed)
        for _ in range(400):
            history.step()
        kept, counted = _kept(conn), _counted(conn)
        assert kept == counted
        # The history made every kind of count: the comparison compares something.
        assert {key[2] for key in counted} == set(METRICS)
        for funnel in ("f", "g"):
            assert _read(conn, funnel) == _expected(counted, funnel)
            assert _read(conn, funnel, "e1") == _expected(counted, funnel, "e1")
        # A range narrowed to hours recounts only what happened in them.
        start, end = T0 + timedelta(days=1, hours=5), T0 + timedelta(days=2, hours=7)
        narrowed = _counted(conn, funnel="f", start=start, end=end)
        assert narrowed and {k[1] for k in narrowed} <= {"2026-03-03", "2026-03-04"}
        tallies.fold(conn)
        assert conn.execute(sa.select(sa.func.count()).select_from(TALLY)).scalar_one() == 0
        assert _kept(conn) == counted


def test_each_number_counts_what_happened_that_day(db_engine: Engine) -> None:
    """A history counted by hand: what each metric means, whatever the recount says."""
    day1, day2, day3 = (
        T0 + timedelta(hours=9),
        T0 + timedelta(days=1, hours=9),
        T0 + timedelta(days=2, hours=9),
    )
    with db_engine.begin() as conn:
        ann = subscribers.upsert_subscriber(conn, {"email": "ann@example.com"}, day1)[0]
        bob = subscribers.upsert_subscriber(conn, {"email": "bob@example.com"}, day2)[0]
        a = signups.enroll(conn, ann, "f", State(Stage.CONFIRMING, day1), day1)[0]
        b = signups.enroll(conn, bob, "f", State(Stage.CONFIRMING, day2), day2)[0]
        milestones.record_milestones(
            conn,
            [
                {"enrollment_id": a, "subscriber_id": ann, "funnel": "f", "stage": "magnet", "at": day2},
                {"enrollment_id": a, "subscriber_id": ann, "funnel": "f", "stage": "nurture", "at": day2},
                {"enrollment_id": b, "subscriber_id": bob, "funnel": "f", "stage": "magnet", "at": day2},
            ],
        )
        for eid, sid in ((a, ann), (b, bob)):
            queries.queue_deliveries(
                conn,
                [
                    {
                        "enrollment_id": eid,
                        "subscriber_id": sid,
                        "funnel": "f",
                        "step": "e1",
                        "message_id": f"<{eid}@x>",
                        "status": "queued",
                        "created_at": day1,
                        "updated_at": day1,
                        "next_attempt_at": day1,
                    }
                ],
            )
        # Ann's email goes on day 2 (decided on day 1); Bob's is never sent.
        conn.execute(
            sa.update(DELIVERY).where(DELIVERY.c.enrollment_id == a).values(status="sent", sent_at=day2)
        )
        # Ann clicks on day 3, then a click of day 2 arrives late: her first click is on day 2.
        queries.record_event(conn, ann, "click", day3, funnel="f", step="e1", wake=False)
        queries.record_event(conn, ann, "click", day2, funnel="f", step="e1", wake=False)
        queries.record_event(conn, ann, "open", day3, funnel="f", step="e1", wake=False)
        queries.record_event(conn, ann, "unsubscribe", day3, funnel="f", step="e1", wake=False)
        queries.record_event(conn, bob, "complaint", day3, funnel="f", step=None, wake=False)
        queries.record_event(
            conn, ann, "purchase", day3, funnel=None, wake=False, amount=49.5, currency="EUR"
        )
        queries.record_event(conn, bob, "purchase", day1, funnel="f", wake=False, amount=10.0, currency="EUR")
        counts = {
            (c.day.day, c.metric, c.currency): (c.n, c.amount)
            for c in daily.day_counts(conn, "f", DAYS[0], DAYS[-1])
        }
        assert counts == {
            (2, "signups", ""): (1, 0.0),
            (3, "signups", ""): (1, 0.0),
            (3, "confirmations", ""): (2, 0.0),
            (3, "sent", ""): (1, 0.0),
            (3, "clicked", ""): (1, 0.0),
            (4, "opened", ""): (1, 0.0),
            (4, "unsubscribed", ""): (1, 0.0),
            (4, "complained", ""): (1, 0.0),
            (4, "revenue", "EUR"): (1, 49.5),  # Bob's purchase came before his signup: not a conversion
        }
        e1 = {(c.day.day, c.metric) for c in daily.day_counts(conn, "f", DAYS[0], DAYS[-1], "e1")}
        assert e1 == {(3, "sent"), (3, "clicked"), (4, "opened"), (4, "unsubscribed")}
        # Erasing Ann takes back everything she counted in.
        erasure.erase_subscriber(conn, ann, "ann@example.com", day3)
        left = {(c.day.day, c.metric) for c in daily.day_counts(conn, "f", DAYS[0], DAYS[-1])}
        assert left == {(3, "signups"), (3, "confirmations"), (4, "complained")}
        assert _kept(conn) == _counted(conn)


def test_a_range_reads_only_its_days(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        for i, at in enumerate(T0 + timedelta(days=d, hours=1) for d in range(4)):
            sid = subscribers.upsert_subscriber(conn, {"email": f"p{i}@example.com"}, at)[0]
            signups.enroll(conn, sid, "f", State(Stage.CONFIRMING, at), at)
        tallies.fold(conn)  # half folded, half appended: a read adds both
        sid = subscribers.upsert_subscriber(conn, {"email": "late@example.com"}, T0)[0]
        signups.enroll(conn, sid, "f", State(Stage.CONFIRMING, T0), T0)
        found = daily.day_counts(conn, "f", DAYS[0], DAYS[1])
        assert sorted((c.day.day, c.n) for c in found) == [(2, 2), (3, 1)]
        assert daily.day_counts(conn, "g", DAYS[0], DAYS[-1]) == []


def test_the_marks_are_every_pause_and_resume_before_the_end_oldest_first(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        why = pauses.Breach("unsubscribes", "5 of 100 sends (5.0%) over 2%", 100, 5, 0.02)
        pauses.pause(conn, "f", "e1", why, T0)
        pauses.resume(conn, "f", "e1", "dashboard", T0 + timedelta(days=1))
        pauses.pause(conn, "f", "e2", why, T0 + timedelta(days=2))
        pauses.pause(conn, "g", "e1", why, T0)
        found = daily.marks(conn, "f", T0 + timedelta(days=2))
        assert [(m.step, m.action, m.at) for m in found] == [
            ("e1", "paused", T0),
            ("e1", "resumed", T0 + timedelta(days=1)),
        ]
        assert found[0].detail == why.detail and found[0].metric == "unsubscribes"
        assert [m.step for m in daily.marks(conn, "f", T0 + timedelta(days=3), step="e2")] == ["e2"]


def test_0008_counts_the_days_of_the_list_there_and_keeps_them_from_then_on(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        command.downgrade(migrate._config(conn), "0006")
        # Written by a version before 0008: no trigger counts these days.
        sid = subscribers.upsert_subscriber(conn, {"email": "a@example.com"}, T0)[0]
        signups.enroll(conn, sid, "f", State(Stage.CONFIRMING, T0), T0)
        queries.record_event(conn, sid, "click", T0, funnel="f", step="e1", wake=False)
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(TALLY).where(TALLY.c.kind == KIND)).scalar()
            == 0
        )
    migrate.upgrade(db_engine)
    with db_engine.begin() as conn:
        assert _read(conn, "f") == Counter(
            {("2026-03-02", "signups", ""): 1, ("2026-03-02", "clicked", ""): 1}
        )
        queries.record_event(conn, sid, "unsubscribe", T0, funnel="f", wake=False)  # the triggers count it
        assert _read(conn, "f")[("2026-03-02", "unsubscribed", "")] == 1
        assert tallies.differences(conn) == []
    assert migrate.current_revision(db_engine) == migrate.head_revision()
