"""The database triggers that keep the stats tallies, written once for SQLite and PostgreSQL.

Every write that changes a funnel's numbers (an enrollment added, moved to another segment
or deleted; a milestone; an answer, purchase or unsubscribe; a subscriber's source) appends
signed rows to `tally` in the same transaction, from inside the database. No write path of
the engine (the tick, signups, the API, imports, erasure, a hand-written SQL fix) can
forget to count, and appending never waits on another writer: several daemons on one
PostgreSQL never queue behind one hot counter row. `tallies.fold` later sums the appended
rows into `tally_total`; a read adds both.

What each kind of tally row counts (docs/stats.md, "How the numbers stay fast"):

- `cohort`: enrollments, per (funnel, day signed up, segment, source, utm_source) and the
  `reached` mask of stages and deeds (`REACHED`), one +1 per enrollment;
- `revenue`: purchases that count for an enrollment, per the same key and currency
  (`n` purchases, `amount` their sum, `priced` how many had an amount);
- `product`: the same purchases per (funnel, day, product, currency);
- `customer`: enrollments with at least one purchase of a product, per (funnel, day, product);
- `answer`: enrollments whose latest answer to a question is an answer, per (funnel, day,
  question, answer);
- `mail`: emails, per (funnel, day decided, step, status, `acted` mask): the status with
  queued, sending and deferred as one `pending`, and the mask of what the recipient did
  with it (`ACTED`: opened, clicked, unsubscribed, complained), which the event trigger
  keeps on the delivery row. A step's unique people are its deliveries with the bit: one
  delivery per enrollment and step, one enrollment per subscriber and funnel.

`enrollment.reached` and `delivery.acted` are kept by the milestone and event triggers; the
enrollment and delivery triggers turn each change of them (or of the segment, or of the
status) into a -1 for the old key and a +1 for the new. Milestones and events are deleted
only with their enrollment (erasure), so a bit is never taken back.

A key part that is NULL is stored as '' (a unique key treats NULLs as distinct); the
readers turn '' back into None. Segment, source, utm_source and product are never '' in
rows the engine writes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engine.flow.state import EventType, Stage
from engine.store.status import PENDING

# The bits of `enrollment.reached`: the stages counted from milestones, then the deeds
# counted from events. Adding one needs a migration that sets it for the rows there.
REACHED = {
    "confirmed": 1,  # entered the magnet stage: what confirming (or needing no confirmation) does
    "nurture": 2,
    "sales": 4,
    "customers": 8,
    "winback": 16,
    "sunset": 32,
    "answered": 64,  # gave a survey answer in this funnel
    "purchased": 128,  # a purchase that counts for this enrollment (_counted)
    "unsubscribed": 256,  # unsubscribed from this funnel
}
# The bits of `delivery.acted`: what the recipient did with the email (events naming its step).
ACTED = {"opened": 1, "clicked": 2, "unsubscribed": 4, "complained": 8}
ACTED_EVENTS = {
    EventType.OPEN.value: ACTED["opened"],
    EventType.CLICK.value: ACTED["clicked"],
    EventType.UNSUBSCRIBE.value: ACTED["unsubscribed"],
    EventType.COMPLAINT.value: ACTED["complained"],
}
# The statuses a mail tally keeps apart; the others are on their way and count as one.
_ACTED_TYPES = ", ".join(f"'{kind}'" for kind in ACTED_EVENTS)
PENDING_AS = "pending"
PENDING_STATUSES = tuple(status.value for status in PENDING)
MILESTONE_BITS = {
    Stage.MAGNET.value: REACHED["confirmed"],
    Stage.NURTURE.value: REACHED["nurture"],
    Stage.SALES.value: REACHED["sales"],
    Stage.CUSTOMER.value: REACHED["customers"],
    Stage.WINBACK.value: REACHED["winback"],
    Stage.SUNSET.value: REACHED["sunset"],
}
ANSWER, PURCHASE, UNSUBSCRIBE = EventType.ANSWER.value, EventType.PURCHASE.value, EventType.UNSUBSCRIBE.value
TRIGGERS = (
    "tally_enrollment_insert",
    "tally_enrollment_update",
    "tally_enrollment_delete",
    "tally_subscriber_update",
    "tally_subscriber_delete",
    "tally_milestone_insert",
    "tally_event_acted",
    "tally_event_answer",
    "tally_event_purchase",
    "tally_event_unsubscribe",
    "tally_event_delete",
    "tally_delivery_insert",
    "tally_delivery_update",
    "tally_delivery_delete",
)


def day_sql(dialect: str, column: str) -> str:
    """The UTC date of a stored time, as 'YYYY-MM-DD' (the tallies' and the daily tallies' `day`)."""
    if dialect == "sqlite":
        return f"substr({column}, 1, 10)"  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', in UTC
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def day_of(conn: Connection, column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """day_sql as an expression, for the queries that read what the triggers wrote by day."""
    if conn.dialect.name == "sqlite":
        return sa.func.substr(column, 1, 10)
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")


@dataclass(frozen=True)
class _Dialect:
    name: str

    def day(self, column: str) -> str:
        """The UTC date of a stored time, as 'YYYY-MM-DD'."""
        return day_sql(self.name, column)

    def differs(self, a: str, b: str) -> str:
        """NULL-safe a != b."""
        return f"{a} IS NOT {b}" if self.name == "sqlite" else f"{a} IS DISTINCT FROM {b}"

    def same(self, a: str, b: str) -> str:
        """NULL-safe a == b."""
        return f"{a} IS {b}" if self.name == "sqlite" else f"{a} IS NOT DISTINCT FROM {b}"


_COLUMNS = "kind, funnel, day, k1, k2, k3, k4, n, amount, priced"
_SOURCE = "(SELECT source FROM subscriber WHERE id = {e}.subscriber_id)"
_UTM = "(SELECT utm_source FROM subscriber WHERE id = {e}.subscriber_id)"


def _group(d: _Dialect, e: str) -> str:
    """Enrollment `e`'s cohort key (funnel, day, segment, source, utm_source) as tally columns."""
    return (
        f"{e}.funnel, {d.day(f'{e}.created_at')}, coalesce({e}.segment, ''), "
        f"coalesce({_SOURCE.format(e=e)}, ''), coalesce({_UTM.format(e=e)}, '')"
    )


