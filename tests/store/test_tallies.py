"""The stats tallies the triggers keep equal a full recount, whatever was written, on SQLite and PostgreSQL.

Random histories of every write that changes a funnel's numbers, through the engine's own
store functions and through plain SQL (a trigger must not depend on which path wrote):
signups into two funnels over three days, milestones, segment and source changes, answers
(changed, late, in the same second), purchases (this funnel's, every funnel's, before the
signup, with and without a product, currency or amount), unsubscribes, erasure, a deleted
subscriber, and folds at random moments. After each history the kept tallies, the masks
and every read (`funnel_numbers`, `product_sales`, with and without a `since` inside a
day) must equal what counting the rows afresh gives.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.flow.state import Stage, State
from engine.store import erasure, milestones, queries, signups, subscribers, tallies
from engine.store.funnelstats import funnel_numbers
from engine.store.products import product_sales
from engine.store.status import DeliveryStatus
from engine.store.stepstats import step_counts
from engine.store.tables import DELIVERY, ENROLLMENT, EVENT, SUBSCRIBER, TALLY, TALLY_TOTAL
from engine.store.tally_sql import ACTED

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
STAGES = [Stage.MAGNET, Stage.NURTURE, Stage.SALES, Stage.CUSTOMER, Stage.WINBACK, Stage.SUNSET, Stage.SURVEY]
Key = tuple[str, str, str, str, str, str]


def _summed(rows: Iterable[tallies.TallyRow], by_day: bool = True) -> dict[Any, tuple[int, float, int]]:
    """Rows added up per key (and day), zeros dropped, money rounded: what two counts must share."""
    found: dict[Any, list[float]] = {}
    for row in rows:
        key = (row.kind, row.funnel, row.day if by_day else "", row.k1, row.k2, row.k3, row.k4)
        total = found.setdefault(key, [0, 0.0, 0])
        total[0] += row.n
        total[1] += row.amount
        total[2] += row.priced
    return {k: (int(v[0]), round(v[1], 6), int(v[2])) for k, v in found.items() if v[0] or v[2]}


class History:
    """Random writes of everything a funnel's numbers are made of."""

    def __init__(self, conn: Connection, seed: int) -> None:
        self.conn = conn
        self.random = random.Random(seed)
        self.people: list[int] = []
        self.at = T0

    def moment(self) -> datetime:
        """Any time in the three days (answers and purchases may come before a signup)."""
        return T0 + timedelta(minutes=self.random.randrange(0, 3 * 24 * 60))

    def forget(self, sid: int) -> None:
        self.people = [p for p in self.people if p != sid]

    def step(self) -> None:
        r, conn = self.random, self.conn
        choice = r.random()
        if choice < 0.2 or not self.people:
            at = self.moment()
            address = f"p{r.randrange(60)}@example.com"
            source = r.choice([None, "blog", "ads"])
            sid = subscribers.upsert_subscriber(
                conn, {"email": address, "source": source, "utm_source": r.choice([None, "x"])}, at)[0]
            funnel = r.choice(["f", "g"])
            signups.enroll(conn, sid, funnel, State(Stage.CONFIRMING, at, segment=r.choice([None, "a"])), at)
            if sid not in self.people:
                self.people.append(sid)
            return
        sid = r.choice(self.people)
        mine = queries.enrollments_of(conn, sid)
        if not mine and choice < 0.9:
            return
        if choice < 0.32:
            e = r.choice(mine)
            milestone = {"enrollment_id": e["id"], "subscriber_id": sid, "funnel": e["funnel"],
                         "stage": r.choice(STAGES).value, "at": self.moment()}
            milestones.record_milestones(conn, [milestone])
        elif choice < 0.37:
            e = r.choice(mine)
            conn.execute(sa.update(ENROLLMENT).where(ENROLLMENT.c.id == e["id"])
                         .values(segment=r.choice([None, "a", "b"])))
        elif choice < 0.41:
            source, utm = r.choice([None, "blog", "ads"]), r.choice([None, "x", "y"])
            changed = sa.update(SUBSCRIBER).where(SUBSCRIBER.c.id == sid)
            conn.execute(changed.values(source=source, utm_source=utm))
        elif choice < 0.52:
            at = r.choice([self.moment(), mine[0]["created_at"]])  # the same second as another, now and then
            question, answer = r.choice(["goal", "level", None]), r.choice(["a", "b", "c", None])
            queries.record_event(conn, sid, "answer", at, funnel=r.choice(["f", "g"]), wake=False,
                                 question=question, answer=answer)
        elif choice < 0.62:
            bought = {"product": r.choice(["book", "course", None]),
                      "currency": r.choice(["USD", "EUR", None]),
                      "amount": r.choice([None, 10.0, 19.99, 0.1])}
            queries.record_event(conn, sid, "purchase", self.moment(), funnel=r.choice(["f", "g", None]),
                                 wake=False, **bought)
        elif choice < 0.67:
            queries.record_event(conn, sid, r.choice(["unsubscribe", "click"]), self.moment(),
                                 funnel=r.choice(["f", "g", None]), wake=False)
        elif choice < 0.70:
            row = conn.execute(sa.select(SUBSCRIBER.c.email).where(SUBSCRIBER.c.id == sid)).first()
            if row is not None:
                erasure.erase_subscriber(conn, sid, row.email, self.moment())
            self.forget(sid)
        elif choice < 0.71:
            conn.execute(sa.delete(SUBSCRIBER).where(SUBSCRIBER.c.id == sid))  # the foreign keys cascade
            self.forget(sid)
        elif choice < 0.90:
            # Emails of one step or several, queued in one statement and moved through statuses in
            # one (several rows a statement, as the tick writes them: PostgreSQL's delivery triggers
            # run once a statement), and what their recipients did with them. An event may name a
            # step before its email is queued (e3).
            e = r.choice(mine)
            steps = r.sample(["e1", "e2", "e3"], r.randrange(1, 4))
            at = self.moment()
            queries.queue_deliveries(conn, [{
                "enrollment_id": e["id"], "subscriber_id": sid, "funnel": e["funnel"], "step": step,
                "message_id": f"<{e['id']}.{step}@example.com>", "status": "queued", "created_at": at,
                "updated_at": at, "next_attempt_at": at} for step in steps])
            these = sa.select(DELIVERY.c.id).where(DELIVERY.c.enrollment_id == e["id"],
                                                   DELIVERY.c.step.in_(steps))
            for _ in range(r.randrange(3)):
                moved = sa.update(DELIVERY).where(DELIVERY.c.id.in_(these.scalar_subquery()))
                conn.execute(moved.values(status=r.choice([s.value for s in DeliveryStatus])))
            if r.random() < 0.4:  # each its own outcome, in one statement (queries.record_outcomes)
                conn.execute(sa.update(DELIVERY).where(DELIVERY.c.id.in_(these.scalar_subquery()))
                             .values(status="sending"))
                outcomes = [{"_id": i, "status": r.choice(["sent", "bounced", "failed", "sending"]),
                             "sent_at": r.choice([None, self.moment()]), "updated_at": at}
                            for i in conn.execute(these).scalars()]
                queries.record_outcomes(conn, outcomes)
            if r.random() < 0.6:
                queries.record_event(conn, sid, r.choice(["open", "click", "unsubscribe", "complaint"]),
                                     self.moment(), funnel=r.choice([e["funnel"], e["funnel"], None]),
                                     step=r.choice([*steps, "e3", None]), wake=False)
        elif choice < 0.96:
            # A signup into the other funnel of someone who already answered, bought or left.
            at = self.moment()
            signups.enroll(conn, sid, r.choice(["f", "g"]), State(Stage.CONFIRMING, at), at)
        else:
            tallies.fold(conn)


