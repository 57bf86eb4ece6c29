"""The statements the tick, the dispatcher and the services share, named by intent; SQLAlchemy
Core on the hot paths. Statements of one concern have their own module beside this one
(subscribers, signups, sentmail, counts, stepstats...).

Each function takes a Connection inside the caller's transaction, so the caller
decides what commits together.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from engine.flow.state import Stage
from engine.store.inlists import one_of, one_of_parameter
from engine.store.inserts import insert_ignoring_conflicts
from engine.store.manyrows import by_columns, execute_many
from engine.store.rows import email_hash, normalize_email
from engine.store.status import NOT_SENT, PENDING, DeliveryStatus
from engine.store.tables import DELIVERY, ENROLLMENT, EVENT, SUBSCRIBER, SUPPRESSION

# --- subscribers -------------------------------------------------------------------------


def find_subscriber(conn: Connection, address: str) -> RowMapping | None:
    """The subscriber with this address (in any case), or None."""
    key = normalize_email(address)[1]
    return conn.execute(sa.select(SUBSCRIBER).where(SUBSCRIBER.c.email_key == key)).mappings().first()


def subscribers_by_id(conn: Connection, ids: Iterable[int]) -> dict[int, RowMapping]:
    """Subscriber rows by id."""
    rows = conn.execute(sa.select(SUBSCRIBER).where(SUBSCRIBER.c.id.in_(list(ids)))).mappings()
    return {row["id"]: row for row in rows}


def subscriber_facts(conn: Connection, ids: Iterable[int]) -> dict[int, RowMapping]:
    """Each subscriber's `timezone` and `status` by id: all that deciding reads of a subscriber
    (not the whole row, whose `fields` JSON and times would be converted for nothing)."""
    columns = (SUBSCRIBER.c.id, SUBSCRIBER.c.timezone, SUBSCRIBER.c.status)
    rows = conn.execute(sa.select(*columns).where(one_of(conn, SUBSCRIBER.c.id, ids))).mappings()
    return {row["id"]: row for row in rows}


def set_subscriber_status(
    conn: Connection, subscriber_id: int, status: str, now: datetime, only_from: Sequence[str] = ()
) -> None:
    """Mark a subscriber active, unsubscribed, bounced or complained (only from `only_from`, if given)."""
    where = [SUBSCRIBER.c.id == subscriber_id]
    if only_from:
        where.append(SUBSCRIBER.c.status.in_(list(only_from)))
    conn.execute(sa.update(SUBSCRIBER).where(*where).values(status=status, updated_at=now))


# --- suppression -------------------------------------------------------------------------


def suppress(conn: Connection, address: str, reason: str, now: datetime, detail: str | None = None) -> bool:
    """Never mail `address` again; True when it was not suppressed before."""
    row = {"email_hash": email_hash(address), "reason": reason, "detail": detail, "at": now}
    return insert_ignoring_conflicts(conn, SUPPRESSION, [row], ["email_hash"]) == 1


def suppressed_hashes(conn: Connection, hashes: Iterable[str]) -> set[str]:
    """Which of these address hashes are suppressed."""
    wanted = list(set(hashes))
    if not wanted:
        return set()
    return set(conn.execute(_suppressed(conn.dialect.name), {"hashes": wanted}).scalars())


@functools.cache
def _suppressed(dialect: str) -> sa.Select[Any]:
    """`suppressed_hashes`' SELECT, built once per database: building it at every call (its IN
    list, its cache key) cost 0.23 ms of a web writer's commit, the SELECT itself 0.04."""
    column = SUPPRESSION.c.email_hash
    return sa.select(column).where(one_of_parameter(dialect, column, "hashes"))


def is_suppressed(conn: Connection, address: str) -> bool:
    """Whether `address` is on the suppression list."""
    return bool(suppressed_hashes(conn, [email_hash(address)]))


# --- enrollments -------------------------------------------------------------------------


# What the tick reads of a claimed enrollment: every column but `updated_at` (which it only
# writes) and `reached` (the triggers'), each of which costs its conversion per row
# (a time's ~1 µs): 10.7 -> 8.7 µs a row of the claim of 1000 on SQLite.
_CLAIMED_COLUMNS = tuple(c for c in ENROLLMENT.c if c.name not in ("updated_at", "reached"))


