"""The dashboard's charts over time: a funnel's, one email's and a broadcast's activity per day or week.

`GET /dashboard/funnels/{funnel}/charts?from=&to=&step=` and
`GET /dashboard/broadcasts/{id}/charts?from=&to=`. The numbers are engine/stats/charts.py's
(kept per day by database triggers, so a month at a million subscribers reads in
milliseconds); the drawing is timechart.py's. A date the page cannot read answers 400 with
the form and what to write, never a 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from engine.stats import broadcasts as numbers
from engine.stats import charts
from engine.store import tallies
from engine.store.daily import has_mail
from engine.store.db import snapshot
from engine.web.context import Web
from engine.web.dashboard.auth import HOME, Gate
from engine.web.dashboard.render import not_found, page
from engine.web.dashboard.session import Session
from engine.web.dashboard.timechart import Bucket, Line, Pause, time_chart

_ID_LIMIT = 100  # the funnel and step columns' length
LABELS = {
    "signups": "Signups",
    "confirmations": "Confirmations",
    "sent": "Sent",
    "opened": "Opened",
    "clicked": "Clicked",
    "unsubscribed": "Unsubscribed",
    "complained": "Complained",
}
# The charts of a page, each a few lines of similar size (a thousand signups would flatten
# three complaints drawn on the same axis).
PEOPLE = ("Signups and confirmations", ("signups", "confirmations"))
MAIL = ("Emails sent, opened and clicked", ("sent", "opened", "clicked"))
LEAVING = ("Unsubscribes and complaints", ("unsubscribed", "complained"))


def buckets(activity: charts.Activity) -> list[Bucket]:
    """The x axis: days ('Mar 2', '2026-03-02'), or weeks ('Mar 2', 'week 2026-03-02 to 2026-03-08')."""
    found = []
    for start, end in zip(activity.starts, activity.ends(), strict=True):
        short = f"{start:%b} {start.day}"
        if activity.unit == "day":
            found.append(Bucket(short, start.isoformat()))
        else:
            found.append(Bucket(short, f"week {start.isoformat()} to {end.isoformat()}"))
    return found


def currency_name(currency: str) -> str:
    """A revenue line's name: its currency, or what stands for none."""
    return currency or "no currency"


def panels(
    key: str,
    activity: charts.Activity,
    groups: Sequence[tuple[str, Sequence[str]]],
    revenue_title: str | None,
) -> list[dict[str, Any]]:
    """Each chart of the page: its title and its SVG."""
    axis = buckets(activity)
    pauses = [Pause(s.start, s.end, s.step, s.detail) for s in activity.pauses]
    drawn = []
    for index, (title, metrics) in enumerate(groups):
        lines = [Line(m, LABELS[m], activity.counts[m]) for m in metrics]
        drawn.append({"title": title, "svg": time_chart(f"{key}-{index}", title, axis, lines, pauses)})
    if revenue_title is not None:
        lines = [Line(c or "none", currency_name(c), v) for c, v in activity.revenue.items()]
        drawn.append(
            {
                "title": revenue_title,
                "svg": time_chart(f"{key}-revenue", revenue_title, axis, lines, pauses, money=True),
            }
        )
    return drawn


# Where a long column name may break (a soft hyphen), so the table fits beside the charts.
_BREAKS = {
    "Confirmations": "Confir\u00admations",
    "Unsubscribed": "Unsub\u00adscribed",
    "Complained": "Com\u00adplained",
}


def table(activity: charts.Activity, metrics: Sequence[str], with_revenue: bool) -> dict[str, Any]:
    """The same numbers as rows: one per bucket, then the totals."""
    currencies = list(activity.revenue) if with_revenue else []
    columns = [_BREAKS.get(LABELS[m], LABELS[m]) for m in metrics]
    columns += [f"Revenue {currency_name(c)}" for c in currencies]
    axis = buckets(activity)
    rows = []
    for i, bucket in enumerate(axis):
        values = [f"{activity.counts[m][i]:,}" for m in metrics]
        values += [f"{activity.revenue[c][i]:,.2f}" for c in currencies]
        rows.append({"label": bucket.full, "values": values})
    totals = [f"{activity.total(m):,}" for m in metrics]
    totals += [f"{sum(activity.revenue[c]):,.2f}" for c in currencies]
    return {"columns": columns, "rows": rows, "totals": totals}