def _recounted(conn: Connection, **narrow: Any) -> list[tallies.TallyRow]:
    """The tallies counted afresh from the rows, the masks computed again first (then rolled back)."""
    savepoint = conn.begin_nested()
    try:
        tallies.set_reached(conn)
        tallies.set_acted(conn)
        return tallies.recount(conn, **narrow)
    finally:
        savepoint.rollback()


@pytest.mark.parametrize("seed", range(6))
def test_the_kept_tallies_equal_a_recount_after_any_history(db_engine: Engine, seed: int) -> None:
    with db_engine.connect() as conn, conn.begin():
        history = History(conn, seed)
        for _ in range(300):
            history.step()
        masks = dict(conn.execute(sa.select(ENROLLMENT.c.id, ENROLLMENT.c.reached)).all())
        acted = dict(conn.execute(sa.select(DELIVERY.c.id, DELIVERY.c.acted)).all())
        savepoint = conn.begin_nested()
        tallies.set_reached(conn)
        tallies.set_acted(conn)
        assert dict(conn.execute(sa.select(ENROLLMENT.c.id, ENROLLMENT.c.reached)).all()) == masks
        assert dict(conn.execute(sa.select(DELIVERY.c.id, DELIVERY.c.acted)).all()) == acted
        savepoint.rollback()
        # The history reached stages and people acted on mail: the test compares something.
        assert any(masks.values()) and any(acted.values())

        kept = _summed(tallies.tally_rows(conn, by_day=True))
        assert kept == _summed(_recounted(conn))
        assert {key[0] for key in kept} == set(tallies.KINDS)
        enrolled = conn.execute(sa.select(ENROLLMENT.c.funnel).distinct().order_by(ENROLLMENT.c.funnel))
        assert tallies.funnels(conn) == list(enrolled.scalars())

        since = T0 + timedelta(days=1, hours=13, minutes=7)  # inside a day: whole days kept, the rest counted
        assert _summed(tallies.tally_rows(conn, "f", since), by_day=False) == _summed(
            _recounted(conn, funnel="f", start=since), by_day=False)

        def reads() -> tuple[object, ...]:
            return (funnel_numbers(conn), sorted(map(repr, product_sales(conn))),
                    step_counts(conn, since=since))

        before = reads()
        tallies.fold(conn)
        assert conn.execute(sa.select(sa.func.count()).select_from(TALLY)).scalar_one() == 0
        assert reads() == before


