"""The charts' numbers: the date range a form chooses, days or weeks, and the pauses as spans."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from engine.flow.state import Stage, State
from engine.stats import charts
from engine.store import pauses, signups, subscribers
from engine.store.daily import Mark

TODAY = date(2026, 3, 31)


def test_no_dates_choose_the_last_thirty_days_today_included() -> None:
    assert charts.date_range(None, None, TODAY) == (date(2026, 3, 2), TODAY)
    assert charts.date_range("", "", TODAY) == (date(2026, 3, 2), TODAY)
    assert charts.date_range(None, "2026-02-28", TODAY) == (date(2026, 1, 30), date(2026, 2, 28))
    assert charts.date_range(" 2026-03-30 ", None, TODAY) == (date(2026, 3, 30), TODAY)


@pytest.mark.parametrize(
    ("first", "last", "said"),
    [
        (
            "2026-13-01",
            None,
            "'from' is '2026-13-01', which is not a date; write a date as YYYY-MM-DD, like 2026-03-01",
        ),
        (
            "yesterday",
            None,
            "'from' is 'yesterday', which is not a date; write a date as YYYY-MM-DD, like 2026-03-01",
        ),
        (
            None,
            "20260301",
            "'to' is '20260301', which is not a date; write a date as YYYY-MM-DD, like 2026-03-01",
        ),
        (
            "2026-03-09",
            "2026-03-01",
            "'from' (2026-03-09) is after 'to' (2026-03-01): choose a 'from' date on or before the 'to' date",
        ),
        (
            "2020-01-01",
            "2026-03-01",
            "2020-01-01 to 2026-03-01 is 2,252 days; a chart shows at most 1,096 days (three years): "
            "choose a later 'from' date, like 2023-03-02",
        ),
    ],
)
def test_a_range_it_cannot_draw_says_what_to_write(first: str | None, last: str | None, said: str) -> None:
    with pytest.raises(ValueError) as refused:
        charts.date_range(first, last, TODAY)
    assert str(refused.value) == said


def test_a_long_text_is_cut_before_it_is_repeated() -> None:
    with pytest.raises(ValueError) as refused:
        charts.date_range("x" * 10_000, None, TODAY)
    assert len(str(refused.value)) < 200


def test_three_months_are_drawn_by_the_day_and_longer_by_the_week_from_the_first_day(
    db_engine: Engine,
) -> None:
    first = date(2026, 1, 1)
    at = [
        datetime(2026, 1, 1, 12, tzinfo=UTC),
        datetime(2026, 1, 7, 23, tzinfo=UTC),
        datetime(2026, 1, 8, 0, tzinfo=UTC),
        datetime(2026, 4, 2, 9, tzinfo=UTC),
    ]
    with db_engine.begin() as conn:
        for i, moment in enumerate(at):
            sid = subscribers.upsert_subscriber(conn, {"email": f"p{i}@example.com"}, moment)[0]
            signups.enroll(conn, sid, "f", State(Stage.CONFIRMING, moment), moment)
        now = datetime(2026, 5, 1, tzinfo=UTC)
        by_day = charts.activity(conn, "f", first, first + timedelta(days=91), now)
        assert (by_day.unit, len(by_day.starts)) == ("day", 92)
        assert by_day.counts["signups"][:8] == [1, 0, 0, 0, 0, 0, 1, 1]
        assert by_day.total("signups") == 4  # April 2 is the 92nd day
        by_week = charts.activity(conn, "f", first, first + timedelta(days=92), now)
        assert (by_week.unit, len(by_week.starts)) == ("week", 14)
        assert by_week.starts[:2] == [date(2026, 1, 1), date(2026, 1, 8)]  # weeks from the range's first day
        assert by_week.counts["signups"][:2] == [2, 1]
        assert by_week.ends()[-1] == date(2026, 4, 3)  # the last week (two days) is cut at the range's end
        assert by_week.total("signups") == 4


def test_pauses_become_spans_in_the_charts_units() -> None:
    def mark(step: str, action: str, at: datetime) -> Mark:
        return Mark(
            at,
            step,
            action,
            "unsubscribes" if action == "paused" else None,
            "5 of 200 sends (2.5%) over 2%" if action == "paused" else "",
        )

    start = datetime(2026, 3, 1, tzinfo=UTC)
    marks = [
        mark("e1", "paused", start - timedelta(days=3)),  # held into the range
        mark("e1", "resumed", start + timedelta(days=1, hours=12)),
        mark("e2", "paused", start - timedelta(days=9)),  # over before it
        mark("e2", "resumed", start - timedelta(days=8)),
        mark("e2", "paused", start + timedelta(days=3, hours=6)),  # still paused
    ]
    now = start + timedelta(days=30)
    spans = charts._spans(marks, date(2026, 3, 1), date(2026, 3, 7), "day", now)
    assert [(s.step, s.start, s.end) for s in spans] == [("e1", 0.0, 1.5), ("e2", 3.25, 7.0)]
    assert spans[0].detail == (
        "e1 paused 2026-02-26 00:00 UTC (unsubscribes: 5 of 200 sends (2.5%) over 2%), "
        "resumed 2026-03-02 12:00 UTC"
    )
    assert spans[1].detail.endswith(", still paused") and spans[1].resumed_at is None
    weekly = charts._spans(marks, date(2026, 3, 1), date(2026, 6, 1), "week", now)
    assert [(s.step, round(s.start, 4), round(s.end, 4)) for s in weekly] == [
        ("e1", 0.0, round(1.5 / 7, 4)),
        ("e2", round(3.25 / 7, 4), round(30 / 7, 4)),
    ]


def test_an_activity_carries_the_pauses_of_its_funnel_or_its_email(db_engine: Engine) -> None:
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    with db_engine.begin() as conn:
        why = pauses.Breach("complaints", "1 of 500 sends (0.2%) over 0.1%", 500, 1, 0.001)
        pauses.pause(conn, "f", "e1", why, at)
        pauses.pause(conn, "f", "e2", why, at + timedelta(days=1))
        found = charts.activity(conn, "f", date(2026, 3, 1), date(2026, 3, 7), at + timedelta(days=2))
        assert [(s.step, s.start, s.end) for s in found.pauses] == [
            ("e1", 1.375, 3.375),
            ("e2", 2.375, 3.375),
        ]
        one = charts.activity(
            conn, "f", date(2026, 3, 1), date(2026, 3, 7), at + timedelta(days=2), step="e2"
        )
        assert [s.step for s in one.pauses] == ["e2"]