def _cohort(d: _Dialect, e: str, sign: int) -> str:
    """One enrollment row's cohort tally (`e` is NEW or OLD), with its subscriber's source."""
    return (
        f"INSERT INTO tally ({_COLUMNS}) VALUES ('cohort', {_group(d, e)}, "
        f"CAST({e}.reached AS VARCHAR(12)), {sign}, 0, 0)"
    )


def before(r: str, sign: int, q: str) -> str:
    """The other events event `r` is judged against: for an insert (`sign` 1), those stored
    before it, for a delete, every other one still there.

    As if the rows of one INSERT were inserted one by one, in id order: PostgreSQL runs
    AFTER row triggers once the whole statement is done, when each sees the rows inserted
    after it too (two answers in one INSERT would each find the other newer). The ids of
    one INSERT grow in row order, and every stored event's id is smaller. A delete is
    looked at BEFORE (tally_event_delete), with the rows deleted before it gone on both.
    """
    return f"{q}.id < {r}.id" if sign > 0 else f"{q}.id <> {r}.id"


def plain(column: str) -> str:
    """A text column the planner must not pick an index of: a subscriber's rows go by subscriber.

    Without it, SQLite looked up a subscriber's events of one step through the index on
    (funnel, step, type), every event of that step, instead of the subscriber's few (measured
    at a million subscribers: a 10-minute statement instead of seconds); and PostgreSQL, on a
    table not yet analyzed, found a subscriber's enrollment through the index on (funnel,
    created_at), every enrollment of the funnel (a click cost 0.75 ms instead of 0.1 ms).
    """
    return f"({column} || '')"


