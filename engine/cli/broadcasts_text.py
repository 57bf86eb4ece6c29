"""How `funnel broadcast list|audience|stats` print: lines of text from engine/stats/broadcasts.py's dicts.

The text shows exactly the numbers `--json` and `/api/broadcasts` give.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from engine.flow.broadcasts import LEFT_OUT

_RATED = ("delivered", "opened", "clicked", "unsubscribed", "complained", "bounced")


def list_lines(rows: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """One line per broadcast: id, funnel, role, when, state, recipients, sent so far."""
    if not rows:
        yield "no broadcasts: add a file to broadcasts/ (docs/broadcasts.md)"
        return
    header = ["broadcast", "funnel", "role", "when", "state", "recipients", "sent"]
    body = [[r["broadcast"], r["funnel"] or "-", r["role"] or "-",
             r["when"] or "(its file was removed)", r["state"], f"{r['recipients']:,}", f"{r['sent']:,}"]
            for r in rows]
    yield from table(header, body, right={5, 6})
    for r in rows:
        if r.get("held"):
            yield f"held: {r['held']}"


def audience_lines(found: Mapping[str, Any]) -> Iterator[str]:
    """The audience as it stands now: who matches, who is left out and why, when it goes, where."""
    matching = found["matching"]
    of = f"of {matching:,}"
    yield (f"{found['broadcast']} ({found['role']}) to funnel '{found['funnel']}', at {found['when']}: "
           f"{found['state']}")
    yield f"  {matching:,} match its audience"
    gone = found["gone"]
    if gone:
        why = ", ".join(f"{n:,} {status}" for status, n in gone.items())
        yield f"  {sum(gone.values()):,} {of} left out for good: {why}"
    left_out = found["left_out"]
    for stage, n in left_out.items():
        yield f"  {n:,} {of} left out at their time unless they move on first: {LEFT_OUT[stage]}"
    for reason, n in found["ratio_skipped"].items():
        yield f"  {n:,} {of} skipped: {reason}"
    estimate = f" (estimated from a sample of {found['sample']:,})" if found["sample"] else ""
    yield f"  {found['recipients']:,} would get it{estimate}"
    if found["first_due"]:
        first, last = _at(found["first_due"]), _at(found["last_due"])
        yield f"  goes at {first}" if first == last else f"  goes from {first} to {last}"
        zones = [f"{z['timezone']} {z['count']:,}" for z in found["timezones"]]
        if found["other_timezones"]:
            zones.append(f"other zones {found['other_timezones']:,}")
        yield f"  time zones: {', '.join(zones)}"


def stats_lines(numbers: Mapping[str, Any]) -> Iterator[str]:
    """One broadcast's numbers: state, recipients, skips, its email's numbers, the purchases it brought."""
    yield (f"{numbers['broadcast']} ({numbers['role']}) to funnel '{numbers['funnel']}', "
           f"at {numbers['when']}: {numbers['state']}")
    if numbers["scheduled_at"]:
        yield f"  scheduled {_at(numbers['scheduled_at'])} by {numbers['scheduled_by'] or '-'}"
    if numbers["cancelled_at"]:
        yield f"  cancelled {_at(numbers['cancelled_at'])}"
    by_status = numbers["recipients_by_status"]
    statuses = ", ".join(f"{n:,} {status}" for status, n in by_status.items())
    yield f"  recipients: {numbers['recipients']:,}" + (f" ({statuses})" if statuses else "")
    for reason, n in numbers["skipped_because"].items():
        yield f"    skipped {n:,}: {reason}"
    email = numbers["email"]
    yield "  " + "  ".join([f"sent {email['sent']:,}", *(_rated(email, name) for name in _RATED),
                            f"failed {email['failed']:,}", f"pending {email['pending']:,}"])
    buyers = numbers["buyers"]
    yield (f"  purchases within {numbers['attribution']} of it: {numbers['purchases']:,} by "
           f"{buyers:,} recipient{'s' if buyers != 1 else ''}; revenue {money(numbers['revenue'])}")


def report_lines(broadcasts: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """The `funnel stats` section: one row per broadcast of the funnel."""
    rated = [c + ("*" if c == "opened" else "") for c in _RATED[:5]]
    header = ["broadcast", "state", "recipients", "sent", *rated, "purchases", "revenue"]
    rows = [[b["broadcast"], b["state"], f"{b['recipients']:,}", f"{b['email']['sent']:,}",
             *(_count(b["email"], c) for c in _RATED[:5]), f"{b['purchases']:,}", money(b["revenue"])]
            for b in broadcasts]
    yield from table(header, rows, right=set(range(2, 11)))


def _rated(email: Mapping[str, Any], name: str) -> str:
    return f"{name}{'*' if name == 'opened' else ''} {_count(email, name)}"


def _count(email: Mapping[str, Any], name: str) -> str:
    count = email[name]
    if count and email["sent"]:
        return f"{count:,} ({email[name + '_rate'] * 100:.1f}%)"
    return f"{count:,}"


def money(amounts: Mapping[str, float]) -> str:
    """'EUR 20.00, USD 5.00'; '0' for none."""
    if not amounts:
        return "0"
    return ", ".join(f"{currency} {amount:,.2f}".strip() for currency, amount in amounts.items())


def _at(iso: str) -> str:
    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M} UTC"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> Iterator[str]:
    """Aligned columns, two spaces apart, indented; the `right` columns flush right."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        yield ("  " + "  ".join(cells)).rstrip()
