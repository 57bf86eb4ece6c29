"""A broadcast's audience counted by SQL (engine/store/audience.py) is the one the interpreter's
`matches` (engine/flow/broadcasts.py) picks person by person: random lists, both databases."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.flow.broadcasts import matches
from engine.flow.facts import facts_for
from engine.flow.state import Stage, State
from engine.sequences.plan import Audience
from engine.store import audience, queries, signups, subscribers
from engine.store.rows import events_of, state_of
from engine.store.tables import ENROLLMENT, SUBSCRIBER

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FUNNEL = "f"
STAGES = [
    Stage.CONFIRMING,
    Stage.SURVEY,
    Stage.NURTURE,
    Stage.SALES,
    Stage.SALES_DONE,
    Stage.CUSTOMER,
    Stage.WINBACK,
    Stage.ENDED,
]


def _fill(conn: sa.Connection, rng: random.Random, people: int) -> None:
    for i in range(people):
        joined = NOW - timedelta(days=rng.randint(0, 60), hours=rng.randint(0, 23))
        status = rng.choice(["active"] * 8 + ["unsubscribed", "bounced"])
        sid = subscribers.upsert_subscriber(conn, {"email": f"p{i}@example.com"}, joined)[0]
        conn.execute(sa.update(SUBSCRIBER).where(SUBSCRIBER.c.id == sid).values(status=status))
        for funnel in rng.sample([FUNNEL, "other"], rng.randint(1, 2)):
            state_stage = rng.choice(STAGES)
            segment = rng.choice([None, "one", "two"])
            signups.enroll(conn, sid, funnel, State(state_stage, joined, segment=segment), joined)
        for _ in range(rng.randint(0, 5)):
            kind = rng.choice(["answer", "answer", "purchase", "open", "click", "unsubscribe"])
            at = NOW - timedelta(days=rng.randint(0, 40)) if rng.random() < 0.8 else joined  # ties too
            funnel = rng.choice([FUNNEL, None, "other"])
            fields: dict[str, object] = {}
            if kind == "answer":
                fields = {
                    "question": rng.choice(["level", "goal"]),
                    "answer": rng.choice(["new", "pro", "x"]),
                }
            if kind == "purchase":
                fields = {"product": rng.choice([None, "course", "socks"])}
            queries.record_event(conn, sid, kind, at, funnel=funnel, wake=False, **fields)
        if rng.random() < 0.3:  # two answers in the same second: the later one (by id) is theirs
            at = NOW - timedelta(days=rng.randint(0, 5))
            for answer in rng.sample(["new", "pro", "x"], 2):
                queries.record_event(
                    conn, sid, "answer", at, funnel=FUNNEL, wake=False, question="level", answer=answer
                )
        for tag in rng.sample(["vip", "staff", "press"], rng.randint(0, 2)):
            subscribers.add_tag(conn, sid, tag, joined)


def _audiences(rng: random.Random) -> list[Audience]:
    found = [Audience()]
    for _ in range(25):
        pick = rng.random
        found.append(
            Audience(
                segments=frozenset(rng.sample(["one", "two", "three"], rng.randint(1, 2)))
                if pick() < 0.3
                else None,
                stages=frozenset(s.value for s in rng.sample(STAGES, rng.randint(1, 3)))
                if pick() < 0.3
                else None,
                answers=tuple(
                    (q, frozenset(rng.sample(["new", "pro", "x"], rng.randint(1, 2))))
                    for q in rng.sample(["level", "goal"], rng.randint(0, 2))
                )
                if pick() < 0.4
                else (),
                tags=frozenset(rng.sample(["vip", "staff"], rng.randint(1, 2)))
                if pick() < 0.2
                else frozenset(),
                without_tags=frozenset({"press"}) if pick() < 0.2 else frozenset(),
                bought=rng.choice([frozenset(), frozenset({"course"})]) if pick() < 0.3 else None,
                not_bought=rng.choice([frozenset(), frozenset({"socks"})]) if pick() < 0.3 else None,
                engaged_within=timedelta(days=rng.randint(1, 30)) if pick() < 0.3 else None,
                signed_up_after=NOW - timedelta(days=rng.randint(10, 50)) if pick() < 0.2 else None,
                signed_up_before=NOW - timedelta(days=rng.randint(0, 30)) if pick() < 0.2 else None,
            )
        )
    return found


def _by_python(conn: sa.Connection, chosen: Audience) -> set[int]:
    rows = list(conn.execute(sa.select(ENROLLMENT).where(ENROLLMENT.c.funnel == FUNNEL)).mappings())
    ids = {row["subscriber_id"] for row in rows}
    events = queries.events_by_subscriber(conn, ids)
    tags = subscribers.tags_by_subscriber(conn, ids)
    found = set()
    for row in rows:
        sid = row["subscriber_id"]
        facts = facts_for(
            FUNNEL,
            timezone="UTC",
            status="active",
            magnet=None,
            joined_at=row["created_at"],
            events=events_of(events.get(sid, ())),
            marketing_sent=(),
            paused={},
        )
        if matches(chosen, state_of(row), facts, frozenset(tags.get(sid, ())), row["created_at"], NOW):
            found.add(row["id"])
    return found


def test_the_sql_audience_is_the_interpreters_on_random_lists(db_engine: Engine) -> None:
    rng = random.Random(15)
    with db_engine.begin() as conn:
        _fill(conn, rng, 100)
    with db_engine.connect() as conn:
        for chosen in _audiences(rng):
            by_sql = {
                r.id
                for r in conn.execute(
                    sa.select(ENROLLMENT.c.id)
                    .select_from(ENROLLMENT.join(SUBSCRIBER, SUBSCRIBER.c.id == ENROLLMENT.c.subscriber_id))
                    .where(*audience.conditions(chosen, FUNNEL, NOW))
                )
            }
            assert by_sql == _by_python(conn, chosen), chosen
            ranked = {
                r.id
                for r in conn.execute(  # PostgreSQL's form of the latest-answer condition
                    sa.select(ENROLLMENT.c.id)
                    .select_from(ENROLLMENT.join(SUBSCRIBER, SUBSCRIBER.c.id == ENROLLMENT.c.subscriber_id))
                    .where(*audience.conditions(chosen, FUNNEL, NOW, ranked=True))
                )
            }
            assert ranked == by_sql, chosen
            counted = audience.count(conn, chosen, FUNNEL, NOW)
            assert counted.matching == len(by_sql)
            taken = audience.recipients_after(conn, chosen, FUNNEL, NOW, NOW + timedelta(days=1), 0, 10_000)
            assert len(taken) == counted.taken
            assert {r.id for r in taken} <= by_sql