def test_folding_sums_the_appended_rows_and_drops_the_keys_that_cancel_out(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        sid = subscribers.upsert_subscriber(conn, {"email": "a@example.com", "source": "blog"}, T0)[0]
        signups.enroll(conn, sid, "f", State(Stage.CONFIRMING, T0), T0)
        eid = queries.enrollments_of(conn, sid)[0]["id"]
        kept = TALLY.c.kind != "daily"  # the day's signup: engine/store/daily_sql.py
        appended = conn.execute(sa.select(TALLY.c.kind, TALLY.c.k4, TALLY.c.n).where(kept)).all()
        assert appended == [("cohort", "0", 1)]
        milestones.record_milestones(conn, [{"enrollment_id": eid, "subscriber_id": sid, "funnel": "f",
                                             "stage": Stage.MAGNET.value, "at": T0}])
        # +1 at mask 0, then -1 at mask 0 and +1 at mask 1; and the day's signup and confirmation
        assert tallies.fold(conn) == 5
        totals = conn.execute(sa.select(TALLY_TOTAL.c.kind, TALLY_TOTAL.c.day, TALLY_TOTAL.c.k2,
                                        TALLY_TOTAL.c.k4, TALLY_TOTAL.c.n)
                              .where(TALLY_TOTAL.c.kind != "daily")).all()
        assert totals == [("cohort", "2026-03-02", "blog", "1", 1)]  # mask 0's row cancelled out: gone
        assert tallies.fold(conn) == 0


def test_events_inserted_several_in_one_statement_are_counted_as_if_one_by_one(db_engine: Engine) -> None:
    """PostgreSQL runs AFTER row triggers once the statement is done: each row then sees the others."""
    with db_engine.connect() as conn, conn.begin():
        sid = subscribers.upsert_subscriber(conn, {"email": "a@example.com"}, T0)[0]
        signups.enroll(conn, sid, "f", State(Stage.CONFIRMING, T0), T0)
        queries.record_event(conn, sid, "answer", T0, funnel="f", wake=False, question="level", answer="new")
        empty = ("external_id", "name", "step", "question", "answer", "product", "amount", "currency")
        base = {**dict.fromkeys(empty), "subscriber_id": sid, "funnel": "f", "data": {}}
        conn.execute(sa.insert(EVENT).values([  # one INSERT of four rows
            {**base, "type": "answer", "at": T0 + timedelta(hours=1), "question": "level", "answer": "pro"},
            {**base, "type": "answer", "at": T0 + timedelta(hours=2), "question": "level", "answer": "racer"},
            {**base, "type": "purchase", "at": T0 + timedelta(hours=3), "product": "book", "amount": 5.0},
            {**base, "type": "purchase", "at": T0 + timedelta(hours=4), "product": "book", "amount": 5.0},
        ]))
        kept = _summed(tallies.tally_rows(conn, by_day=True))
        assert kept == _summed(_recounted(conn))
        assert kept[("answer", "f", "2026-03-02", "level", "racer", "", "")] == (1, 0.0, 0)
        assert kept[("customer", "f", "2026-03-02", "book", "", "", "")] == (1, 0.0, 0)


def test_emails_queued_after_events_that_name_their_step_count_what_was_done_with_them(
    db_engine: Engine,
) -> None:
    """An open or click may name a step before its email exists (an import, a hand-written fix):
    the email's `acted` and its mail tally take it when the email is queued, several in one INSERT."""
    with db_engine.connect() as conn, conn.begin():
        sid = subscribers.upsert_subscriber(conn, {"email": "a@example.com"}, T0)[0]
        eid = signups.enroll(conn, sid, "f", State(Stage.NURTURE, T0), T0)[0]
        queries.record_event(conn, sid, "open", T0, funnel="f", step="e1", wake=False)
        queries.record_event(conn, sid, "click", T0, funnel="f", step="e1", wake=False)
        queries.record_event(conn, sid, "answer", T0, funnel="f", step="e2", wake=False,
                             question="level", answer="new")  # names e2, but no one acted on it
        queries.queue_deliveries(conn, [{
            "enrollment_id": eid, "subscriber_id": sid, "funnel": "f", "step": step,
            "message_id": f"<{step}@example.com>", "status": "queued", "created_at": T0,
            "updated_at": T0, "next_attempt_at": T0} for step in ("e1", "e2", "e3")])
        acted = dict(conn.execute(sa.select(DELIVERY.c.step, DELIVERY.c.acted)).all())
        assert acted == {"e1": ACTED["opened"] | ACTED["clicked"], "e2": 0, "e3": 0}
        kept = _summed(tallies.tally_rows(conn, by_day=True))
        assert kept == _summed(_recounted(conn))
        assert kept[("mail", "f", "2026-03-02", "e1", "pending", "3", "")] == (1, 0.0, 0)
