"""Adding leads one at a time and many at once: the same rows either way, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.project.folder import Project
from engine.sequences.plan import Plan
from engine.store import queries
from engine.store.tables import CONSENT, ENROLLMENT, EVENT, SUBSCRIBER
from engine.subscribers.leads import Lead, Proof, add_lead, add_new_leads
from tests.support.project import minimal_project

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
FORM = Proof("signup", form="footer", ip="203.0.113.9", user_agent="UA", wording="Send me the guide")


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return Project(minimal_project(tmp_path / "p")).plan("minimal")


def _snapshot(db_engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    with db_engine.connect() as conn:
        return {
            "subscriber": [tuple(r) for r in conn.execute(sa.select(
                SUBSCRIBER.c.email, SUBSCRIBER.c.name, SUBSCRIBER.c.locale, SUBSCRIBER.c.timezone,
                SUBSCRIBER.c.status, SUBSCRIBER.c.fields, SUBSCRIBER.c.utm_source)
                .order_by(SUBSCRIBER.c.id))],
            "enrollment": [tuple(r) for r in conn.execute(sa.select(
                ENROLLMENT.c.funnel, ENROLLMENT.c.stage, ENROLLMENT.c.magnet, ENROLLMENT.c.next_run_at)
                .order_by(ENROLLMENT.c.id))],
            "consent": [tuple(r) for r in conn.execute(sa.select(
                CONSENT.c.kind, CONSENT.c.form, CONSENT.c.ip, CONSENT.c.wording).order_by(CONSENT.c.id))],
            "event": [tuple(r) for r in conn.execute(sa.select(
                EVENT.c.type, EVENT.c.question, EVENT.c.answer).order_by(EVENT.c.id))],
        }


LEADS = [
    Lead("Ann@Example.com", name="Ann", timezone="Europe/Budapest", utm={"utm_source": "ads"},
         fields={"shoe": "42"}, answers={"level": "pro"}),
    Lead("bo@example.com"),
    Lead("ANN@example.com", name="Mallory"),  # the same person again in the same batch
    Lead("gone@example.com"),  # suppressed: nothing written
]


def test_many_at_once_write_what_one_at_a_time_writes(db_url: str, plan: Plan, tmp_path: Path) -> None:
    one = sa.create_engine(db_url)
    with one.begin() as conn:
        queries.suppress(conn, "gone@example.com", "complained", NOW)
        singly = [add_new_leads(conn, [(plan, lead, FORM)], NOW)[0] for lead in LEADS]
    expected = _snapshot(one)
    with one.begin() as conn:  # start again, and add them in one call
        for table in (EVENT, CONSENT, ENROLLMENT, SUBSCRIBER):
            conn.execute(sa.delete(table))
    with one.begin() as conn:
        together = add_new_leads(conn, [(plan, lead, FORM) for lead in LEADS], NOW)
    assert _snapshot(one) == expected
    assert [(a.new_subscriber, a.new_enrollment) for a in together] == [
        (a.new_subscriber, a.new_enrollment) for a in singly
    ] == [(True, True), (True, True), (False, False), (False, False)]
    assert together[3].subscriber_id is None
    assert together[0].subscriber_id == together[2].subscriber_id
    one.dispose()


def test_a_known_subscriber_keeps_their_details(db_engine: Engine, plan: Plan) -> None:
    with db_engine.begin() as conn:
        add_lead(conn, plan, Lead("ann@example.com", name="Ann", fields={"a": "1"}), FORM, NOW)
    with db_engine.begin() as conn:
        eve = Lead("ann@example.com", name="Eve", fields={"b": "2"})
        again = add_new_leads(conn, [(plan, eve, FORM)], NOW)
    assert (again[0].new_subscriber, again[0].new_enrollment) == (False, False)
    snapshot = _snapshot(db_engine)
    assert [(s[1], s[5]) for s in snapshot["subscriber"]] == [("Ann", {"a": "1"})]
    assert len(snapshot["consent"]) == 2  # every signup keeps its proof