def _counted(e: str, p: str = "p") -> str:
    """The purchase events `p` that count for enrollment `e`: this funnel's or every funnel's
    (the shop's), bought at or after the signup (buying first is no conversion)."""
    return (
        f"{p}.subscriber_id = {e}.subscriber_id AND {p}.type = '{PURCHASE}' "
        f"AND ({p}.funnel = {e}.funnel OR {p}.funnel IS NULL) AND {p}.at >= {e}.created_at"
    )


def _revenue(d: _Dialect, e: str, sign: int, where: str = "") -> str:
    """Every counted purchase of enrollment `e` as revenue tallies, per currency."""
    return (
        f"INSERT INTO tally ({_COLUMNS}) SELECT 'revenue', {_group(d, e)}, coalesce(p.currency, ''), "
        f"{sign} * count(*), {sign} * coalesce(sum(p.amount), 0), {sign} * count(p.amount) "
        f"FROM event p WHERE {_counted(e)} {where} GROUP BY coalesce(p.currency, '')"
    )


def _products(d: _Dialect, e: str, sign: int) -> list[str]:
    """Every counted purchase of enrollment `e` as product and customer tallies."""
    day = d.day(f"{e}.created_at")
    return [
        f"INSERT INTO tally ({_COLUMNS}) SELECT 'product', {e}.funnel, {day}, coalesce(p.product, ''), "
        f"coalesce(p.currency, ''), '', '', {sign} * count(*), {sign} * coalesce(sum(p.amount), 0), "
        f"{sign} * count(p.amount) FROM event p WHERE {_counted(e)} "
        "GROUP BY coalesce(p.product, ''), coalesce(p.currency, '')",
        f"INSERT INTO tally ({_COLUMNS}) SELECT 'customer', {e}.funnel, {day}, coalesce(p.product, ''), "
        f"'', '', '', {sign}, 0, 0 FROM event p WHERE {_counted(e)} GROUP BY coalesce(p.product, '')",
    ]


def _newer(q: str, p: str) -> str:
    """Event `q` is later than `p`: by time, then by id (two answers in the same second)."""
    return f"({q}.at > {p}.at OR ({q}.at = {p}.at AND {q}.id > {p}.id))"


def _same_question(q: str, p: str) -> str:
    return (
        f"{q}.subscriber_id = {p}.subscriber_id AND {plain(f'{q}.funnel')} = {p}.funnel "
        f"AND {q}.type = '{ANSWER}' "
        f"AND {q}.question = {p}.question AND {q}.answer IS NOT NULL"
    )


def _latest_answers(d: _Dialect, e: str, sign: int) -> str:
    """Enrollment `e`'s latest answer to each question as answer tallies (funnelstats.latest_answers)."""
    return (
        f"INSERT INTO tally ({_COLUMNS}) SELECT 'answer', {e}.funnel, {d.day(f'{e}.created_at')}, "
        f"p.question, p.answer, '', '', {sign}, 0, 0 FROM event p "
        f"WHERE p.subscriber_id = {e}.subscriber_id AND {plain('p.funnel')} = {e}.funnel "
        f"AND p.type = '{ANSWER}' "
        "AND p.question IS NOT NULL AND p.answer IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM event q WHERE {_same_question('q', 'p')} AND {_newer('q', 'p')})"
    )


def _event_bits(e: str) -> str:
    """The deed bits the events already stored give enrollment `e` (for one added after them)."""
    return (
        f"(CASE WHEN EXISTS (SELECT 1 FROM event p WHERE p.subscriber_id = {e}.subscriber_id "
        f"AND p.type = '{ANSWER}' AND {plain('p.funnel')} = {e}.funnel) "
        f"THEN {REACHED['answered']} ELSE 0 END) "
        f"| (CASE WHEN EXISTS (SELECT 1 FROM event p WHERE {_counted(e)}) "
        f"THEN {REACHED['purchased']} ELSE 0 END) "
        f"| (CASE WHEN EXISTS (SELECT 1 FROM event p WHERE p.subscriber_id = {e}.subscriber_id "
        f"AND p.type = '{UNSUBSCRIBE}' AND {plain('p.funnel')} = {e}.funnel) "
        f"THEN {REACHED['unsubscribed']} ELSE 0 END)"
    )


