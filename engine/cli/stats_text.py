"""How `funnel stats` prints a report: aligned tables per funnel, the steps (or products) as CSV rows.

Both read `engine.stats.report.funnel_report`'s dict and nothing else, so the text shows
exactly the numbers `--json` and `/api/stats` give.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from engine.cli.broadcasts_text import report_lines as broadcast_rows

# The --csv columns, one row per (funnel, step); docs/stats.md explains each.
CSV_COLUMNS = (
    "funnel", "step", "path", "segment", "role", "subject", "paused", "paused_detail",
    "sent", "delivered", "bounced", "failed", "pending", "opened", "clicked", "unsubscribed", "complained",
    "delivered_rate", "bounced_rate", "opened_rate", "clicked_rate", "unsubscribed_rate", "complained_rate",
)
# The --csv --products columns, one row per (funnel, product), then a revenue column per currency.
PRODUCT_CSV_COLUMNS = ("funnel", "product", "customer_path", "customers", "purchases")
# Step columns that show a rate over sent beside the count.
_WITH_RATE = ("delivered", "bounced", "opened", "clicked", "unsubscribed", "complained")
WEAK_OPENS = ("* opened is a weak signal: mail privacy features and image proxies fetch the pixel "
              "whether or not anyone reads; judge an email by its clicks")


def report_lines(report: Mapping[str, Any]) -> Iterator[str]:
    """The whole report as lines of text: one block of tables per funnel."""
    since = report["since"]
    scope = (f"signups since {since} (stages); mail and events since {since} (steps)" if since
             else "everything in the database")
    if not report["funnels"]:
        yield f"no funnels: no sequence files and nothing in the database ({scope})"
        return
    for i, funnel in enumerate(report["funnels"]):
        if i:
            yield ""
        yield from _funnel_lines(funnel, scope)


def csv_rows(report: Mapping[str, Any]) -> Iterator[list[str]]:
    """The steps of every funnel as CSV rows, header first."""
    yield list(CSV_COLUMNS)
    for funnel in report["funnels"]:
        for step in funnel["steps"]:
            yield [_cell(step.get(column, funnel["funnel"] if column == "funnel" else None))
                   for column in CSV_COLUMNS]


def product_csv_rows(report: Mapping[str, Any]) -> Iterator[list[str]]:
    """The products of every funnel as CSV rows, header first: a `revenue_XXX` column per currency."""
    currencies = sorted({c for f in report["funnels"] for p in f["products"] for c in p["revenue"]})
    yield [*PRODUCT_CSV_COLUMNS, *(f"revenue_{c}" if c else "revenue" for c in currencies)]
    for funnel in report["funnels"]:
        for product in funnel["products"]:
            yield [funnel["funnel"], *(_cell(product[c]) for c in PRODUCT_CSV_COLUMNS[1:]),
                   *(str(product["revenue"].get(c, 0.0)) for c in currencies)]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _funnel_lines(funnel: Mapping[str, Any], scope: str) -> Iterator[str]:
    title = f"{funnel['name']} ({funnel['funnel']})"
    yield f"{title}: {scope}"
    yield "=" * len(title)
    yield ""
    yield "Stages"
    rows = [[s["label"], f"{s['count']:,}", _percent(s["conversion"])] for s in funnel["stages"]]
    yield from _table(["stage", "count", "from the stage before"], rows, right={1, 2})
    yield (f"  win-back: {funnel['winback']:,}   sunset (no more marketing email): {funnel['sunset']:,}   "
           f"unsubscribed: {funnel['unsubscribed']:,}")
    if funnel["answers"]:
        yield ""
        yield "Survey answers (each person's latest answer)"
        rows = [[a["question"], a["label"], f"{a['count']:,}"] for a in funnel["answers"]]
        yield from _table(["question", "answer", "people"], rows, right={2})
    if funnel["segments"]:
        yield ""
        yield "Segments (count, and share of the stage before)"
        labels = [s["label"] for s in funnel["stages"]]
        columns = [[_count_and_share(stage) for stage in segment["stages"]] for segment in funnel["segments"]]
        rows = [[label, *(column[i] for column in columns)] for i, label in enumerate(labels)]
        yield from _table(["stage", *(s["name"] for s in funnel["segments"])], rows,
                          right=set(range(1, len(columns) + 1)))
    if funnel["sources"]:
        yield ""
        yield "Sources (which form or channel brings buyers, not just leads)"
        counts = ("signed_up", "confirmed", "purchased", "customers")
        rows = [[s["source"] or "-", s["utm_source"] or "-", *(f"{s[c]:,}" for c in counts),
                 _money(s["revenue"])] for s in funnel["sources"]]
        header = ["source", "utm_source", "signed up", "confirmed", "purchased", "customers", "revenue"]
        yield from _table(header, rows, right={2, 3, 4, 5, 6})
    yield ""
    yield (f"Revenue: {_money(funnel['revenue'])} from {funnel['purchases']:,} "
           f"purchase{'s' if funnel['purchases'] != 1 else ''}; "
           f"per subscriber who signed up: {_money(funnel['revenue_per_subscriber'])}")
    if funnel["products"]:
        yield ""
        yield "Products (customers: people who bought it; the customer path a purchase of it starts)"
        rows = [[p["name"], f"{p['customers']:,}", f"{p['purchases']:,}", _money(p["revenue"]),
                 _starts(p)] for p in funnel["products"]]
        yield from _table(["product", "customers", "purchases", "revenue", "customer path"], rows,
                          right={1, 2, 3})
    yield ""
    yield "Emails (rates over sent)"
    rows = [_step_row(step) for step in funnel["steps"]]
    rated = [c + ("*" if c == "opened" else "") for c in _WITH_RATE]
    header = ["step", "path", "segment", "sent", *rated, "failed", "pending", ""]
    yield from _table(header, rows, right=set(range(3, 12)))
    yield WEAK_OPENS
    if funnel.get("broadcasts"):
        yield ""
        yield "Broadcasts (rates over sent; purchases: by recipients within its attribution window)"
        yield from broadcast_rows(funnel["broadcasts"])
    for pause in funnel["paused"]:
        yield f"PAUSED {pause['step']} since {pause['paused_at']} ({pause['metric']}): {pause['detail']}"
    if funnel["paused"]:
        yield f"  resume with: funnel resume {funnel['funnel']} STEP"


def _step_row(step: Mapping[str, Any]) -> list[str]:
    # A rate beside every count that is not 0: a column of "0 (0.0%)" hides the numbers that matter.
    counts = [f"{step[c]:,} ({_percent(step[c + '_rate'])})" if step[c] and step["sent"] else f"{step[c]:,}"
              for c in _WITH_RATE]
    where = step["path"] or "(no longer in the file)"
    return [step["step"], where, step["segment"] or "-", f"{step['sent']:,}", *counts, f"{step['failed']:,}",
            f"{step['pending']:,}", "PAUSED" if step["paused"] else ""]


def _starts(product: Mapping[str, Any]) -> str:
    path, name = product["customer_path"], product["customer_path_name"]
    return f"{name} ({path})" if path else name


def _count_and_share(stage: Mapping[str, Any]) -> str:
    share = stage["conversion"]
    return f"{stage['count']:,}" + (f" ({_percent(share)})" if share is not None else "")


def _percent(share: float | None) -> str:
    return "" if share is None else f"{share * 100:.1f}%"


def _money(amounts: Mapping[str, float]) -> str:
    if not amounts:
        return "0"
    return ", ".join(f"{currency} {amount:,.2f}".strip() for currency, amount in amounts.items())


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> Iterator[str]:
    """Aligned columns, two spaces apart, indented; numbers (the `right` columns) flush right."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        yield ("  " + "  ".join(cells)).rstrip()
