"""Adding a lead to a funnel: the one way in, shared by the signup form, imports and the admin API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from engine.flow.state import EventType, Stage
from engine.flow.step import start
from engine.mail.names import tidy
from engine.sequences.plan import Plan
from engine.store import queries, subscribers
from engine.store.db import DbConnection
from engine.store.rows import email_hash, normalize_email
from engine.store.signups import enroll, enroll_new, enrollment_row, enrollment_stages, record_consents

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


@dataclass(frozen=True)
class Lead:
    """A person to put into a funnel, with what they told us and where they came from."""

    email: str
    name: str = ""
    locale: str | None = None
    first_name: str = ""  # as given; templates never guess over it (engine/mail/names.py)
    last_name: str = ""
    timezone: str | None = None
    source: str | None = None
    utm: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)
    magnet: str | None = None
    answers: Mapping[str, str] = field(default_factory=dict)  # survey answers given on the form


@dataclass(frozen=True)
class Proof:
    """The consent record of this signup: how it came in and the wording the person saw."""

    kind: str  # signup|import|confirm|api
    form: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    wording: str | None = None


@dataclass(frozen=True)
class Added:
    """What adding a lead did."""

    subscriber_id: int | None  # None: the address is suppressed and nothing was written
    enrollment_id: int | None
    new_subscriber: bool
    new_enrollment: bool


def answer_problems(plan: Plan, answers: Mapping[str, str]) -> list[str]:
    """What is wrong with survey answers for `plan`, one message each (empty when all is well)."""
    if not answers:
        return []
    if plan.survey is None:
        return [f"funnel '{plan.funnel}' has no survey; leave out the answers"]
    problems = []
    questions = {q.id: q for q in plan.survey.questions}
    for question, answer in answers.items():
        known = questions.get(question)
        if known is None:
            problems.append(
                f"unknown question '{question}'; the questions are {', '.join(sorted(questions))}"
            )
        elif answer not in {a for a, _ in known.answers}:
            allowed = ", ".join(a for a, _ in known.answers)
            problems.append(f"'{answer}' is not an answer of '{question}'; write one of {allowed}")
    return problems


def record_consent(conn: DbConnection, subscriber_id: int, funnel: str, proof: Proof, now: datetime) -> None:
    """Keep the proof of a signup, confirmation or import."""
    record_consents(conn, [_consent_row(subscriber_id, funnel, proof, now)])


def add_lead(conn: DbConnection, plan: Plan, lead: Lead, proof: Proof, now: datetime) -> Added:
    """Add or update the subscriber and enroll them in `plan`'s funnel; a repeat changes nothing twice.

    For operators (imports, the admin API): a known subscriber's details are updated. A
    public form uses `add_new_leads`, which leaves them alone. A suppressed address
    (bounced, complained, forgotten) is not written at all.
    """
    if queries.is_suppressed(conn, lead.email):
        return Added(None, None, False, False)
    values = {
        "email": lead.email,
        "name": lead.name,
        **name_columns(lead),
        "locale": lead.locale,
        "timezone": lead.timezone,
        "source": lead.source,
        "fields": dict(lead.fields),
        **{k: v for k, v in lead.utm.items() if k in UTM_KEYS},
    }
    subscriber, new_subscriber = subscribers.upsert_subscriber(conn, values, now)
    record_consent(conn, subscriber, plan.funnel, proof, now)
    enrollment, new_enrollment = enroll(
        conn, subscriber, plan.funnel, start(plan, now), now, magnet=lead.magnet
    )
    for question, answer in lead.answers.items():
        queries.record_event(
            conn, subscriber, "answer", now, funnel=plan.funnel, question=question, answer=answer
        )
    return Added(subscriber, enrollment, new_subscriber, new_enrollment)


def add_new_leads(
    conn: DbConnection, signups: Sequence[tuple[Plan, Lead, Proof]], now: datetime
) -> list[Added]:
    """`add_lead` for many signups at once, in a handful of statements, leaving known people as they are.

    The web side collects the signups that arrive together (web/writer.py): each costs a
    share of ~8 statements instead of ~10 of its own. Known subscribers keep their
    details; the same address twice in one call is one subscriber. Answers given on a
    form are recorded one by one (few signups have them).
    """
    keys = [normalize_email(lead.email)[1] for _, lead, _ in signups]
    hashes = [email_hash(lead.email) for _, lead, _ in signups]
    blocked = queries.suppressed_hashes(conn, hashes)
    wanted: dict[str, dict[str, object]] = {}
    for (_, lead, _), key, hashed in zip(signups, keys, hashes, strict=True):
        if hashed not in blocked and key not in wanted:
            wanted[key] = _subscriber_row(lead, key, now)
    # Most signups are new addresses: insert all, and look up only those already there.
    fresh = subscribers.insert_new_subscribers(conn, list(wanted.values()))
    ids = {**fresh, **subscribers.subscriber_ids(conn, [k for k in wanted if k not in fresh])}
    consents: list[dict[str, object]] = []
    pairs: dict[tuple[int, str], dict[str, object]] = {}
    for (plan, lead, proof), key, hashed in zip(signups, keys, hashes, strict=True):
        if hashed in blocked:
            continue
        consents.append(_consent_row(ids[key], plan.funnel, proof, now))
        pairs.setdefault((ids[key], plan.funnel),
                         enrollment_row(ids[key], plan.funnel, start(plan, now), now, lead.magnet))
    record_consents(conn, consents)
    new_pairs = enroll_new(conn, list(pairs.values()))
    enrolled = dict(new_pairs)
    waiting: set[tuple[int, str]] = set()  # known enrollments still waiting for the double opt-in
    if len(new_pairs) < len(pairs):
        known = enrollment_stages(conn, {pair[0] for pair in pairs if pair not in new_pairs})
        for pair, (enrollment, stage) in known.items():
            if pair in pairs:
                enrolled[pair] = enrollment
                if pair not in new_pairs and stage == Stage.CONFIRMING.value:
                    waiting.add(pair)
    added = []
    seen: set[object] = set()
    for (plan, lead, _), key, hashed in zip(signups, keys, hashes, strict=True):
        if hashed in blocked:
            added.append(Added(None, None, False, False))
            continue
        subscriber, pair = ids[key], (ids[key], plan.funnel)
        new_subscriber = key in fresh and key not in seen
        new_enrollment = pair in new_pairs and pair not in seen
        seen.update((key, pair))
        if new_enrollment:
            for question, answer in lead.answers.items():
                queries.record_event(
                    conn, subscriber, "answer", now, funnel=plan.funnel, question=question, answer=answer
                )
        elif pair in waiting or (pair in new_pairs and plan.double_opt_in):
            # A repeat while the double opt-in waits: step() may send the confirmation once
            # more (docs/interpreter.md).
            queries.record_event(conn, subscriber, EventType.SIGNED_UP_AGAIN.value, now, funnel=plan.funnel)
        added.append(Added(subscriber, enrolled[pair], new_subscriber, new_enrollment))
    return added


def _subscriber_row(lead: Lead, key: str, now: datetime) -> dict[str, object]:
    """A new subscriber's row; every row has the same keys, as one multi-row INSERT needs."""
    return {
        "email": normalize_email(lead.email)[0],
        "email_key": key,
        "name": lead.name,
        **name_columns(lead),
        "locale": lead.locale or subscribers.DEFAULT_LOCALE,
        "timezone": lead.timezone or subscribers.DEFAULT_TIMEZONE,
        "source": lead.source,
        "fields": dict(lead.fields),
        **{k: lead.utm.get(k) or None for k in UTM_KEYS},
        "created_at": now,
        "updated_at": now,
    }


def name_columns(lead: Lead) -> dict[str, str | None]:
    """The first and last name columns: as given, on one line; None when not given."""
    return {"first_name": tidy(lead.first_name) or None, "last_name": tidy(lead.last_name) or None}


def _consent_row(subscriber: int, funnel: str, proof: Proof, now: datetime) -> dict[str, object]:
    return {
        "subscriber_id": subscriber,
        "kind": proof.kind,
        "at": now,
        "funnel": funnel,
        "form": proof.form[:200] if proof.form else None,
        "ip": proof.ip[:45] if proof.ip else None,
        "user_agent": proof.user_agent[:500] if proof.user_agent else None,
        "wording": proof.wording[:2000] if proof.wording else None,
    }
