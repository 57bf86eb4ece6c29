"""Rows into the interpreter's values: event rows become Events, each with its funnel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.flow.state import EventType
from engine.store.rows import events_of

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _row(funnel: str | None, kind: str) -> dict[str, Any]:
    return {"funnel": funnel, "type": kind, "at": AT, "question": None, "answer": None, "product": None,
            "name": None, "step": "x"}


def test_event_rows_keep_their_funnel_and_a_type_a_newer_version_wrote_is_ignored() -> None:
    rows = [_row("a", "answer"), _row(None, "purchase"), _row("b", "newer-kind"), _row("b", "click")]
    seen = [(e.type, e.funnel, e.step) for e in events_of(rows)]
    assert seen == [(EventType.ANSWER, "a", "x"), (EventType.PURCHASE, None, "x"),
                    (EventType.CLICK, "b", "x")]