def _set_bit(bit: int | str, where: str, table: str = "enrollment", column: str = "reached") -> str:
    return f"UPDATE {table} SET {column} = {column} | {bit} WHERE {where} AND ({column} & {bit}) = 0"


def _status(column: str) -> str:
    """A delivery status as its mail tally keeps it."""
    pending = ", ".join(f"'{status}'" for status in PENDING_STATUSES)
    return f"(CASE WHEN {column} IN ({pending}) THEN '{PENDING_AS}' ELSE {column} END)"


def _mail(d: _Dialect, r: str, sign: int) -> str:
    """One delivery row's mail tally (`r` is NEW or OLD)."""
    return (
        f"INSERT INTO tally ({_COLUMNS}) VALUES ('mail', {r}.funnel, {d.day(f'{r}.created_at')}, {r}.step, "
        f"{_status(f'{r}.status')}, CAST({r}.acted AS VARCHAR(12)), '', {sign}, 0, 0)"
    )


def _acted_bit(kind: str) -> str:
    return "CASE " + kind + " " + " ".join(f"WHEN '{k}' THEN {b}" for k, b in ACTED_EVENTS.items()) + " END"


def _bodies(d: _Dialect) -> dict[str, tuple[str, str, list[str]]]:
    """Trigger name -> (timing and event, WHEN condition or '', statements)."""
    deeds = f"p.type IN ('{ANSWER}', '{PURCHASE}', '{UNSUBSCRIBE}')"
    stage_bit = "CASE NEW.stage " + " ".join(f"WHEN '{s}' THEN {b}" for s, b in MILESTONE_BITS.items())
    stage_bit += " END"
    buyers = (
        "FROM enrollment e JOIN subscriber s ON s.id = e.subscriber_id "
        "WHERE e.subscriber_id = {r}.subscriber_id "
        "AND ({r}.funnel IS NULL OR e.funnel = {r}.funnel) AND e.created_at <= {r}.at"
    )

    def purchase(r: str, sign: int) -> list[str]:
        """Tallies of purchase event `r` (NEW or OLD) for every enrollment it counts for."""
        day = d.day("e.created_at")
        amount = f"coalesce({r}.amount, 0)"
        priced = f"CASE WHEN {r}.amount IS NULL THEN 0 ELSE {sign} END"
        # A customer of a product is counted by their first purchase of it and uncounted by
        # their last: `r` is the only one (the others are looked for without it).
        only = (f"NOT EXISTS (SELECT 1 FROM event q WHERE {before(r, sign, 'q')} AND {_counted('e', 'q')} "
                f"AND coalesce(q.product, '') = coalesce({r}.product, ''))")
        return [
            f"INSERT INTO tally ({_COLUMNS}) SELECT 'revenue', e.funnel, {day}, coalesce(e.segment, ''), "
            f"coalesce(s.source, ''), coalesce(s.utm_source, ''), coalesce({r}.currency, ''), {sign}, "
            f"{sign} * {amount}, {priced} " + buyers.format(r=r),
            f"INSERT INTO tally ({_COLUMNS}) SELECT 'product', e.funnel, {day}, coalesce({r}.product, ''), "
            f"coalesce({r}.currency, ''), '', '', {sign}, {sign} * {amount}, {priced} " + buyers.format(r=r),
            f"INSERT INTO tally ({_COLUMNS}) SELECT 'customer', e.funnel, {day}, coalesce({r}.product, ''), "
            f"'', '', '', {sign}, 0, 0 " + buyers.format(r=r) + f" AND {only}",
        ]

    def answer(r: str, sign: int) -> list[str]:
        """Answer event `r` added (+1) or taken away (-1): move the latest answer's tally."""
        if_answer = f"{r}.type = '{ANSWER}' AND {r}.question IS NOT NULL AND {r}.answer IS NOT NULL"
        # The latest answer to the question without `r`: it loses its place when `r` is newer.
        other = (f"{before(r, sign, 'p')} AND NOT EXISTS (SELECT 1 FROM event q "
                 f"WHERE {before(r, sign, 'q')} "
                 f"AND {_same_question('q', 'p')} AND {_newer('q', 'p')})")
        r_is_latest = (f"NOT EXISTS (SELECT 1 FROM event q WHERE {before(r, sign, 'q')} "
                       f"AND {_same_question('q', r)} AND {_newer('q', r)})")
        day = d.day("e.created_at")
        enrolled = f"e.subscriber_id = {r}.subscriber_id AND {plain('e.funnel')} = {r}.funnel"
        return [
            f"INSERT INTO tally ({_COLUMNS}) SELECT 'answer', e.funnel, {day}, p.question, p.answer, '', '', "
            f"{-sign}, 0, 0 FROM enrollment e JOIN event p ON p.subscriber_id = e.subscriber_id "
            f"AND {plain('p.funnel')} = e.funnel AND p.type = '{ANSWER}' AND p.question = {r}.question "
            f"AND p.answer IS NOT NULL WHERE {enrolled} AND {if_answer} AND {other} AND {r_is_latest}",
            f"INSERT INTO tally ({_COLUMNS}) SELECT 'answer', e.funnel, {day}, {r}.question, {r}.answer, "
            f"'', '', {sign}, 0, 0 FROM enrollment e WHERE {enrolled} AND {if_answer} AND {r_is_latest}",
        ]

    moved = f"{d.differs('OLD.segment', 'NEW.segment')}"
    mine = f"subscriber_id = NEW.subscriber_id AND {plain('funnel')} = NEW.funnel"
    return {
        "tally_enrollment_insert": ("AFTER INSERT ON enrollment", "", [
            _cohort(d, "NEW", 1),
            # Events stored before the enrollment (rare: an answer or purchase that came
            # first) count as soon as it exists; the UPDATE is counted by the update trigger.
            f"UPDATE enrollment SET reached = reached | {_event_bits('NEW')} WHERE id = NEW.id "
            f"AND EXISTS (SELECT 1 FROM event p WHERE p.subscriber_id = NEW.subscriber_id AND {deeds})",
            _revenue(d, "NEW", 1),
            *_products(d, "NEW", 1),
            _latest_answers(d, "NEW", 1),
        ]),
        "tally_enrollment_update": (
            "AFTER UPDATE OF reached, segment ON enrollment",
            f"{d.differs('OLD.reached', 'NEW.reached')} OR {moved}",
            [
                _cohort(d, "OLD", -1),
                _cohort(d, "NEW", 1),
                _revenue(d, "OLD", -1, f"AND {moved}"),
                _revenue(d, "NEW", 1, f"AND {moved}"),
            ],
        ),
        "tally_enrollment_delete": ("AFTER DELETE ON enrollment", "", [
            _cohort(d, "OLD", -1),
            _revenue(d, "OLD", -1),
            *_products(d, "OLD", -1),
            _latest_answers(d, "OLD", -1),
        ]),
        "tally_subscriber_update": (
            "AFTER UPDATE OF source, utm_source ON subscriber",
            f"{d.differs('OLD.source', 'NEW.source')} OR {d.differs('OLD.utm_source', 'NEW.utm_source')}",
            [
                stmt
                for sign, r in ((-1, "OLD"), (1, "NEW"))
                for stmt in (
                    f"INSERT INTO tally ({_COLUMNS}) SELECT 'cohort', e.funnel, {d.day('e.created_at')}, "
                    f"coalesce(e.segment, ''), coalesce({r}.source, ''), coalesce({r}.utm_source, ''), "
                    f"CAST(e.reached AS VARCHAR(12)), {sign}, 0, 0 "
                    "FROM enrollment e WHERE e.subscriber_id = NEW.id",
                    f"INSERT INTO tally ({_COLUMNS}) SELECT 'revenue', e.funnel, {d.day('e.created_at')}, "
                    f"coalesce(e.segment, ''), coalesce({r}.source, ''), coalesce({r}.utm_source, ''), "
                    f"coalesce(p.currency, ''), {sign} * count(*), {sign} * coalesce(sum(p.amount), 0), "
                    f"{sign} * count(p.amount) FROM enrollment e JOIN event p ON {_counted('e')} "
                    "WHERE e.subscriber_id = NEW.id GROUP BY e.id, e.funnel, e.created_at, e.segment, "
                    "coalesce(p.currency, '')",
                )
            ],
        ),
        # The enrollments go first, while the subscriber (their source) is still there to
        # name their tallies; a foreign key's cascade would run after it is gone.
        "tally_subscriber_delete": ("BEFORE DELETE ON subscriber", "", [
            "DELETE FROM enrollment WHERE subscriber_id = OLD.id",
        ]),
        "tally_milestone_insert": (
            "AFTER INSERT ON milestone",
            "NEW.stage IN (" + ", ".join(f"'{s}'" for s in MILESTONE_BITS) + ")",
            [_set_bit(f"({stage_bit})", "id = NEW.enrollment_id")],
        ),
        # One trigger per kind of event, each with its WHEN: an open or a click, the events
        # that come most, run one statement, not every kind's (a plpgsql function pays for
        # each statement it starts, even one that finds nothing).
        "tally_event_acted": (
            "AFTER INSERT ON event",
            f"NEW.type IN ({_ACTED_TYPES}) AND NEW.step IS NOT NULL",
            [_set_bit(f"({_acted_bit('NEW.type')})",
                      "enrollment_id = (SELECT id FROM enrollment WHERE subscriber_id = NEW.subscriber_id "
                      f"AND {plain('funnel')} = NEW.funnel) AND step = NEW.step",
                      table="delivery", column="acted")],
        ),
        "tally_event_answer": (
            "AFTER INSERT ON event",
            f"NEW.type = '{ANSWER}'",
            [_set_bit(REACHED["answered"], mine), *answer("NEW", 1)],
        ),
        "tally_event_purchase": (
            "AFTER INSERT ON event",
            f"NEW.type = '{PURCHASE}'",
            [
                _set_bit(REACHED["purchased"], "subscriber_id = NEW.subscriber_id "
                         "AND (NEW.funnel IS NULL OR funnel = NEW.funnel) AND created_at <= NEW.at"),
                *purchase("NEW", 1),
            ],
        ),
        "tally_event_unsubscribe": (
            "AFTER INSERT ON event",
            f"NEW.type = '{UNSUBSCRIBE}'",
            [_set_bit(REACHED["unsubscribed"], mine)],
        ),
        # BEFORE: each deleted event is looked at with the ones deleted before it gone and
        # itself still there, on both databases (PostgreSQL runs AFTER row triggers once the
        # whole statement is done, when an erasure's other answers are gone too).
        "tally_event_delete": (
            "BEFORE DELETE ON event",
            f"OLD.type IN ('{ANSWER}', '{PURCHASE}')",
            [*(f"{stmt} AND OLD.type = '{PURCHASE}'" for stmt in purchase("OLD", -1)), *answer("OLD", -1)],
        ),
        "tally_delivery_insert": ("AFTER INSERT ON delivery", "", [
            _mail(d, "NEW", 1),
            # Events that name the step before the email exists (none the engine writes).
            "UPDATE delivery SET acted = (SELECT coalesce(sum(DISTINCT " + _acted_bit("p.type") + "), 0) "
            f"FROM event p WHERE p.subscriber_id = NEW.subscriber_id AND {plain('p.funnel')} = NEW.funnel "
            f"AND {plain('p.step')} = NEW.step AND p.type IN ({_ACTED_TYPES})) "
            "WHERE id = NEW.id AND EXISTS (SELECT 1 FROM event p WHERE p.subscriber_id = NEW.subscriber_id "
            f"AND {plain('p.funnel')} = NEW.funnel AND {plain('p.step')} = NEW.step)",
        ]),
        "tally_delivery_update": (
            "AFTER UPDATE OF status, acted ON delivery",
            f"{_status('OLD.status')} <> {_status('NEW.status')} OR OLD.acted <> NEW.acted",
            [_mail(d, "OLD", -1), _mail(d, "NEW", 1)],
        ),
        "tally_delivery_delete": ("AFTER DELETE ON delivery", "", [_mail(d, "OLD", -1)]),
    }