def claim_due_enrollments(conn: Connection, now: datetime, limit: int) -> list[RowMapping]:
    """Lock up to `limit` enrollments due by `now`, oldest first, skipping rows another daemon holds.

    The locks last until the caller's transaction ends; on SQLite the transaction holds
    the database's one write lock instead. The index on next_run_at makes this cost
    well under a millisecond when nothing is due, whatever the table's size. A row has every
    column of the enrollment but `updated_at` and `reached`.
    """
    statement = (
        sa.select(*_CLAIMED_COLUMNS)
        .where(ENROLLMENT.c.next_run_at <= now)
        .order_by(ENROLLMENT.c.next_run_at, ENROLLMENT.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(conn.execute(statement).mappings())


def save_enrollments(conn: Connection, updates: Sequence[Mapping[str, Any]]) -> None:
    """Write back states and wake times; each update has `_id` and the columns it sets (the tick
    sets only those that changed, rows.state_changes)."""
    _update_by_id(conn, ENROLLMENT, updates)


def postpone_enrollments(conn: Connection, ids: Sequence[int], until: datetime, now: datetime) -> None:
    """Look at these enrollments again at `until` (their funnel is missing or broken)."""
    if ids:
        conn.execute(
            sa.update(ENROLLMENT)
            .where(ENROLLMENT.c.id.in_(list(ids)))
            .values(next_run_at=until, updated_at=now)
        )


def wake_enrollments(
    conn: Connection, subscriber_id: int, now: datetime, stages: Sequence[str] | None = None
) -> None:
    """Make the subscriber's live enrollments (those in `stages`, if given) due now: something happened."""
    where = [ENROLLMENT.c.subscriber_id == subscriber_id, ENROLLMENT.c.stage != Stage.ENDED.value]
    if stages is not None:
        where.append(ENROLLMENT.c.stage.in_(list(stages)))
    conn.execute(sa.update(ENROLLMENT).where(*where).values(next_run_at=now, updated_at=now))


def enrollments_of(conn: Connection, subscriber_id: int) -> list[RowMapping]:
    """Every enrollment of a subscriber."""
    return list(
        conn.execute(
            sa.select(ENROLLMENT).where(ENROLLMENT.c.subscriber_id == subscriber_id).order_by(ENROLLMENT.c.id)
        ).mappings()
    )


# --- events ------------------------------------------------------------------------------


def record_event(
    conn: Connection,
    subscriber_id: int,
    kind: str,
    at: datetime,
    *,
    funnel: str | None = None,
    external_id: str | None = None,
    wake: bool | Sequence[str] = True,
    **fields: Any,
) -> bool:
    """Store an event and wake the subscriber's enrollments; False for a repeated `external_id`.

    `wake=False` for events the interpreter does not act on (opens): no enrollment is
    looked at again because an image proxy fetched a pixel. A sequence of stages wakes
    only enrollments in those (a click wakes someone in win-back or sunset).
    """
    row = {
        "subscriber_id": subscriber_id,
        "type": kind,
        "at": at,
        "funnel": funnel,
        "external_id": external_id,
        "question": None,
        "answer": None,
        "product": None,
        "name": None,
        "amount": None,
        "currency": None,
        "data": {},
        **fields,
    }
    if external_id is not None:
        if not insert_ignoring_conflicts(conn, EVENT, [row], ["external_id"]):
            return False
    else:
        conn.execute(sa.insert(EVENT), [row])
    if wake is True:
        wake_enrollments(conn, subscriber_id, at)
    elif wake:
        wake_enrollments(conn, subscriber_id, at, wake)
    return True


# Built once: the outcome commit runs it at every commit, and building a statement (with its
# cache key) costs more than running this one (~50 of its ~80 µs).
_UNSUBSCRIBES_AFTER = (
    sa.select(EVENT.c.id, EVENT.c.subscriber_id, EVENT.c.funnel, EVENT.c.at)
    .where(EVENT.c.id > sa.bindparam("after"), EVENT.c.type == "unsubscribe")
    .order_by(EVENT.c.id)
)


def unsubscribes_after(conn: Connection, event_id: int, since: datetime | None = None) -> list[RowMapping]:
    """Unsubscribe events newer than `event_id` (and recorded at `since` or later), oldest first."""
    statement = _UNSUBSCRIBES_AFTER
    if since is not None:
        statement = statement.where(EVENT.c.at >= since)
    return list(conn.execute(statement, {"after": event_id}).mappings())


def last_event_id(conn: Connection) -> int:
    """The newest event's id (0 with none)."""
    return int(conn.execute(sa.select(sa.func.max(EVENT.c.id))).scalar() or 0)


def events_by_subscriber(conn: Connection, ids: Iterable[int]) -> dict[int, list[RowMapping]]:
    """Every event of these subscribers, oldest first."""
    found: dict[int, list[RowMapping]] = defaultdict(list)
    statement = (sa.select(EVENT).where(one_of(conn, EVENT.c.subscriber_id, ids))
                 .order_by(EVENT.c.at, EVENT.c.id))
    for row in conn.execute(statement).mappings():
        found[row["subscriber_id"]].append(row)
    return found


# --- deliveries --------------------------------------------------------------------------


def marketing_sent_since(conn: Connection, ids: Iterable[int], since: datetime) -> dict[int, list[datetime]]:
    """When each subscriber's marketing emails (decided since `since`, in every funnel) go out.

    Sent: when it was sent. Not yet sent: when it is due, if later than its decision. An
    email decided at the end of a send window but sent after it closed waits for the
    next window; counted at its decision, it would leave room under the frequency cap
    for the next email on the very day it finally goes out.
    """
    found: dict[int, list[datetime]] = defaultdict(list)
    goes_out = sa.case(
        (DELIVERY.c.sent_at.is_not(None), DELIVERY.c.sent_at),
        (DELIVERY.c.next_attempt_at > DELIVERY.c.created_at, DELIVERY.c.next_attempt_at),
        else_=DELIVERY.c.created_at,
    )
    statement = sa.select(DELIVERY.c.subscriber_id, goes_out).where(
        one_of(conn, DELIVERY.c.subscriber_id, ids),
        DELIVERY.c.marketing.is_(True),
        DELIVERY.c.created_at >= since,
        DELIVERY.c.status.not_in(NOT_SENT),
    )
    for subscriber_id, created_at in conn.execute(statement):
        found[subscriber_id].append(created_at)
    return found


def queue_deliveries(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Queue emails to send; one per enrollment and step, however often this is called."""
    return insert_ignoring_conflicts(conn, DELIVERY, rows, ["enrollment_id", "step"])


# A claimed delivery's columns: all but the three times the claim itself rewrites or that a due
# row never has (next_attempt_at, updated_at, sent_at). On SQLite each time read is a parse of
# its text, three a row that sending never looks at.
_CLAIMED_DELIVERY_COLUMNS = tuple(
    column for column in DELIVERY.c if column.name not in ("next_attempt_at", "updated_at", "sent_at"))


def claim_due_deliveries(
    conn: Connection, now: datetime, limit: int, lease_until: datetime
) -> list[dict[str, Any]]:
    """Take up to `limit` deliveries due by `now`, oldest first, for this process until `lease_until`.

    A claimed row is 'sending' with next_attempt_at at the end of the lease: if this
    process dies, the row is due again then and another claim takes it over. The rows hold
    the delivery's columns but those three times (`_CLAIMED_DELIVERY_COLUMNS`), and the
    subscriber's and the enrollment's that sending needs.
    """
    picked = (
        sa.select(DELIVERY.c.id)
        .where(DELIVERY.c.next_attempt_at <= now)
        .order_by(DELIVERY.c.next_attempt_at, DELIVERY.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(conn.execute(picked).scalars())
    if not ids:
        return []
    statement = (
        sa.select(
            *_CLAIMED_DELIVERY_COLUMNS,
            SUBSCRIBER.c.email,
            SUBSCRIBER.c.name,
            SUBSCRIBER.c.first_name,
            SUBSCRIBER.c.last_name,
            SUBSCRIBER.c.locale,
            SUBSCRIBER.c.timezone,
            SUBSCRIBER.c.fields,
            SUBSCRIBER.c.status.label("subscriber_status"),
            ENROLLMENT.c.magnet,
        )
        .join(SUBSCRIBER, SUBSCRIBER.c.id == DELIVERY.c.subscriber_id)
        .join(ENROLLMENT, ENROLLMENT.c.id == DELIVERY.c.enrollment_id)
        .where(one_of(conn, DELIVERY.c.id, ids))
        .order_by(DELIVERY.c.next_attempt_at, DELIVERY.c.id)
    )
    rows = [dict(r) for r in conn.execute(statement).mappings()]
    conn.execute(
        sa.update(DELIVERY)
        .where(one_of(conn, DELIVERY.c.id, ids))
        .values(status=DeliveryStatus.SENDING, next_attempt_at=lease_until, updated_at=now)
    )
    return rows


def record_outcomes(conn: Connection, updates: Sequence[Mapping[str, Any]]) -> None:
    """Write what became of deliveries; each update has `_id` and the same columns.

    A final outcome (sent, bounced...) is the truth and always written. A deferral is
    written only over a row still being sent: an unsubscribe may have cancelled it while
    it was in flight, and a 4xx must not bring it back to life.
    """
    deferred = DeliveryStatus.DEFERRED
    # Only a composed message names its release: the others leave the column as it is.
    _update_by_id(conn, DELIVERY, [u for u in updates if u["status"] != deferred])
    _update_by_id(conn, DELIVERY, [u for u in updates if u["status"] == deferred], still_sending=True)


def _update_by_id(
    conn: Connection, table: sa.Table, updates: Sequence[Mapping[str, Any]], still_sending: bool = False
) -> None:
    """UPDATEs of many rows (manyrows.execute_many): every update names its row by `_id`; those that
    set the same columns go together, in the order first seen.

    `still_sending`: only rows whose status is still 'sending'.
    """
    for columns, group in by_columns(updates).items():
        statement = _update_statement(table, tuple(k for k in columns if k != "_id"), still_sending)
        execute_many(conn, statement, group)


@functools.cache
def _update_statement(table: sa.Table, columns: tuple[str, ...], still_sending: bool) -> sa.Update:
    """The UPDATE of `_update_by_id`, built once per table and columns: building one and its cache
    key costs ~100 µs, as much as writing ten rows, and the outcome commit runs it at every commit."""
    only = [table.c.status == DeliveryStatus.SENDING] if still_sending else []
    values: dict[str, Any] = {k: sa.bindparam(k) for k in columns}
    return sa.update(table).where(table.c.id == sa.bindparam("_id"), *only).values(**values)


def cancel_pending_deliveries(
    conn: Connection,
    subscriber_id: int,
    status: str,
    now: datetime,
    marketing_only: bool = False,
    funnel: str | None = None,
    in_flight: bool = False,
) -> int:
    """Stop the subscriber's queued and deferred emails (of one funnel, or all).

    With `in_flight`, also those being sent right now: if the send fails with a 4xx, the
    row stays stopped (record_outcomes); if it went out, its outcome says so.
    """
    statuses = PENDING if in_flight else (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)
    where = [DELIVERY.c.subscriber_id == subscriber_id, DELIVERY.c.status.in_(statuses)]
    if marketing_only:
        where.append(DELIVERY.c.marketing.is_(True))
    if funnel is not None:
        where.append(DELIVERY.c.funnel == funnel)
    result = conn.execute(
        sa.update(DELIVERY).where(*where).values(status=status, next_attempt_at=None, updated_at=now)
    )
    return int(result.rowcount)


def last_confirmations(
    conn: Connection, subscriber_ids: Iterable[int], steps: Iterable[tuple[str, str]], since: datetime
) -> dict[int, datetime]:
    """Subscriber -> when their latest confirmation email (one of `steps`) was decided, if since `since`."""
    pairs = [sa.and_(DELIVERY.c.funnel == f, DELIVERY.c.step == s) for f, s in steps]
    wanted = list(set(subscriber_ids))
    if not pairs or not wanted:
        return {}
    statement = (
        sa.select(DELIVERY.c.subscriber_id, sa.func.max(DELIVERY.c.created_at))
        .where(one_of(conn, DELIVERY.c.subscriber_id, wanted), DELIVERY.c.created_at >= since, sa.or_(*pairs))
        .group_by(DELIVERY.c.subscriber_id)
    )
    return {int(s): at for s, at in conn.execute(statement)}


def deliveries_of(conn: Connection, subscriber_id: int) -> list[RowMapping]:
    """Every email decided for a subscriber, oldest first."""
    return list(
        conn.execute(
            sa.select(DELIVERY)
            .where(DELIVERY.c.subscriber_id == subscriber_id)
            .order_by(DELIVERY.c.created_at, DELIVERY.c.id)
        ).mappings()
    )
