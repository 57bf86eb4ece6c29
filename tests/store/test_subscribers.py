"""The subscriber list's and the signups' named queries, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from engine.flow.state import Stage, State
from engine.store import sentmail, signups, subscribers
from engine.store.status import DeliveryStatus
from engine.store.tables import DELIVERY

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_new_subscribers_are_added_once_and_known_ones_are_found(db_engine: Engine) -> None:
    row = {"email": "a@example.com", "email_key": "a@example.com", "name": "", "fields": {},
           "locale": subscribers.DEFAULT_LOCALE, "timezone": subscribers.DEFAULT_TIMEZONE,
           "created_at": T0, "updated_at": T0}
    with db_engine.begin() as conn:
        added = subscribers.insert_new_subscribers(conn, [row])
        assert list(added) == ["a@example.com"]
        assert subscribers.insert_new_subscribers(conn, [row]) == {}
        assert subscribers.subscriber_ids(conn, ["a@example.com", "b@example.com"]) == added
    assert (subscribers.DEFAULT_LOCALE, subscribers.DEFAULT_TIMEZONE) == ("en", "UTC")


def test_tags_are_added_once_removed_and_read_for_many_subscribers(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        ann = subscribers.upsert_subscriber(conn, {"email": "ann@example.com"}, T0)[0]
        bo = subscribers.upsert_subscriber(conn, {"email": "bo@example.com"}, T0)[0]
        for name in ("vip", "vip", "early"):
            subscribers.add_tag(conn, ann, name, T0)
        subscribers.add_tag(conn, bo, "gone", T0)
        subscribers.remove_tag(conn, bo, "gone")
        subscribers.remove_tag(conn, bo, "never had it")
        found = subscribers.tags_by_subscriber(conn, [ann, bo])
    assert {k: sorted(v) for k, v in found.items()} == {ann: ["early", "vip"]}


def test_one_enrollment_row_serves_one_and_many_enrollments(db_engine: Engine) -> None:
    state = State(Stage.CONFIRMING, T0)
    with db_engine.begin() as conn:
        ann = subscribers.upsert_subscriber(conn, {"email": "ann@example.com"}, T0)[0]
        bo = subscribers.upsert_subscriber(conn, {"email": "bo@example.com"}, T0)[0]
        first, created = signups.enroll(conn, ann, "f", state, T0, magnet="guide")
        rows = [signups.enrollment_row(ann, "f", state, T0), signups.enrollment_row(ann, "g", state, T0),
                signups.enrollment_row(bo, "f", state, T0)]
        added = signups.enroll_new(conn, rows)
        stages = signups.enrollment_stages(conn, [ann, bo])
        by_subscriber = signups.enrollments_by_subscriber(conn, [ann, bo, 999])
    assert created and set(added) == {(ann, "g"), (bo, "f")}
    assert stages[(ann, "f")] == (first, "confirming")
    assert [(e["funnel"], e["magnet"]) for e in by_subscriber[ann]] == [("f", "guide"), ("g", None)]
    assert [e["id"] for e in by_subscriber[bo]] == [added[(bo, "f")]]
    assert 999 not in by_subscriber


def test_a_bounce_reported_later_turns_only_a_sent_email_into_a_bounce(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        ann = subscribers.upsert_subscriber(conn, {"email": "ann@example.com"}, T0)[0]
        enrollment = signups.enroll(conn, ann, "f", State(Stage.NURTURE, T0), T0)[0]
        for step, status, sent in (("e1", DeliveryStatus.SENT, T0), ("e2", DeliveryStatus.QUEUED, None)):
            conn.execute(DELIVERY.insert().values(
                enrollment_id=enrollment, subscriber_id=ann, funnel="f", step=step, message_id=f"<{step}@x>",
                status=status, created_at=T0, updated_at=T0, sent_at=sent))
        latest = sentmail.last_marketing_delivery(conn, ann, T0 + timedelta(hours=1))
        assert latest is not None and latest["step"] == "e1"
        for message_id in ("<e1@x>", "<e2@x>"):
            found = sentmail.delivery_by_message_id(conn, message_id)
            assert found is not None and found["email"] == "ann@example.com"
            sentmail.mark_bounced_later(conn, found["id"], "", T0)
        rows = {r.step: (r.status, r.last_reply) for r in conn.execute(DELIVERY.select())}
    assert rows == {"e1": ("bounced", "bounced after delivery"), "e2": ("queued", None)}
