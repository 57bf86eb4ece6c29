"""The small languages inside sequence files: delays, send windows, caps and ratios.

Each parser raises ValueError whose text reads `problem; what to write instead`,
so the validator can show it at the value's line and column unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

from engine.sequences.window import DAY_NAMES, FrequencyCap, SendWindow

_DELAY_PART = re.compile(r"(\d+)\s*([wdhm])")
_DELAY = re.compile(r"^(\d+\s*[wdhm]\s*)+$")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}
DELAY_PATTERN = r"^\s*([0-9]+\s*[wdhm]\s*)+$"
WINDOW_PATTERN = r"^\s*\S.*\s[0-2]?[0-9]:[0-5][0-9]\s*-\s*[0-2]?[0-9]:[0-5][0-9]\s*$"
CAP_PATTERN = r"^\s*[0-9]+\s*/\s*(day|week)\s*$"
RATIO_PATTERN = r"^\s*[0-9]+\s*:\s*[0-9]+\s*$"
PERCENT_PATTERN = r"^\s*([0-9]+(\.[0-9]+)?\s*%|off)\s*$"


def parse_delay(value: Any) -> timedelta:
    """'2d', '36h', '90m', '1w', '1d12h' -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("a delay must be a number with a unit; write for example 2d, 36h or 90m")
    if isinstance(value, int):
        raise ValueError(f"delay {value} has no unit; write {value}d, {value}h or {value}m")
    text = value.strip().lower()
    if not _DELAY.match(text):
        raise ValueError(f"delay '{value}' does not parse; "
                         "write a number and a unit (w, d, h, m), like 2d, 36h, 90m or 1d12h")
    total = timedelta()
    for amount, unit in _DELAY_PART.findall(text):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return total


def format_delay(delay: timedelta) -> str:
    """timedelta -> the shortest '1d12h' form."""
    minutes = int(delay.total_seconds() // 60)
    parts = []
    for unit, size in (("d", 1440), ("h", 60), ("m", 1)):
        amount, minutes = divmod(minutes, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0m"


_DAY_GROUPS = {
    "weekdays": range(0, 5),
    "weekends": range(5, 7),
    "daily": range(0, 7),
    "every day": range(0, 7),
}
_WINDOW_EXAMPLE = "write for example 'weekdays 08:00-11:00', 'daily 09:00-17:00' or 'mon,wed,fri 10:00-12:00'"


def parse_window(value: Any) -> SendWindow:
    """'weekdays 08:00-11:00', 'mon-fri 09:00-17:30', 'sat,sun 10:00-12:00' -> SendWindow."""
    if isinstance(value, SendWindow):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a send window is text; {_WINDOW_EXAMPLE}")
    match = re.match(r"^\s*(.*?)\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$", value)
    if not match:
        raise ValueError(f"send window '{value}' does not parse; {_WINDOW_EXAMPLE}")
    days_text, start_text, end_text = match.groups()
    days = _parse_days(days_text.lower().strip() or "daily", value)
    start, end = _parse_clock(start_text, value), _parse_clock(end_text, value)
    if end <= start:
        raise ValueError(f"send window '{value}' ends before it starts; "
                         "the end time must be later on the same day, like 08:00-11:00")
    return SendWindow(frozenset(days), start, end, value.strip())


def _parse_days(text: str, whole: str) -> set[int]:
    if text in _DAY_GROUPS:
        return set(_DAY_GROUPS[text])
    days: set[int] = set()
    for part in re.split(r"\s*,\s*", text):
        ends = [p.strip()[:3] for p in part.split("-")]
        if len(ends) > 2 or any(e not in DAY_NAMES for e in ends):
            raise ValueError(f"send window '{whole}' names an unknown day '{part}'; "
                             "use weekdays, weekends, daily, or mon, tue, wed, thu, fri, sat, sun")
        first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
        days.update(span)
    return days


def _parse_clock(text: str, whole: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours == 24 and minutes == 0:
        return time(23, 59, 59, 999999)
    if hours > 23 or minutes > 59:
        raise ValueError(f"send window '{whole}' has no such time '{text}'; "
                         "use 24-hour times from 00:00 to 24:00")
    return time(hours, minutes)


def parse_cap(value: Any) -> FrequencyCap:
    """'1/day', '3/week' -> FrequencyCap."""
    if isinstance(value, FrequencyCap):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else ""
    match = re.match(r"^(\d+)\s*/\s*(day|week)$", text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"frequency cap '{value}' does not parse; "
                         "write how many marketing emails per day or week, like 1/day or 3/week")
    return FrequencyCap(int(match.group(1)), match.group(2), text)


@dataclass(frozen=True)
class Ratio:
    """`education` education emails for every `sale` sales email."""

    education: int
    sale: int

    @property
    def window(self) -> int:
        """How many consecutive emails the rule looks at."""
        return self.education + self.sale

    def __str__(self) -> str:
        return f"{self.education}:{self.sale}"


def parse_ratio(value: Any) -> Ratio:
    """'4:1' -> Ratio(4, 1)."""
    if isinstance(value, Ratio):
        return value
    match = re.match(r"^\s*(\d+)\s*:\s*(\d+)\s*$", str(value)) if isinstance(value, str) else None
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ValueError(f"ratio '{value}' does not parse; write education:sale as two whole "
                         "numbers of at least 1, like \"4:1\"")
    return Ratio(int(match.group(1)), int(match.group(2)))


def parse_percent(value: Any) -> float | None:
    """'2%', '0.1%' -> 0.02, 0.001; 'off' -> None (that threshold never pauses anything)."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text == "off":
        return None
    match = re.match(r"^(\d+(?:\.\d+)?)\s*%$", text) if text is not None else None
    if not match or float(match.group(1)) > 100:
        shown = f"{value}%" if isinstance(value, (int, float)) and not isinstance(value, bool) else "2%"
        raise ValueError(f"rate '{value}' does not parse; write a percentage like {shown}, "
                         "or off to never pause on it")
    return float(match.group(1)) / 100
