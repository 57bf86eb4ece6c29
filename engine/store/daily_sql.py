"""The database triggers that keep the per-day activity counts the dashboard's charts draw.

The stats tallies (`tally_sql`) count a funnel by signup day: "of those who signed up on
March 3, how many bought". A chart over time asks another question, "what happened on
March 3": signups, confirmations, emails sent, first opens and clicks, unsubscribes,
complaints and revenue on the day they happened. Counting that from the rows reads every
delivery and event of the range (at a million subscribers, 86% of them recent, a 30-day
range is most of ten million rows: seconds, not the second the dashboard has), so these
triggers append a signed `tally` row of kind `daily` for each such moment, in the write's
own transaction, and `tallies.fold` sums them with the others.

A `daily` tally row's key (docs/stats.md, "Charts over time"):

- `day`: the UTC date the thing happened (not the signup day, as for the other kinds);
- `k1`: the metric, one of `METRICS`;
- `k2`: the email's step for `sent`, `opened`, `clicked`, `unsubscribed` and
  `complained` ('' for an unsubscribe or complaint that names none, and for the rest);
- `k3`: the currency of `revenue` ('' for none, and for the rest);
- `n`: how many (purchases, for revenue), `amount` the revenue, `priced` purchases with
  an amount.

What counts, each written again in `daily.recount` (the oracle the tests compare with):

- `signups`: enrollments, on the day they were created;
- `confirmations`: milestones of the magnet stage (confirming, or needing no confirmation);
- `sent`: deliveries with a `sent_at` (the receiving server took the message), that day;
- `opened`, `clicked`: per email (subscriber, funnel, step), its first open or click
  event, first by time and then by id, on its day: unique people per email, so the days
  add up to the email's `opened` and `clicked`;
- `unsubscribed`, `complained`: those events of the funnel;
- `revenue`: purchases counted for an enrollment of the funnel as the stats count them
  (the funnel's or every funnel's, at or after the signup), on the purchase's day.

Deleting a row (an erasure) takes back what it counted; a first click deleted gives its
place to the next. Events are never updated; a delivery's `sent_at` may be set later.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import partial

from sqlalchemy.engine import Connection

from engine.flow.state import EventType, Stage
from engine.store.tally_sql import (
    before,
    day_sql,
    drop,
    once_a_statement,
    plain,
    statement_trigger_names,
    triggers,
)

KIND = "daily"
METRICS = ("signups", "confirmations", "sent", "opened", "clicked", "unsubscribed", "complained", "revenue")
# The events counted once per email (the first), and those counted each time.
FIRSTS = {EventType.OPEN.value: "opened", EventType.CLICK.value: "clicked"}
EACH = {EventType.UNSUBSCRIBE.value: "unsubscribed", EventType.COMPLAINT.value: "complained"}
CONFIRMED_STAGE = Stage.MAGNET.value
PURCHASE = EventType.PURCHASE.value
TRIGGERS = (
    "daily_enrollment_insert",
    "daily_enrollment_delete",
    "daily_milestone_insert",
    "daily_milestone_delete",
    "daily_delivery_insert",
    "daily_delivery_update",
    "daily_delivery_delete",
    "daily_event_first",
    "daily_event_each",
    "daily_event_purchase",
    "daily_event_delete",
)
_COLUMNS = "kind, funnel, day, k1, k2, k3, k4, n, amount, priced"


def _case(column: str, names: dict[str, str]) -> str:
    return f"CASE {column} " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in names.items()) + " END"


def _one(dialect: str, r: str, column: str, metric: str, step: str, sign: int, where: str = "") -> str:
    """A row counting `r` (NEW or OLD) once, on the day of its `column`, when `where` holds."""
    condition = f" WHERE {where}" if where else ""
    return (
        f"INSERT INTO tally ({_COLUMNS}) SELECT '{KIND}', {r}.funnel, {day_sql(dialect, f'{r}.{column}')}, "
        f"{metric}, {step}, '', '', {sign}, 0, 0{condition}"
    )


def _same_email(q: str, r: str) -> str:
    """Event `q` is of the same kind and email as `r`: found through the subscriber's events."""
    return (
        f"{q}.subscriber_id = {r}.subscriber_id AND {q}.type = {r}.type "
        f"AND {plain(f'{q}.funnel')} = {r}.funnel AND {plain(f'{q}.step')} = {r}.step"
    )


