"""Delays, send windows, frequency caps and ratios as marketers write them."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from engine.sequences.values import format_delay, parse_cap, parse_delay, parse_ratio, parse_window


@pytest.mark.parametrize(("text", "expected"), [
    ("2d", timedelta(days=2)), ("36h", timedelta(hours=36)), ("90m", timedelta(minutes=90)),
    ("1w", timedelta(weeks=1)), ("1d12h", timedelta(days=1, hours=12)), (" 2D ", timedelta(days=2)),
])
def test_delays_parse(text: str, expected: timedelta) -> None:
    assert parse_delay(text) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("2 days", "delay '2 days' does not parse; write a number and a unit (w, d, h, m), "
               "like 2d, 36h, 90m or 1d12h"),
    (2, "delay 2 has no unit; write 2d, 2h or 2m"),
    ("d2", "delay 'd2' does not parse; write a number and a unit (w, d, h, m), "
           "like 2d, 36h, 90m or 1d12h"),
])
def test_bad_delays_say_what_to_write(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_delay(value)
    assert str(caught.value) == message


def test_delays_print_back_in_their_shortest_form() -> None:
    assert format_delay(timedelta(days=1, hours=12)) == "1d12h"
    assert format_delay(timedelta(0)) == "0m"


@pytest.mark.parametrize(("text", "days"), [
    ("weekdays 08:00-11:00", {0, 1, 2, 3, 4}), ("weekends 10:00-12:00", {5, 6}),
    ("daily 09:00-17:30", set(range(7))), ("mon,wed,fri 10:00-12:00", {0, 2, 4}),
    ("fri-mon 10:00-12:00", {4, 5, 6, 0}), ("Tuesday 10:00-12:00", {1}),
])
def test_send_windows_parse(text: str, days: set[int]) -> None:
    assert parse_window(text).days == frozenset(days)


def test_a_window_is_evaluated_in_the_subscribers_zone() -> None:
    window = parse_window("weekdays 08:00-11:00")
    assert window.start == time(8) and window.end == time(11)
    monday_9_budapest = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 09:00 in Budapest (UTC+1)
    assert window.contains(monday_9_budapest, "Europe/Budapest")
    assert not window.contains(monday_9_budapest, "America/New_York")  # 03:00 there
    assert window.next_open(monday_9_budapest, "America/New_York") == datetime(
        2026, 3, 2, 13, 0, tzinfo=UTC)
    friday_noon = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    assert window.next_open(friday_noon, "UTC") == datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def test_a_window_lost_in_a_daylight_saving_gap_opens_the_next_day() -> None:
    # Europe/Budapest skips 02:00-03:00 on 2026-03-29 (a Sunday).
    window = parse_window("daily 02:00-02:59")
    saturday_night = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    opened = window.next_open(saturday_night, "Europe/Budapest")
    assert window.contains(opened, "Europe/Budapest")
    assert opened == datetime(2026, 3, 30, 0, 0, tzinfo=UTC)  # Monday 02:00 CEST


@pytest.mark.parametrize("text", ["weekdays", "weekdays 11:00-08:00", "someday 08:00-09:00",
                                  "daily 25:00-26:00"])
def test_bad_windows_are_rejected_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="; "):
        parse_window(text)


def test_caps_and_ratios() -> None:
    assert (parse_cap("1/day").limit, parse_cap("3 / week").period) == (1, "week")
    assert (parse_ratio("4:1").education, parse_ratio("3:2").sale) == (4, 2)
    for bad in ("0/day", "daily", "1/month"):
        with pytest.raises(ValueError):
            parse_cap(bad)
    for bad in ("4-1", "0:1", "4:0", 4):
        with pytest.raises(ValueError):
            parse_ratio(bad)
