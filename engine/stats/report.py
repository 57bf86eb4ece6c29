"""A funnel's numbers as one JSON-ready dict: what `funnel stats`, `/api/stats` and the dashboard show.

The shape is documented in docs/stats.md; the three readers share it so that the number
a marketer sees in the dashboard is the number the API returns and the CLI prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from engine.errors import UnknownFunnelError
from engine.sequences.plan import Plan
from engine.store.db import DbConnection
from engine.store.funnelstats import AnswerCount, FunnelNumbers, SourceNumbers, StageCounts, funnel_numbers
from engine.store.pauses import pauses
from engine.store.products import ProductSales, product_sales
from engine.store.reports import funnel_names
from engine.store.stepstats import StepCounts, step_counts

STAGE_LABELS = {
    "signed_up": "Signed up",
    "confirmed": "Confirmed",
    "answered": "Answered the survey",
    "nurture": "In nurture",
    "sales": "Reached sales",
    "purchased": "Purchased",
    "customers": "Customers",
}
NO_SEGMENT = "no segment yet"
NO_PRODUCT = "no product given"
OWN_SEGMENT = "the buyer's own segment"
NO_PATH = "none: no sales path exits on it"
SINCE_HELP = "write a date like 2026-03-01 (midnight UTC) or a time like 2026-03-01T09:00+01:00"


def parse_since(text: str) -> datetime:
    """A --since / ?since= value as an aware UTC time; ValueError saying what to write."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a date; {SINCE_HELP}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def funnel_report(
    conn: DbConnection,
    plans: Mapping[str, Plan],
    funnel: str | None = None,
    since: datetime | None = None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Every funnel's numbers (or one's); raises UnknownFunnelError naming the known funnels.

    Stage counts are of the cohort that signed up from `since` on; step counts are of the
    mail decided from `since` on and what its recipients did with it.
    """
    known = sorted(set(plans) | set(funnel_names(conn)))
    if funnel is not None and funnel not in known:
        raise UnknownFunnelError(funnel, known)
    numbers = funnel_numbers(conn, funnel, since)
    sales: dict[str, list[ProductSales]] = {}
    for bought in product_sales(conn, funnel, since):
        sales.setdefault(bought.funnel, []).append(bought)
    steps: dict[str, dict[str, StepCounts]] = {}
    for counts in step_counts(conn, funnel, since):
        steps.setdefault(counts.funnel, {})[counts.step] = counts
    paused: dict[str, list[dict[str, Any]]] = {}
    for row in pauses(conn, funnel):
        if row["resumed_at"] is None:
            paused.setdefault(row["funnel"], []).append(
                {"step": row["step"], "metric": row["metric"], "detail": row["detail"],
                 "paused_at": row["paused_at"].isoformat()}
            )
    return {
        "generated_at": now.isoformat(),
        "since": since.isoformat() if since else None,
        "funnels": [
            _funnel(name, plans.get(name), numbers.get(name) or FunnelNumbers(name), sales.get(name, []),
                    steps.get(name, {}), paused.get(name, []))
            for name in ([funnel] if funnel is not None else known)
        ],
    }


def stage_rows(counts: StageCounts) -> list[dict[str, Any]]:
    """The main stages with their labels and conversions from the stage before."""
    return [{"stage": name, "label": STAGE_LABELS[name], "count": count, "conversion": rate}
            for name, count, rate in counts.conversions()]


def _funnel(
    name: str,
    plan: Plan | None,
    numbers: FunnelNumbers,
    sales: list[ProductSales],
    steps: Mapping[str, StepCounts],
    paused: list[dict[str, Any]],
) -> dict[str, Any]:
    totals = numbers.totals
    return {
        "funnel": name,
        "name": plan.name if plan else name,
        "stages": stage_rows(totals),
        "answers": _answers(plan, numbers.answers),
        "segments": _segments(plan, numbers.segments),
        "sources": [
            {"source": source, "utm_source": utm, "signed_up": s.counts.signed_up,
             "confirmed": s.counts.confirmed, "purchased": s.counts.purchased,
             "customers": s.counts.customers, "revenue": dict(sorted(s.revenue.items()))}
            for (source, utm), s in sorted(numbers.sources.items(), key=_biggest_first)
        ],
        "revenue": dict(sorted(numbers.revenue.items())),
        "revenue_per_subscriber": dict(sorted(numbers.revenue_per_subscriber().items())),
        "purchases": numbers.purchases,
        "products": _products(plan, sales),
        "winback": totals.winback,
        "sunset": totals.sunset,
        "unsubscribed": totals.unsubscribed,
        "steps": _steps(name, plan, steps, {p["step"]: p["detail"] for p in paused}),
        "paused": paused,
    }


def _biggest_first(item: tuple[tuple[str | None, str | None], SourceNumbers]) -> tuple[int, str, str]:
    (source, utm), numbers = item
    return -numbers.counts.signed_up, source or "", utm or ""


def _answers(plan: Plan | None, found: list[AnswerCount]) -> list[dict[str, Any]]:
    """The survey's answers in file order (0 for those nobody gave), then answers no longer in it."""
    counts = {(a.question, a.answer): a.count for a in found}
    rows: list[dict[str, Any]] = []
    for question in plan.survey.questions if plan and plan.survey else ():
        for answer, label in question.answers:
            rows.append({"question": question.id, "answer": answer, "label": label,
                         "count": counts.pop((question.id, answer), 0)})
    rows += [{"question": q, "answer": a, "label": a, "count": n} for (q, a), n in sorted(counts.items())]
    return rows