def _earlier(q: str, p: str) -> str:
    """Event `q` comes before `p`: by time, then by id (two clicks in the same second)."""
    return f"({q}.at < {p}.at OR ({q}.at = {p}.at AND {q}.id < {p}.id))"


def _first(dialect: str, r: str, sign: int) -> list[str]:
    """Open or click `r` added (`sign` 1) or taken away (-1): move its email's first to its day.

    `r` counts when no other event of its email comes before it; the one that was first
    without `r` (later than `r`) then counts no more, or again.
    """
    metric = _case(f"{r}.type", FIRSTS)
    none_before_r = (
        f"NOT EXISTS (SELECT 1 FROM event q WHERE {_same_email('q', r)} "
        f"AND {before(r, sign, 'q')} AND {_earlier('q', r)})"
    )
    first_without_r = (
        f"{_same_email('p', r)} AND {before(r, sign, 'p')} AND {_earlier(r, 'p')} "
        f"AND NOT EXISTS (SELECT 1 FROM event q WHERE {_same_email('q', r)} "
        f"AND {before(r, sign, 'q')} AND {_earlier('q', 'p')})"
    )
    return [
        _one(dialect, r, "at", metric, f"{r}.step", sign, none_before_r),
        f"INSERT INTO tally ({_COLUMNS}) SELECT '{KIND}', p.funnel, {day_sql(dialect, 'p.at')}, "
        f"{_case('p.type', FIRSTS)}, p.step, '', '', {-sign}, 0, 0 FROM event p WHERE {first_without_r}",
    ]


def _revenue_of_purchase(dialect: str, r: str, sign: int) -> str:
    """Purchase `r` once for each enrollment it counts for (tally_sql._counted, seen from the purchase)."""
    amount = f"coalesce({r}.amount, 0)"
    priced = f"CASE WHEN {r}.amount IS NULL THEN 0 ELSE {sign} END"
    return (
        f"INSERT INTO tally ({_COLUMNS}) SELECT '{KIND}', e.funnel, {day_sql(dialect, f'{r}.at')}, "
        "'revenue', '', "
        f"coalesce({r}.currency, ''), '', {sign}, {sign} * {amount}, {priced} FROM enrollment e "
        f"WHERE e.subscriber_id = {r}.subscriber_id AND ({r}.funnel IS NULL OR e.funnel = {r}.funnel) "
        f"AND e.created_at <= {r}.at"
    )


def _revenue_of_enrollment(dialect: str, e: str, sign: int) -> str:
    """Every purchase that counts for enrollment `e`, per day and currency."""
    day = day_sql(dialect, "p.at")
    return (
        f"INSERT INTO tally ({_COLUMNS}) SELECT '{KIND}', {e}.funnel, {day}, 'revenue', '', "
        f"coalesce(p.currency, ''), '', {sign} * count(*), {sign} * coalesce(sum(p.amount), 0), "
        f"{sign} * count(p.amount) FROM event p WHERE p.subscriber_id = {e}.subscriber_id "
        f"AND p.type = '{PURCHASE}' AND (p.funnel = {e}.funnel OR p.funnel IS NULL) "
        f"AND p.at >= {e}.created_at GROUP BY {day}, coalesce(p.currency, '')"
    )