def _summed(*selects: str) -> str:
    """One INSERT of the signed tally rows the SELECTs give (kind, funnel, day, k1, k2, k3, k4,
    n), summed per key; a key whose rows cancel out is left out."""
    union = " UNION ALL ".join(selects)
    return (
        f"INSERT INTO tally ({_COLUMNS}) SELECT kind, funnel, day, k1, k2, k3, k4, sum(n), 0, 0 "
        f"FROM ({union}) AS c GROUP BY kind, funnel, day, k1, k2, k3, k4 HAVING sum(n) <> 0"
    )


def statement_trigger_names(prefix: str, table: str) -> tuple[str, str, str]:
    """The names of `once_a_statement`'s insert, update and delete triggers."""
    return f"{prefix}_{table}_insert", f"{prefix}_{table}_update", f"{prefix}_{table}_delete"


def once_a_statement(
    prefix: str, table: str, rows_of: Callable[[str, int, str], str], after_insert: Sequence[str] = ()
) -> dict[str, tuple[str, str, list[str]]]:
    """PostgreSQL triggers `<prefix>_<table>_insert|update|delete` that run once a statement,
    over the rows it wrote (its transition tables), for `per_statement` of `triggers`.

    `rows_of(r, sign, rows)` is a SELECT of the tally rows (kind, funnel, day, k1, k2, k3, k4,
    n) of the rows `rows` (`FROM new_rows r` or `FROM old_rows o`; `r` is their alias), each
    signed `sign`; each trigger appends them summed per key. An UPDATE takes back every row as it
    was and counts it as it is: a row whose key did not change cancels out and writes
    nothing, as a row trigger's WHEN would have. (Matching the rows before and after by id
    instead made PostgreSQL, which keeps no statistics of transition tables, join them row
    by row: 1.2 ms an email of the claim of 3,000.) `after_insert`: statements run after an
    insert's rows are counted.
    """
    insert, update, delete = statement_trigger_names(prefix, table)
    inserted, deleted = "FROM new_rows r", "FROM old_rows o"
    return {
        insert: (f"AFTER INSERT ON {table}", "NEW TABLE AS new_rows",
                 [_summed(rows_of("r", 1, inserted)), *after_insert]),
        update: (f"AFTER UPDATE ON {table}", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                 [_summed(rows_of("o", -1, deleted), rows_of("r", 1, inserted))]),
        delete: (f"AFTER DELETE ON {table}", "OLD TABLE AS old_rows",
                 [_summed(rows_of("o", -1, deleted))]),
    }


