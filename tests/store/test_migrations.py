"""Migrations on filled databases: 0002 down and up (milestones backfilled), 0003 to 0009 down and up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from engine.flow.state import Stage, State
from engine.store import daily, migrate, queries, signups, subscribers
from engine.store.funnelstats import funnel_numbers
from engine.store.releases import record_release
from engine.store.stepstats import step_counts
from engine.store.tables import DELIVERY, MILESTONE, RELEASE, UtcDateTime

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_ENROLLMENT = sa.table(
    "enrollment", sa.column("id"), sa.column("subscriber_id"), sa.column("funnel"), sa.column("stage"),
    sa.column("since", UtcDateTime()), sa.column("done", sa.JSON()), sa.column("created_at", UtcDateTime()),
    sa.column("updated_at", UtcDateTime()),
)
_SUBSCRIBER = sa.table(
    "subscriber", sa.column("id"), sa.column("email"), sa.column("email_key"), sa.column("name"),
    sa.column("locale"), sa.column("timezone"), sa.column("status"), sa.column("fields", sa.JSON()),
    sa.column("created_at", UtcDateTime()), sa.column("updated_at", UtcDateTime()),
)


def test_0002_backfills_milestones_from_the_stage_and_the_emails_sent(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        command.downgrade(migrate._config(conn), "0001")
    stages = {  # enrollment id -> (stage now, paths of the emails it was sent)
        1: ("confirming", []),
        2: ("nurture", ["confirm", "magnet", "nurture"]),
        3: ("ended", ["confirm", "magnet", "survey", "nurture", "nurture", "sales"]),  # unsubscribed in sales
        4: ("customer", ["magnet", "nurture", "sales", "customer"]),
        5: ("ended", []),  # bounced at the confirmation
    }
    with db_engine.begin() as conn:
        for sid, (stage, paths) in stages.items():
            conn.execute(_SUBSCRIBER.insert().values(
                id=sid, email=f"p{sid}@example.com", email_key=f"p{sid}@example.com", name="", locale="en",
                timezone="UTC", status="active", fields={}, created_at=AT, updated_at=AT))
            conn.execute(_ENROLLMENT.insert().values(
                id=sid, subscriber_id=sid, funnel="f", stage=stage, since=AT, created_at=AT, updated_at=AT,
                done=[[f"s{i}", path, "education", False] for i, path in enumerate(paths)]))
    migrate.upgrade(db_engine)
    with db_engine.connect() as conn:
        found: dict[int, set[str]] = {}
        for enrollment, stage, at in conn.execute(sa.select(MILESTONE.c.enrollment_id, MILESTONE.c.stage,
                                                            MILESTONE.c.at)):
            found.setdefault(enrollment, set()).add(stage)
            assert at == AT
    # Nurture comes after the survey stage (even when the form answered it): it was reached.
    assert found == {
        2: {"magnet", "survey", "nurture"},
        3: {"magnet", "survey", "nurture", "sales"},
        4: {"magnet", "survey", "nurture", "sales", "customer"},
    }


def test_0003_adds_the_release_table_and_delivery_release_and_takes_them_away(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        command.downgrade(migrate._config(conn), "0002")
    inspector = sa.inspect(db_engine)
    assert "release" not in inspector.get_table_names()
    assert "release" not in {c["name"] for c in inspector.get_columns("delivery")}
    migrate.upgrade(db_engine)
    inspector = sa.inspect(db_engine)
    assert {c["name"] for c in inspector.get_columns("release")} == {"id", "hash", "went_live_at", "summary"}
    assert "release" in {c["name"] for c in inspector.get_columns("delivery")}
    with db_engine.begin() as conn:
        record_release(conn, "abcdef012345", "abcdef012345" + "0" * 52, AT, {"emails_added": ["f/e1"]})
        row = conn.execute(sa.select(RELEASE)).mappings().one()
    assert (row["went_live_at"], row["summary"]) == (AT, {"emails_added": ["f/e1"]})
    with db_engine.begin() as conn:  # live again later (an edit undone): one row, its new time
        record_release(conn, "abcdef012345", "abcdef012345" + "0" * 52, AT + timedelta(hours=1), {})
        row = conn.execute(sa.select(RELEASE)).mappings().one()
    assert (row["went_live_at"], row["summary"]) == (AT + timedelta(hours=1), {})


def test_0004_adds_given_names_meta_and_dashboard_sessions_and_takes_them_away(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        command.downgrade(migrate._config(conn), "0003")
    inspector = sa.inspect(db_engine)
    assert {"meta", "dashboard_session"}.isdisjoint(inspector.get_table_names())
    assert "first_name" not in {c["name"] for c in inspector.get_columns("subscriber")}
    migrate.upgrade(db_engine)
    inspector = sa.inspect(db_engine)
    assert {"first_name", "last_name"} <= {c["name"] for c in inspector.get_columns("subscriber")}
    assert {c["name"] for c in inspector.get_columns("meta")} == {"key", "value", "updated_at"}
    assert {c["name"] for c in inspector.get_columns("dashboard_session")} == {
        "id", "created_at", "expires_at", "revoked_at"}
    assert migrate.current_revision(db_engine) == migrate.head_revision()


def test_0005_counts_the_tallies_of_the_list_there_and_keeps_them_from_then_on(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        sid = subscribers.upsert_subscriber(conn, {"email": "a@example.com", "source": "blog"}, AT)[0]
        eid = signups.enroll(conn, sid, "f", State(Stage.CONFIRMING, AT, segment="pro"), AT)[0]
        command.downgrade(migrate._config(conn), "0004")
        # Written by a version before 0005: no trigger counts these.
        conn.execute(sa.insert(MILESTONE).values(enrollment_id=eid, subscriber_id=sid, funnel="f",
                                                 stage="nurture", at=AT))
        queries.record_event(conn, sid, "purchase", AT, funnel="f", wake=False, amount=9.5, currency="EUR")
    assert "tally" not in sa.inspect(db_engine).get_table_names()
    migrate.upgrade(db_engine)
    with db_engine.begin() as conn:
        counts = funnel_numbers(conn, "f")["f"]
        assert (counts.totals.signed_up, counts.totals.nurture, counts.totals.purchased) == (1, 1, 1)
        assert counts.revenue == {"EUR": 9.5}
        queries.record_event(conn, sid, "unsubscribe", AT, funnel="f", wake=False)  # the triggers count it
        assert funnel_numbers(conn, "f")["f"].totals.unsubscribed == 1
    assert migrate.current_revision(db_engine) == migrate.head_revision()


def test_0006_adds_the_broadcast_tables_and_delivery_variant_and_takes_them_away(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        command.downgrade(migrate._config(conn), "0005")
    inspector = sa.inspect(db_engine)
    assert {"broadcast", "broadcast_recipient"}.isdisjoint(inspector.get_table_names())
    assert "variant" not in {c["name"] for c in inspector.get_columns("delivery")}
    migrate.upgrade(db_engine)
    inspector = sa.inspect(db_engine)
    assert {"broadcast", "broadcast_recipient"} <= set(inspector.get_table_names())
    assert "variant" in {c["name"] for c in inspector.get_columns("delivery")}
    assert {i["name"] for i in inspector.get_indexes("broadcast_recipient")} >= {
        "ix_broadcast_recipient_enrollment", "ix_broadcast_recipient_broadcast_status"}
    assert migrate.current_revision(db_engine) == migrate.head_revision()


def test_0007_adds_the_index_of_the_funnel_map_and_takes_it_away(db_engine: Engine) -> None:
    def indexes() -> set[str]:
        return {i["name"] for i in sa.inspect(db_engine).get_indexes("enrollment") if i["name"]}

    assert "ix_enrollment_position" in indexes()
    with db_engine.begin() as conn:
        command.downgrade(migrate._config(conn), "0006")
    assert "ix_enrollment_position" not in indexes()
    assert "ix_enrollment_audience" in indexes()
    migrate.upgrade(db_engine)
    assert "ix_enrollment_position" in indexes()
    assert migrate.current_revision(db_engine) == migrate.head_revision()


def _delivery_triggers(conn: sa.Connection) -> dict[str, str]:
    """PostgreSQL's triggers on delivery: name -> 'row' or 'statement' (pg_trigger.tgtype's bit 0)."""
    found = conn.exec_driver_sql(
        "SELECT tgname, tgtype & 1 FROM pg_trigger WHERE tgrelid = 'delivery'::regclass AND NOT tgisinternal")
    return {name: "row" if per_row else "statement" for name, per_row in found}


def test_0009_counts_mail_once_a_statement_on_postgresql_and_the_same_before_and_after(
    db_engine: Engine,
) -> None:
    names = {"tally_delivery_insert", "tally_delivery_update", "tally_delivery_delete",
             "daily_delivery_insert", "daily_delivery_update", "daily_delivery_delete"}

    def queue_and_send(conn: sa.Connection, enrollment: int, subscriber: int, steps: list[str]) -> None:
        rows = [{"enrollment_id": enrollment, "subscriber_id": subscriber, "funnel": "f", "step": step,
                 "message_id": f"<{step}@example.com>", "status": "queued", "created_at": AT,
                 "updated_at": AT, "next_attempt_at": AT} for step in steps]
        queries.queue_deliveries(conn, rows)
        sent = sa.update(DELIVERY).where(DELIVERY.c.step.in_(steps)).values(status="sent", sent_at=AT)
        conn.execute(sent)

    with db_engine.begin() as conn:
        sid = subscribers.upsert_subscriber(conn, {"email": "a@example.com"}, AT)[0]
        eid = signups.enroll(conn, sid, "f", State(Stage.NURTURE, AT), AT)[0]
        queue_and_send(conn, eid, sid, ["e1", "e2"])
        postgresql = conn.dialect.name == "postgresql"
        if postgresql:
            assert _delivery_triggers(conn) == dict.fromkeys(names, "statement")
        command.downgrade(migrate._config(conn), "0008")
        if postgresql:
            assert _delivery_triggers(conn) == dict.fromkeys(names, "row")
        queue_and_send(conn, eid, sid, ["e3"])  # counted by the row triggers
    migrate.upgrade(db_engine)
    with db_engine.begin() as conn:
        queue_and_send(conn, eid, sid, ["e4", "e5"])
        conn.execute(sa.delete(DELIVERY).where(DELIVERY.c.step == "e5"))
        assert {c.step: (c.sent, c.pending) for c in step_counts(conn, "f")} == {
            "e1": (1, 0), "e2": (1, 0), "e3": (1, 0), "e4": (1, 0)}
        sent = [(c.day, c.n) for c in daily.day_counts(conn, "f", AT.date(), AT.date()) if c.metric == "sent"]
        assert sent == [(AT.date(), 4)]
        if postgresql:
            assert _delivery_triggers(conn) == dict.fromkeys(names, "statement")
    assert migrate.current_revision(db_engine) == migrate.head_revision()


def test_a_database_a_newer_version_migrated_is_refused_and_left_alone(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(migrate.NewerSchema) as refused:
        migrate.upgrade(db_engine)
    assert str(refused.value).endswith(
        "is at schema revision 0099, which this version of funnel-engine does not know (its newest is "
        f"{migrate.head_revision()}): a newer version migrated it; run that version, or restore a backup "
        "taken before the upgrade (docs/deploy.md)")
    assert migrate.current_revision(db_engine) == "0099"  # nothing was written
