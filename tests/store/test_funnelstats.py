"""Funnel stage counts on hand-made rows, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engine.flow.state import Stage, State
from engine.store import queries, signups, subscribers
from engine.store.funnelstats import (
    AnswerCount,
    StageCounts,
    cohort_groups,
    funnel_numbers,
    latest_answers,
)
from engine.store.tables import MILESTONE

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass
class Rows:
    """Writes subscribers, enrollments, milestones and events as a test needs them."""

    conn: Connection

    def person(
        self,
        address: str,
        funnel: str = "f",
        at: datetime = T0,
        segment: str | None = None,
        stages: Iterable[Stage] = (),
        **subscriber: object,
    ) -> tuple[int, int]:
        """(subscriber, enrollment): someone who signed up to `funnel` at `at` and reached `stages`."""
        sid = subscribers.upsert_subscriber(self.conn, {"email": address, **subscriber}, at)[0]
        eid = signups.enroll(self.conn, sid, funnel, State(Stage.CONFIRMING, at, segment=segment), at)[0]
        for stage in stages:
            self.conn.execute(sa.insert(MILESTONE).values(enrollment_id=eid, subscriber_id=sid, funnel=funnel,
                                                          stage=stage.value, at=at))
        return sid, eid

    def event(self, subscriber: int, kind: str, at: datetime = T0, funnel: str | None = "f",
              **values: object) -> None:
        """An event of `subscriber`."""
        queries.record_event(self.conn, subscriber, kind, at, funnel=funnel, wake=False, **values)


CONFIRMED = (Stage.CONFIRMING, Stage.MAGNET)
NURTURED = (*CONFIRMED, Stage.SURVEY, Stage.ANSWERING, Stage.NURTURE)
SOLD_TO = (*NURTURED, Stage.SALES)


@pytest.fixture
def rows(db_engine: Engine) -> Iterable[Rows]:
    with db_engine.begin() as conn:
        yield Rows(conn)


def test_each_stage_counts_the_enrollments_whose_milestones_reached_it(rows: Rows) -> None:
    rows.person("a@example.com", stages=(Stage.CONFIRMING,))
    rows.person("b@example.com", stages=CONFIRMED)
    rows.person("c@example.com", segment="one", stages=NURTURED)
    # Now in sunset (its enrollment's stage is not what counts): it still reached nurture, sales, customer.
    later = (*SOLD_TO, Stage.CUSTOMER, Stage.WINBACK, Stage.SUNSET)
    rows.person("d@example.com", segment="one", stages=later)
    rows.person("e@example.com", segment="two", stages=(*SOLD_TO, Stage.SALES_DONE, Stage.WINBACK))
    rows.person("x@example.com", funnel="other", stages=SOLD_TO)  # another funnel: not counted in f
    numbers = funnel_numbers(rows.conn, "f")
    assert list(numbers) == ["f"]
    assert numbers["f"].totals == StageCounts(signed_up=5, confirmed=4, nurture=3, sales=2, customers=1,
                                              winback=2, sunset=1)
    assert numbers["f"].segments == {
        None: StageCounts(signed_up=2, confirmed=1),
        "one": StageCounts(signed_up=2, confirmed=2, nurture=2, sales=1, customers=1, winback=1, sunset=1),
        "two": StageCounts(signed_up=1, confirmed=1, nurture=1, sales=1, winback=1),
    }
    both = funnel_numbers(rows.conn)
    assert sorted(both) == ["f", "other"]
    assert both["other"].totals == StageCounts(signed_up=1, confirmed=1, nurture=1, sales=1)


def test_conversion_is_the_share_of_the_stage_it_is_reached_from_and_none_over_a_zero() -> None:
    counts = StageCounts(signed_up=8, confirmed=6, answered=3, nurture=0, sales=0, purchased=0, customers=0)
    assert counts.conversions() == [
        ("signed_up", 8, None), ("confirmed", 6, 0.75), ("answered", 3, 0.5), ("nurture", 0, 0.0),
        ("sales", 0, None), ("purchased", 0, None), ("customers", 0, None),
    ]
    assert StageCounts().conversions()[1] == ("confirmed", 0, None)
    # Answering is optional and buying can come before sales: nurture counts from confirmed,
    # purchases from nurture, so no conversion passes 100%.
    skipped = StageCounts(signed_up=10, confirmed=8, answered=4, nurture=8, sales=2, purchased=4, customers=4)
    assert [rate for _, _, rate in skipped.conversions()] == [None, 0.8, 0.5, 1.0, 0.25, 0.5, 1.0]


def test_since_keeps_only_the_signups_of_the_cohort(rows: Rows) -> None:
    early, _ = rows.person("early@example.com", at=T0, stages=SOLD_TO)
    late, _ = rows.person("late@example.com", at=T0 + 5 * DAY, stages=CONFIRMED)
    rows.person("edge@example.com", at=T0 + 2 * DAY)
    # The early one's answer and purchase happen inside the window; they are not of the cohort.
    rows.event(early, "answer", T0 + 6 * DAY, question="level", answer="new")
    rows.event(early, "purchase", T0 + 6 * DAY, funnel=None, amount=10.0, currency="EUR")
    rows.event(late, "answer", T0 + 6 * DAY, question="level", answer="pro")
    numbers = funnel_numbers(rows.conn, since=T0 + 2 * DAY)["f"]
    assert numbers.totals == StageCounts(signed_up=2, confirmed=1, answered=1)
    assert (numbers.revenue, numbers.purchases) == ({}, 0)
    assert numbers.answers == [AnswerCount("f", "level", "pro", 1)]
    assert funnel_numbers(rows.conn, since=T0 + 6 * DAY) == {}


def test_answers_count_each_persons_latest_answer_per_question(rows: Rows) -> None:
    ann, _ = rows.person("ann@example.com")
    bob, _ = rows.person("bob@example.com")
    cy, _ = rows.person("cy@example.com")
    rows.person("dan@example.com")  # never answered
    rows.event(ann, "answer", T0, question="level", answer="new")
    rows.event(ann, "answer", T0 + DAY, question="level", answer="pro")  # changed her mind
    rows.event(ann, "answer", T0 + DAY, question="goal", answer="finish")
    rows.event(bob, "answer", T0 + DAY, question="level", answer="new")
    rows.event(bob, "answer", T0 + DAY, question="level", answer="new")  # the same answer twice: one person
    rows.event(cy, "answer", T0, question="level", answer="pro", funnel="other")  # another funnel's survey
    assert latest_answers(rows.conn, "f") == [
        AnswerCount("f", "goal", "finish", 1), AnswerCount("f", "level", "new", 1),
        AnswerCount("f", "level", "pro", 1),
    ]
    assert funnel_numbers(rows.conn, "f")["f"].totals.answered == 2


def test_answers_in_the_same_second_are_told_apart_by_their_order(rows: Rows) -> None:
    ann, _ = rows.person("ann@example.com")
    rows.event(ann, "answer", T0, question="level", answer="new")
    rows.event(ann, "answer", T0, question="level", answer="pro")
    assert latest_answers(rows.conn) == [AnswerCount("f", "level", "pro", 1)]


def test_purchases_count_after_the_signup_for_this_funnel_or_every_funnel(rows: Rows) -> None:
    ann, _ = rows.person("ann@example.com", at=T0, segment="one", stages=SOLD_TO, source="form-a")
    bob, _ = rows.person("bob@example.com", at=T0, segment="two", stages=SOLD_TO, source="form-b",
                         utm_source="news")
    cy, _ = rows.person("cy@example.com", at=T0 + 3 * DAY, source="form-a")
    rows.person("ann@example.com", funnel="other", at=T0)
    rows.event(ann, "purchase", T0 + DAY, funnel=None, amount=49.5, currency="EUR", product="course")
    rows.event(ann, "purchase", T0 + 2 * DAY, funnel=None, amount=10.25, currency="EUR", product="book")
    rows.event(ann, "purchase", T0 + 2 * DAY, funnel=None, amount=20.0, currency="USD")
    rows.event(bob, "purchase", T0 + DAY, funnel="f", amount=0.1, currency=None)
    rows.event(bob, "purchase", T0 + DAY, funnel="f", amount=0.2, currency=None)
    rows.event(bob, "purchase", T0 + DAY, funnel="other", amount=99.0, currency="EUR")  # another funnel's
    rows.event(cy, "purchase", T0 + DAY, funnel=None, amount=30.0, currency="EUR")  # before signing up
    rows.event(cy, "purchase", T0 + 4 * DAY, funnel=None, amount=None, currency=None)  # no amount given
    f = funnel_numbers(rows.conn, "f")["f"]
    assert (f.totals.signed_up, f.totals.purchased, f.purchases) == (3, 3, 6)
    assert f.revenue == {"EUR": 59.75, "USD": 20.0, "": 0.3}
    assert f.revenue_per_subscriber() == {"EUR": round(59.75 / 3, 6), "USD": round(20.0 / 3, 6), "": 0.1}
    assert {key: (s.counts.signed_up, s.counts.purchased, s.revenue) for key, s in f.sources.items()} == {
        ("form-a", None): (2, 2, {"EUR": 59.75, "USD": 20.0}),
        ("form-b", "news"): (1, 1, {"": 0.3}),
    }
    assert {k: v.purchased for k, v in f.segments.items()} == {"one": 1, "two": 1, None: 1}
    other = funnel_numbers(rows.conn, "other")["other"]
    assert (other.totals.purchased, other.purchases, other.revenue) == (1, 3, {"EUR": 59.75, "USD": 20.0})


def test_unsubscribed_counts_the_enrollments_that_left_this_funnel(rows: Rows) -> None:
    ann, _ = rows.person("ann@example.com")
    bob, _ = rows.person("bob@example.com")
    rows.person("bob@example.com", funnel="other")
    rows.event(ann, "unsubscribe", T0 + DAY)
    rows.event(ann, "unsubscribe", T0 + 2 * DAY)  # twice: one enrollment
    rows.event(bob, "unsubscribe", T0 + DAY, funnel="other")
    numbers = funnel_numbers(rows.conn)
    assert (numbers["f"].totals.unsubscribed, numbers["other"].totals.unsubscribed) == (1, 1)


def test_a_funnel_with_no_enrollments_has_no_groups(rows: Rows) -> None:
    assert cohort_groups(rows.conn, "nothing") == []
    assert funnel_numbers(rows.conn) == {}


def test_the_counts_equal_plain_count_queries_on_many_rows(rows: Rows) -> None:
    """Generated rows: every count equals a COUNT written independently over the same tables."""
    stages = [*SOLD_TO, Stage.CUSTOMER]
    for i in range(60):
        reached = stages[: i % (len(stages) + 1)]
        sid, _ = rows.person(f"p{i}@example.com", at=T0 + (i % 7) * DAY, segment=("a", "b", None)[i % 3],
                             stages=reached, source=("x", "y")[i % 2])
        if i % 4 == 0:
            rows.event(sid, "purchase", T0 + 8 * DAY, funnel=None, amount=float(i), currency="EUR")
        if i % 5 == 0:
            rows.event(sid, "answer", T0 + 8 * DAY, question="q", answer=str(i % 2))
    since = T0 + 3 * DAY
    numbers = funnel_numbers(rows.conn, "f", since)["f"]

    def scalar(sql: str) -> float:
        return float(rows.conn.execute(sa.text(sql), {"since": since}).scalar_one())

    cohort = "FROM enrollment e WHERE e.created_at >= :since"
    reached = "FROM enrollment e JOIN milestone m ON m.enrollment_id = e.id WHERE e.created_at >= :since"
    did = "FROM enrollment e JOIN event v ON v.subscriber_id = e.subscriber_id WHERE e.created_at >= :since"
    assert numbers.totals.signed_up == scalar(f"SELECT COUNT(*) {cohort}")
    for name, stage in (("confirmed", "magnet"), ("nurture", "nurture"), ("sales", "sales"),
                        ("customers", "customer")):
        expected = scalar(f"SELECT COUNT(DISTINCT m.enrollment_id) {reached} AND m.stage = '{stage}'")
        assert getattr(numbers.totals, name) == expected, name
    bought = f"{did} AND v.type = 'purchase' AND v.at >= e.created_at"
    assert numbers.totals.purchased == scalar(f"SELECT COUNT(DISTINCT e.subscriber_id) {bought}")
    assert numbers.revenue["EUR"] == pytest.approx(scalar(f"SELECT SUM(v.amount) {bought}"))
    assert numbers.purchases == scalar(f"SELECT COUNT(*) {bought}")
    assert numbers.totals.answered == scalar(f"SELECT COUNT(DISTINCT e.id) {did} AND v.type = 'answer'")
    assert numbers.totals.signed_up > numbers.totals.confirmed > numbers.totals.customers > 0