DELIVERY_TRIGGERS = statement_trigger_names("tally", "delivery")


def _mail_of(d: _Dialect, r: str, sign: int, rows: str) -> str:
    """The mail tally rows of the delivery rows `rows` (`r` is o or r), each signed `sign`."""
    return (
        f"SELECT 'mail' AS kind, {r}.funnel AS funnel, {d.day(f'{r}.created_at')} AS day, {r}.step AS k1, "
        f"{_status(f'{r}.status')} AS k2, CAST({r}.acted AS VARCHAR(12)) AS k3, '' AS k4, {sign} AS n {rows}"
    )


def _per_statement(d: _Dialect) -> dict[str, tuple[str, str, list[str]]]:
    """PostgreSQL's delivery triggers, once a statement over its rows (`once_a_statement`).

    The tick queues a thousand emails in one INSERT and records a group of outcomes in one
    UPDATE (engine/store/manyrows.py): a row trigger, a plpgsql call per row, cost the
    server about 35 µs an email queued and 80 µs an outcome recorded. These count the same,
    summed per key. (SQLite has only row triggers; its writes pay no call per row: `triggers`
    uses these on PostgreSQL only.)
    """
    same_email = (f"p.subscriber_id = {{r}}.subscriber_id AND {plain('p.funnel')} = {{r}}.funnel "
                  f"AND {plain('p.step')} = {{r}}.step")
    return once_a_statement("tally", "delivery", partial(_mail_of, d), after_insert=[
        # Events that name the step before the email exists (none the engine writes).
        "UPDATE delivery SET acted = (SELECT coalesce(sum(DISTINCT " + _acted_bit("p.type") + "), 0) "
        f"FROM event p WHERE {same_email.format(r='delivery')} AND p.type IN ({_ACTED_TYPES})) "
        "WHERE id IN (SELECT r.id FROM new_rows r WHERE EXISTS (SELECT 1 FROM event p WHERE "
        f"{same_email.format(r='r')}))",
    ])