def _bodies(dialect: str) -> dict[str, tuple[str, str, list[str]]]:
    """Trigger name -> (timing and event, WHEN condition or '', statements)."""
    firsts = ", ".join(f"'{t}'" for t in FIRSTS)
    each = ", ".join(f"'{t}'" for t in EACH)
    sent_differs = (
        "OLD.sent_at IS NOT NEW.sent_at"
        if dialect == "sqlite"
        else "OLD.sent_at IS DISTINCT FROM NEW.sent_at"
    )
    counted = f"OLD.funnel IS NOT NULL AND OLD.step IS NOT NULL AND OLD.type IN ({firsts})"
    return {
        "daily_enrollment_insert": (
            "AFTER INSERT ON enrollment",
            "",
            [
                _one(dialect, "NEW", "created_at", "'signups'", "''", 1),
                _revenue_of_enrollment(dialect, "NEW", 1),
            ],
        ),
        "daily_enrollment_delete": (
            "AFTER DELETE ON enrollment",
            "",
            [
                _one(dialect, "OLD", "created_at", "'signups'", "''", -1),
                _revenue_of_enrollment(dialect, "OLD", -1),
            ],
        ),
        "daily_milestone_insert": (
            "AFTER INSERT ON milestone",
            f"NEW.stage = '{CONFIRMED_STAGE}'",
            [
                _one(dialect, "NEW", "at", "'confirmations'", "''", 1),
            ],
        ),
        "daily_milestone_delete": (
            "AFTER DELETE ON milestone",
            f"OLD.stage = '{CONFIRMED_STAGE}'",
            [
                _one(dialect, "OLD", "at", "'confirmations'", "''", -1),
            ],
        ),
        "daily_delivery_insert": (
            "AFTER INSERT ON delivery",
            "NEW.sent_at IS NOT NULL",
            [
                _one(dialect, "NEW", "sent_at", "'sent'", "NEW.step", 1),
            ],
        ),
        # Once per email as a rule: when the server takes it. A status change alone never fires.
        "daily_delivery_update": (
            "AFTER UPDATE OF sent_at ON delivery",
            sent_differs,
            [
                _one(dialect, "OLD", "sent_at", "'sent'", "OLD.step", -1, "OLD.sent_at IS NOT NULL"),
                _one(dialect, "NEW", "sent_at", "'sent'", "NEW.step", 1, "NEW.sent_at IS NOT NULL"),
            ],
        ),
        "daily_delivery_delete": (
            "AFTER DELETE ON delivery",
            "OLD.sent_at IS NOT NULL",
            [
                _one(dialect, "OLD", "sent_at", "'sent'", "OLD.step", -1),
            ],
        ),
        "daily_event_first": (
            "AFTER INSERT ON event",
            f"NEW.type IN ({firsts}) AND NEW.funnel IS NOT NULL AND NEW.step IS NOT NULL",
            _first(dialect, "NEW", 1),
        ),
        "daily_event_each": (
            "AFTER INSERT ON event",
            f"NEW.type IN ({each}) AND NEW.funnel IS NOT NULL",
            [
                _one(dialect, "NEW", "at", _case("NEW.type", EACH), "coalesce(NEW.step, '')", 1),
            ],
        ),
        "daily_event_purchase": (
            "AFTER INSERT ON event",
            f"NEW.type = '{PURCHASE}'",
            [
                _revenue_of_purchase(dialect, "NEW", 1),
            ],
        ),
        # BEFORE, as tally_event_delete: each deleted event is judged with the ones deleted
        # before it gone and itself still there, on both databases.
        "daily_event_delete": (
            "BEFORE DELETE ON event",
            f"OLD.type IN ({firsts}, {each}, '{PURCHASE}')",
            [
                *(f"{stmt} AND {counted}" for stmt in _first(dialect, "OLD", -1)),
                _one(
                    dialect,
                    "OLD",
                    "at",
                    _case("OLD.type", EACH),
                    "coalesce(OLD.step, '')",
                    -1,
                    f"OLD.type IN ({each}) AND OLD.funnel IS NOT NULL",
                ),
                f"{_revenue_of_purchase(dialect, 'OLD', -1)} AND OLD.type = '{PURCHASE}'",
            ],
        ),
    }


DELIVERY_TRIGGERS = statement_trigger_names("daily", "delivery")


def _sent_of(dialect: str, r: str, sign: int, rows: str) -> str:
    """The `sent` rows of the delivery rows `rows` (`r` is o or r) sent at some time, each signed `sign`."""
    return (
        f"SELECT '{KIND}' AS kind, {r}.funnel AS funnel, {day_sql(dialect, f'{r}.sent_at')} AS day, "
        f"'sent' AS k1, {r}.step AS k2, '' AS k3, '' AS k4, {sign} AS n {rows} WHERE {r}.sent_at IS NOT NULL"
    )


def trigger_ddl(dialect: str, only: Collection[str] | None = None, per_row: bool = False) -> list[str]:
    """The statements that create every daily trigger (`only` these) on `dialect` ('sqlite' or
    'postgresql'); `per_row`: PostgreSQL's delivery triggers as before migration 0009."""
    # On PostgreSQL the delivery triggers run once a statement (tally_sql.once_a_statement).
    per_statement = None if per_row else once_a_statement("daily", "delivery", partial(_sent_of, dialect))
    return triggers(dialect, _bodies(dialect), per_statement, only)


def install(conn: Connection) -> None:
    """Create the daily triggers (migration 0008 does, once)."""
    for ddl in trigger_ddl(conn.dialect.name):
        conn.exec_driver_sql(ddl)


def uninstall(conn: Connection) -> None:
    """Drop the daily triggers (a downgrade; a bulk load that counts afresh after)."""
    drop(conn, TRIGGERS)