def router(web: Web, gate: Gate) -> APIRouter:
    """The chart pages of a funnel, an email and a broadcast."""
    routes = APIRouter(include_in_schema=False)

    def chosen(
        request: Request, first: str | None, last: str | None
    ) -> tuple[Session, tuple[date, date] | str] | Response:
        """The session and the range, or the error in words; the login redirect when logged out."""
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        try:
            return session, charts.date_range(first, last, web.clock.now().date())
        except ValueError as error:
            return session, str(error)

    @routes.get(HOME + "/funnels/{funnel}/charts")
    def funnel_charts(
        request: Request,
        funnel: str,
        first: Annotated[str | None, Query(alias="from")] = None,
        last: Annotated[str | None, Query(alias="to")] = None,
        step: str | None = None,
    ) -> Response:
        checked = chosen(request, first, last)
        if not isinstance(checked, tuple):
            return checked
        session, picked = checked
        step = step or None
        if len(funnel) > _ID_LIMIT or (step is not None and len(step) > _ID_LIMIT):
            return not_found(session, "No such funnel or email.")
        plan = web.plans().get(funnel)
        form = {"from": first or "", "to": last or "", "step": step or ""}
        with snapshot(web.db_engine) as conn:
            if plan is None and funnel not in tallies.funnels(conn):
                return not_found(
                    session, f"No funnel '{funnel}': no sequence file defines it, nobody is in it."
                )
            email = plan.email(step) if plan is not None and step is not None else None
            if step is not None and email is None and not has_mail(conn, funnel, step):
                return not_found(session, f"No email '{step}' in funnel '{funnel}'.")
            emails = [(e.id, e.subject) for e in plan.emails()] if plan is not None else []
            common: dict[str, Any] = {
                "session": session,
                "funnel": funnel,
                "funnel_name": plan.name if plan else funnel,
                "step": step,
                "subject": email.subject if email else None,
                "emails": emails,
                "form": form,
                "action": f"{HOME}/funnels/{quote(funnel, safe='')}/charts",
            }
            if isinstance(picked, str):
                return page("charts", status=400, error=picked, **common)
            form.update({"from": picked[0].isoformat(), "to": picked[1].isoformat()})  # the days shown
            found = charts.activity(conn, funnel, *picked, now=web.clock.now(), step=step)
        groups = (MAIL, LEAVING) if step else (PEOPLE, MAIL, LEAVING)
        metrics = [m for _, ms in groups for m in ms]
        key = f"{funnel}-{step}" if step else funnel
        return page(
            "charts",
            activity=found,
            panels=panels(key, found, groups, None if step else "Revenue"),
            table=table(found, metrics, not step),
            **common,
        )

    @routes.get(HOME + "/broadcasts/{broadcast_id}/charts")
    def broadcast_charts(
        request: Request,
        broadcast_id: str,
        first: Annotated[str | None, Query(alias="from")] = None,
        last: Annotated[str | None, Query(alias="to")] = None,
    ) -> Response:
        checked = chosen(request, first, last)
        if not isinstance(checked, tuple):
            return checked
        session, picked = checked
        try:
            plan, broadcast = numbers.find(web.plans(), broadcast_id[: _ID_LIMIT + 1])
        except numbers.UnknownBroadcastError:
            return not_found(
                session,
                "No broadcast with this id in the files the daemon serves "
                "(a file with errors is not served: run funnel validate).",
            )
        common: dict[str, Any] = {
            "session": session,
            "funnel": plan.funnel,
            "funnel_name": plan.name,
            "broadcast": broadcast,
            "step": broadcast.id,
            "subject": broadcast.email.subject,
            "form": {"from": first or "", "to": last or "", "step": ""},
            "action": f"{HOME}/broadcasts/{quote(broadcast.id, safe='')}/charts",
        }
        if isinstance(picked, str):
            return page("charts", status=400, error=picked, **common)
        common["form"].update({"from": picked[0].isoformat(), "to": picked[1].isoformat()})
        with snapshot(web.db_engine) as conn:
            found = charts.broadcast_activity(conn, broadcast, *picked, now=web.clock.now())
        groups = (MAIL, LEAVING)
        metrics = [m for _, ms in groups for m in ms]
        title = "Revenue attributed (purchases within the attribution window after the email)"
        return page(
            "charts",
            activity=found,
            panels=panels(f"b-{broadcast.id}", found, groups, title),
            table=table(found, metrics, True),
            **common,
        )

    return routes