def _sqlite(name: str, when_on: str, condition: str, statements: list[str]) -> list[str]:
    when = f" WHEN {condition}" if condition else ""
    body = "".join(f"  {stmt};\n" for stmt in statements)
    return [f"CREATE TRIGGER {name} {when_on} FOR EACH ROW{when}\nBEGIN\n{body}END"]


def _postgresql(name: str, when_on: str, condition: str, statements: list[str]) -> list[str]:
    when = f" WHEN ({condition})" if condition else ""
    returned = "OLD" if when_on.startswith("BEFORE") else "NULL"
    body = "".join(f"  {stmt};\n" for stmt in statements)
    return [
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body}  RETURN {returned};\nEND\n$$",
        f"CREATE TRIGGER {name} {when_on} FOR EACH ROW{when} EXECUTE FUNCTION {name}()",
    ]


def _postgresql_per_statement(name: str, when_on: str, referencing: str, statements: list[str]) -> list[str]:
    body = "".join(f"  {stmt};\n" for stmt in statements)
    return [
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body}  RETURN NULL;\nEND\n$$",
        f"CREATE TRIGGER {name} {when_on} REFERENCING {referencing} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
    ]


Bodies = Mapping[str, tuple[str, str, list[str]]]


def triggers(dialect: str, bodies: Bodies, per_statement: Bodies | None = None,
             only: Collection[str] | None = None) -> list[str]:
    """The statements that create the triggers of `bodies` (name -> (when and on what, condition,
    statements)) on `dialect` ('sqlite' or 'postgresql'): these tallies' and the daily ones'.

    On PostgreSQL a trigger of `per_statement` (name -> (when and on what, the transition
    tables it names, statements)) runs once a statement, over all its rows, in place of the
    row trigger of the same name. `only`: just the triggers of these names.
    """
    chosen = {name: body for name, body in bodies.items() if only is None or name in only}
    if dialect == "sqlite":
        return [ddl for name, (when_on, condition, stmts) in chosen.items()
                for ddl in _sqlite(name, when_on, condition, stmts)]
    instead = per_statement or {}
    return [ddl for name, (when_on, condition, stmts) in chosen.items()
            for ddl in (_postgresql_per_statement(name, *instead[name]) if name in instead
                        else _postgresql(name, when_on, condition, stmts))]


def trigger_ddl(dialect: str, only: Collection[str] | None = None, per_row: bool = False) -> list[str]:
    """The statements that create every tally trigger (`only` these) on `dialect` ('sqlite' or
    'postgresql'); `per_row`: PostgreSQL's delivery triggers as they were before migration 0009,
    once a row."""
    d = _Dialect(dialect)
    return triggers(dialect, _bodies(d), None if per_row else _per_statement(d), only)


def install(conn: Connection) -> None:
    """Create the tally triggers (a migration does, once)."""
    for ddl in trigger_ddl(conn.dialect.name):
        conn.exec_driver_sql(ddl)


def uninstall(conn: Connection) -> None:
    """Drop the tally triggers (a downgrade; a bulk load that rebuilds the tallies after)."""
    drop(conn, TRIGGERS)


def drop(conn: Connection, names: Iterable[str]) -> None:
    """Drop the triggers `names` (named `<purpose>_<table>_<event>`, as `triggers` makes them)."""
    for name in names:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        else:
            table = name.split("_")[1]
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")