def _segments(plan: Plan | None, found: Mapping[str | None, StageCounts]) -> list[dict[str, Any]]:
    """The funnel's segments in file order, then segments no longer in it, then those without one."""
    left = dict(found)
    rows: list[dict[str, Any]] = [
        {"segment": s.id, "name": s.name, "stages": stage_rows(left.pop(s.id, StageCounts()))}
        for s in (plan.segments if plan else ())
    ]
    for segment in sorted(k for k in left if k is not None):
        rows.append({"segment": segment, "name": segment, "stages": stage_rows(left[segment])})
    if None in left:
        rows.append({"segment": None, "name": NO_SEGMENT, "stages": stage_rows(left[None])})
    return rows


def _products(plan: Plan | None, found: list[ProductSales]) -> list[dict[str, Any]]:
    """The products of `products:` in file order (0 for those nobody bought), then the other
    products bought, by name, then the purchases that named no product."""
    left = {sales.product: sales for sales in found}
    named = list(plan.products) if plan else []
    order = [*named, *sorted(p for p in left if p is not None and p not in named)]
    rows = [_product_row(plan, left.pop(p) if p in left else ProductSales("", p)) for p in order]
    if None in left:
        rows.append(_product_row(plan, left[None]))
    return rows


def _product_row(plan: Plan | None, sales: ProductSales) -> dict[str, Any]:
    path, name = _customer_path(plan, sales.product)
    return {"product": sales.product, "name": NO_PRODUCT if sales.product is None else sales.product,
            "customers": sales.customers, "purchases": sales.purchases,
            "revenue": dict(sorted(sales.revenue.items())), "customer_path": path, "customer_path_name": name}


def _customer_path(plan: Plan | None, product: str | None) -> tuple[str | None, str]:
    """The segment (id, name) whose customer path a purchase of `product` starts; (None, words) else."""
    if plan is None:
        return None, OWN_SEGMENT
    # The same test as Plan.customer_segment: a named segment without customer emails
    # leaves the buyer on their own segment's path.
    named = plan.segment(plan.products.get(product or ""))
    if named is not None and named.customer.steps:
        return named.id, named.name
    if not any(segment.ends_sales(product) for segment in plan.segments):
        return None, NO_PATH  # an add-on: every sales path's exit_on lists other products
    return None, OWN_SEGMENT


def _steps(
    funnel: str, plan: Plan | None, found: Mapping[str, StepCounts], paused: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Every email of the plan in its order, then steps with mail that the plan no longer has."""
    left = dict(found)
    rows: list[dict[str, Any]] = []
    for email in plan.emails() if plan else ():
        counts = left.pop(email.id, None) or StepCounts(funnel, email.id)
        rows.append({**counts.as_dict(), "path": email.path.value, "segment": email.segment,
                     "role": email.role.value, "subject": email.subject})
    for step in sorted(left):
        rows.append({**left[step].as_dict(), "path": None, "segment": None, "role": None, "subject": None})
    for row in rows:
        row["paused"] = row["step"] in paused
        row["paused_detail"] = paused.get(row["step"])
    return rows
