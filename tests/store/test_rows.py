"""Rows into the interpreter's values: which events a funnel's interpreter sees."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.flow.state import EventType
from engine.store.rows import events_of

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _row(funnel: str | None, kind: str) -> dict[str, Any]:
    return {"funnel": funnel, "type": kind, "at": AT, "question": None, "answer": None, "product": None,
            "name": None, "step": "x"}


def test_a_funnel_sees_its_own_events_every_funnels_events_and_all_opens_and_clicks() -> None:
    rows = [_row("a", "answer"), _row("a", "unsubscribe"), _row("a", "click"), _row("a", "open"),
            _row(None, "purchase"), _row("b", "answer"), _row("b", "newer-kind")]
    seen = [e.type for e in events_of(rows, "b")]
    # Another funnel's answer or unsubscribe is not this one's; a click anywhere shows the
    # person still reads (win-back); a type a newer version wrote is ignored.
    assert seen == [EventType.CLICK, EventType.OPEN, EventType.PURCHASE, EventType.ANSWER]
