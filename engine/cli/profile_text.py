"""How `funnel subscribers show` prints a Profile: aligned text in the subscriber's zone, or JSON in UTC."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from engine.flow.explain import Explanation, when
from engine.sequences.window import zone
from engine.store.db import Row
from engine.subscribers.leads import UTM_KEYS
from engine.subscribers.profile import EnrollmentView, Profile

_HIDDEN = ("email_key", "updated_at")  # internal columns, nothing a person needs to read
_BROUGHT = {"added": "added", "changed": "brought the new text of"}  # what a release did to an email


def profile_lines(profile: Profile, now: datetime) -> Iterator[str]:
    """The profile as lines of text; every time in the subscriber's zone, with the zone's name."""
    sub = profile.subscriber
    tz = sub["timezone"]
    yield f"{sub['name']} <{sub['email']}>" if sub["name"] else sub["email"]
    yield (f"  status {sub['status']}; locale {sub['locale']}; time zone {tz}; "
           f"since {when(sub['created_at'], tz)}")
    yield "  " + _names(profile)
    origin = [f"source {sub['source']}"] if sub["source"] else []
    origin += [f"{key} {sub[key]}" for key in UTM_KEYS if sub[key]]
    if origin:
        yield "  " + "; ".join(origin)
    if sub["fields"]:
        yield "  fields: " + ", ".join(f"{k}={v}" for k, v in sorted(sub["fields"].items()))
    local = f"({zone(tz).key} time)"
    yield f"consent {local}:" if profile.consents else "consent: none recorded"
    for consent in profile.consents:
        where = [f"{k} {consent[k]}" for k in ("funnel", "form", "ip") if consent[k]]
        yield f"  {_short(consent['at'], tz)}  {consent['kind']}  " + ", ".join(where)
    tags = ", ".join(t["name"] for t in profile.tags)
    yield f"tags: {tags or 'none'}"
    yield f"events {local}:" if profile.events else "events: none"
    for event in profile.events:
        scope = f"  (funnel {event['funnel']})" if event["funnel"] else ""
        yield f"  {_short(event['at'], tz)}  {_event(event)}{scope}"
    if not profile.enrollments:
        yield "funnels: none"
    for view in profile.enrollments:
        yield from _enrollment(view, profile, tz)


def _names(profile: Profile) -> str:
    """The names given, and the first name emails use (taken from the name only where safe)."""
    sub = profile.subscriber
    labels = (("first name", "first_name"), ("last name", "last_name"))
    given = [f"{label} {sub[key]}" for label, key in labels if sub[key]]
    used = profile.first_name_in_emails
    if sub["first_name"]:
        return "; ".join(given)
    shown = f"'{used}', from the name" if used else "none (templates write their fallback)"
    return "; ".join([*given, f"first name in emails {shown}"])


def _event(event: Row) -> str:
    details = []
    if event["question"]:
        details.append(f"{event['question']}={event['answer']}")
    if event["product"]:
        details.append(str(event["product"]))
    if event["amount"] is not None:
        details.append(f"{event['amount']:g} {event['currency'] or ''}".strip())
    if event["name"]:
        details.append(str(event["name"]))
    return " ".join([event["type"], *details])


def _enrollment(view: EnrollmentView, profile: Profile, tz: str) -> Iterator[str]:
    row = view.row
    position = [f"stage {row['stage']}"]
    position += [f"{key} {row[key]}" for key in ("segment", "step", "magnet") if row[key]]
    if row["reason"]:
        position.append(f"ended: {row['reason']}")
    yield f"funnel {row['funnel']}: " + ", ".join(position)
    if view.deliveries:
        table = [["decided at", "step", "status", "attempts", "sent at", "release", "last reply"]]
        for d in view.deliveries:
            sent = _short(d["sent_at"], tz) if d["sent_at"] else "-"
            reply = f"{d['last_code'] or ''} {d['last_reply'] or ''}".strip() or "-"
            step = f"{d['step']} ({d['variant']})" if d.get("variant") else d["step"]  # an experiment's
            table.append([_short(d["created_at"], tz), step, d["status"], str(d["attempts"]), sent,
                          d["release"] or "-", reply])
        yield f"  emails ({zone(tz).key} time):"
        yield from _aligned(table, "    ")
        yield from _releases(view, profile, tz)
    else:
        yield "  emails: none yet"
    if view.late:
        yield f"  survey: {view.late}"
    yield f"  next: {_next(view.next, tz)}"
    yield f"  why:  {view.next.reason}"


def _releases(view: EnrollmentView, profile: Profile, tz: str) -> Iterator[str]:
    """Which files the emails were rendered from: each release, when it went live, what it brought."""
    brought: dict[str, list[str]] = {}
    lived: dict[str, datetime] = {}
    for delivery in view.deliveries:
        origin = profile.origin(delivery)
        if origin is not None:
            lived[origin.release] = origin.went_live_at
            news = brought.setdefault(origin.release, [])
            if origin.news:
                news.append(f"{_BROUGHT[origin.news]} '{delivery['step']}'")
    if lived:
        yield "  releases (the files those emails were rendered from):"
    for release, at in sorted(lived.items(), key=lambda item: item[1]):
        yield f"    {release}  live since {_short(at, tz)}" + "".join(f"; {n}" for n in brought[release])


def _short(at: datetime, tz: str) -> str:
    return f"{at.astimezone(zone(tz)):%a %Y-%m-%d %H:%M}"


def _next(found: Explanation, tz: str) -> str:
    if found.step is None:
        return "nothing planned"
    if found.at is None:
        return f"'{found.step.id}' once the event it waits for happens"
    return f"'{found.step.id}' at {when(found.at, tz)}"


def _aligned(table: Sequence[Sequence[str]], indent: str) -> Iterator[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        yield (indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))).rstrip()


def profile_json(profile: Profile) -> dict[str, Any]:
    """The profile as JSON-ready data; times in ISO 8601 UTC."""
    subscriber = {k: v for k, v in profile.subscriber.items() if k not in _HIDDEN}
    subscriber["first_name_in_emails"] = profile.first_name_in_emails
    data: dict[str, Any] = _plain({
        "subscriber": subscriber,
        "consents": [dict(c) for c in profile.consents],
        "tags": [dict(t) for t in profile.tags],
        "events": [dict(e) for e in profile.events],
        "releases": [{"id": r["id"], "went_live_at": r["went_live_at"]} for r in profile.releases.values()],
        "enrollments": [
            {**dict(v.row), "deliveries": [dict(d) for d in v.deliveries],
             "next": {"step": v.next.step.id if v.next.step else None, "at": v.next.at,
                      "reason": v.next.reason},
             "late_answer": v.late}
            for v in profile.enrollments],
    })
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
