"""Rows into the interpreter's values: event rows become Events, each with its funnel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from engine.flow.state import Done, EventType, Stage, State
from engine.sequences.plan import PathKind, Role
from engine.store.rows import events_of, state_changes, state_of, state_values

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _row(funnel: str | None, kind: str) -> dict[str, Any]:
    return {"funnel": funnel, "type": kind, "at": AT, "question": None, "answer": None, "product": None,
            "name": None, "step": "x"}


def test_event_rows_keep_their_funnel_and_a_type_a_newer_version_wrote_is_ignored() -> None:
    rows = [_row("a", "answer"), _row(None, "purchase"), _row("b", "newer-kind"), _row("b", "click")]
    seen = [(e.type, e.funnel, e.step) for e in events_of(rows)]
    assert seen == [(EventType.ANSWER, "a", "x"), (EventType.PURCHASE, None, "x"),
                    (EventType.CLICK, "b", "x")]


def _enrollment(done: list[list[Any]]) -> dict[str, Any]:
    return {"stage": "nurture", "since": AT, "segment": "beginner", "step": None, "last_sent_at": AT,
            "deadline": None, "done": done, "reason": None, "resume_stage": None, "resume_step": None}


def test_a_timeline_read_twice_is_the_same_and_as_built_entry_by_entry() -> None:
    """state_of shares the Done of an entry it saw before: equal to one built anew, every time."""
    done = [["n0", "nurture", "education", False], ["n1", "nurture", "sale", True, True],
            ["n1", "nurture", "sale", False, True], ["b1", "broadcast", "sale", 1],
            ["n2", "nurture", "education", 0, 0]]
    plain = (Done("n0", PathKind.NURTURE, Role.EDUCATION),
             Done("n1", PathKind.NURTURE, Role.SALE, skipped=True, deferred=True),
             Done("n1", PathKind.NURTURE, Role.SALE, deferred=True),
             Done("b1", PathKind.BROADCAST, Role.SALE, skipped=True),
             Done("n2", PathKind.NURTURE, Role.EDUCATION))
    for _ in range(2):
        state = state_of(_enrollment(done))
        assert state.done == plain
        assert [(type(d.skipped), type(d.deferred)) for d in state.done] == [(bool, bool)] * 5
        assert state_values(state)["done"] == [["n0", "nurture", "education", False],
                                               ["n1", "nurture", "sale", True, True],
                                               ["n1", "nurture", "sale", False, True],
                                               ["b1", "broadcast", "sale", True],
                                               ["n2", "nurture", "education", False]]


def test_a_broadcast_keeps_the_stage_it_went_in_and_an_older_entry_reads_without_one() -> None:
    """Done.during is stored as a sixth value (after `deferred`, false for a broadcast); an entry
    written before it reads back with None, which the ratio counts in every path's window."""
    went = (Done("b1", PathKind.BROADCAST, Role.SALE, during=Stage.NURTURE),
            Done("b2", PathKind.BROADCAST, Role.EDUCATION, skipped=True, during=Stage.CUSTOMER),
            Done("b0", PathKind.BROADCAST, Role.SALE))
    state = State(stage=Stage.CUSTOMER, since=AT, segment="beginner", done=went)
    stored = state_values(state)["done"]
    assert stored == [["b1", "broadcast", "sale", False, False, "nurture"],
                      ["b2", "broadcast", "education", True, False, "customer"],
                      ["b0", "broadcast", "sale", False]]
    assert state_of(_enrollment(stored)).done == went


def test_an_unknown_path_or_role_in_a_timeline_is_refused() -> None:
    for entry in (["n0", "nowhere", "education", False], ["n0", "nurture", "gossip", False]):
        with pytest.raises(ValueError):
            state_of(_enrollment([entry]))


def test_the_tick_writes_only_the_state_columns_that_changed() -> None:
    before = State(Stage.NURTURE, AT, segment="pro", step="n1", last_sent_at=AT,
                   done=(Done("n1", PathKind.NURTURE, Role.EDUCATION),))
    # As read back from the store: the same instant in another zone is the same value.
    row = {**state_values(before), "since": AT.astimezone(timezone(timedelta(hours=2)))}
    sent = State(Stage.NURTURE, AT, segment="pro", step="n2", last_sent_at=AT + timedelta(days=2),
                 done=(*before.done, Done("n2", PathKind.NURTURE, Role.EDUCATION)))
    assert state_changes(row, sent) == {"step": "n2", "last_sent_at": AT + timedelta(days=2),
                                        "done": state_values(sent)["done"]}
    moved = State(Stage.SALES, AT + timedelta(days=3), segment="pro", step="s1", done=sent.done)
    assert set(state_changes(row, moved)) == {"stage", "since", "step", "last_sent_at", "done"}
    assert state_changes(row, before) == {}
