"""Between rows and the interpreter's values: an enrollment row is a State, event rows are Facts."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from engine.flow.state import Done, Event, EventType, Stage, State
from engine.sequences.plan import PathKind, Role


def state_of(row: Mapping[Any, Any]) -> State:
    """The State stored in an enrollment row."""
    return State(
        stage=Stage(row["stage"]),
        since=row["since"],
        segment=row["segment"],
        step=row["step"],
        last_sent_at=row["last_sent_at"],
        deadline=row["deadline"],
        # [step, path, role, skipped], then for a sale deferred by the ratio a fifth, true, and
        # for a broadcast a fifth, false, and a sixth, the stage it went in (Done.during).
        done=tuple(
            _done(entry[0], entry[1], entry[2], bool(entry[3]), len(entry) > 4 and bool(entry[4]),
                  entry[5] if len(entry) > 5 else None)
            for entry in row["done"]
        ),
        reason=row["reason"],
        resume_stage=Stage(row["resume_stage"]) if row["resume_stage"] else None,
        resume_step=row["resume_step"],
    )


# Every enrollment of a funnel has the same few entries (its steps, sent or skipped): 4096
# cover the steps of many funnels. A Done is frozen, so one can stand in every timeline.
@functools.lru_cache(maxsize=4096)
def _done(step: str, path: str, role: str, skipped: bool, deferred: bool, during: str | None) -> Done:
    """A stored timeline entry as a Done, built once: ~1.8 µs an entry built anew, the tick
    reads the whole timeline of every enrollment it claims (20 entries: 38 µs)."""
    return Done(step, PathKind(path), Role(role), skipped, deferred=deferred,
                during=Stage(during) if during is not None else None)


def _stored(done: Done) -> list[Any]:
    """A timeline entry as the `done` column keeps it (state_of reads it back)."""
    entry: list[Any] = [done.step, done.path.value, done.role.value, done.skipped]
    if done.during is not None:
        entry += [done.deferred, done.during.value]
    elif done.deferred:
        entry.append(True)
    return entry


def state_values(state: State) -> dict[str, Any]:
    """The enrollment columns that hold `state`."""
    return {
        "stage": state.stage.value,
        "since": state.since,
        "segment": state.segment,
        "step": state.step,
        "last_sent_at": state.last_sent_at,
        "deadline": state.deadline,
        "done": [_stored(d) for d in state.done],
        "reason": state.reason,
        "resume_stage": state.resume_stage.value if state.resume_stage else None,
        "resume_step": state.resume_step,
    }


def state_changes(row: Mapping[Any, Any], state: State) -> dict[str, Any]:
    """The columns of state_values(state) whose value differs from what enrollment `row` holds.

    The tick writes only these: on SQLite an UPDATE rewrites the entry of every index on a
    column it sets, and fires the triggers on that column, whether or not the value changed
    (a nurture step changes its step, timeline and send time, not its stage or segment:
    13.7 -> 4.2 µs a row of 3,000). A value read back equal (a time in another zone, a
    stored 0 for False) is the same value stored, so leaving it out changes nothing.
    """
    return {column: value for column, value in state_values(state).items() if row[column] != value}


def events_of(rows: Iterable[Mapping[Any, Any]]) -> tuple[Event, ...]:
    """Event rows as Events, each with its funnel (engine.flow.facts picks those a funnel sees)."""
    found = []
    for row in rows:
        try:
            kind = EventType(row["type"])
        except ValueError:  # a type a newer version wrote; this one ignores it
            continue
        found.append(
            Event(
                kind,
                row["at"],
                question=row["question"],
                answer=row["answer"],
                product=row["product"],
                name=row["name"],
                step=row["step"],
                funnel=row["funnel"],
            )
        )
    return tuple(found)


def normalize_email(address: str) -> tuple[str, str]:
    """(address as stored, identity key): the domain is lowercased; the key is all lowercase.

    Local parts are case-sensitive by the RFC but not in practice: two signups that differ
    only in case are one person.
    """
    address = address.strip()
    local, _, domain = address.rpartition("@")
    stored = f"{local}@{domain.lower()}" if local else address
    return stored, stored.lower()


def email_hash(address: str) -> str:
    """The suppression key of an address: SHA-256 of its identity key."""
    return hashlib.sha256(normalize_email(address)[1].encode("utf-8")).hexdigest()
