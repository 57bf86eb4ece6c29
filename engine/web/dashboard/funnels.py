"""The dashboard's funnel pages: every funnel's chart, one funnel's steps, resuming a paused step,
and the guardrails' history.

The numbers are `engine.stats.report.funnel_report`, the same JSON as `funnel stats --json` and
`GET /api/stats`, so the dashboard never disagrees with them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from engine.errors import UnknownFunnelError
from engine.logs import log
from engine.stats.mapdata import read_map
from engine.stats.report import funnel_report, parse_since
from engine.store import pauses
from engine.store.db import DbConnection, snapshot
from engine.web.context import Web
from engine.web.dashboard.auth import HOME, Gate
from engine.web.dashboard.chart import figures, funnel_chart
from engine.web.dashboard.funnel_map import funnel_map
from engine.web.dashboard.render import HEADERS, not_found, page
from engine.web.dashboard.session import Session

_ID_LIMIT = 100  # the funnel and step columns' length
GUARDRAIL_ROWS = 200


def since_of(text: str | None) -> datetime | None:
    """`?since=2026-03-01` (midnight UTC) as a time; None when not given. ValueError says what to write."""
    return parse_since(text[:100]) if text else None


def router(web: Web, gate: Gate) -> APIRouter:
    """The funnel, step and guardrail pages."""
    routes = APIRouter(include_in_schema=False)

    def report(funnel: str | None, since: datetime | None) -> dict[str, Any]:
        # The stats report without its broadcasts' numbers, which no page here shows.
        with snapshot(web.db_engine) as conn:
            return funnel_report(conn, web.plans(), funnel, since, now=web.clock.now())

    def opened(request: Request, since: str | None) -> tuple[Session, datetime | None] | Response:
        """The session and the `?since=` time, or the login redirect or a 400 page."""
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        try:
            return session, since_of(since)
        except ValueError as error:
            return page("message", status=400, session=session, title="Wrong date", text=str(error))

    @routes.get(HOME)
    def overview(request: Request, since: str | None = None) -> Response:
        checked = opened(request, since)
        if not isinstance(checked, tuple):
            return checked
        session, start = checked
        data = report(None, start)
        charts = {f["funnel"]: funnel_chart(f["funnel"], f"Funnel {f['name']}", f["stages"])
                  for f in data["funnels"]}
        return page("overview", session=session, report=data, charts=charts, since=since or "")

    @routes.get(HOME + "/funnels/{funnel}")
    def funnel_page(request: Request, funnel: str, since: str | None = None,
                    resumed: str | None = None) -> Response:
        checked = opened(request, since)
        if not isinstance(checked, tuple):
            return checked
        session, start = checked
        if len(funnel) > _ID_LIMIT:
            return not_found(session, "No funnel has this id.")
        try:
            data = report(funnel, start)
        except UnknownFunnelError:
            data = {"funnels": []}
        found = next((f for f in data["funnels"] if f["funnel"] == funnel), None)
        if found is None:
            return not_found(session, f"No funnel '{funnel}': no sequence file defines it, nobody is in it.")
        paused = {p["step"]: p for p in found["paused"]}
        listed = {s["step"] for s in found["steps"]}
        # A step paused before it sent anything has no row of numbers; it still needs its button.
        unlisted = [p for p in found["paused"] if p["step"] not in listed]
        done = resumed if resumed and resumed in listed | set(paused) and resumed not in paused else None
        chart = funnel_chart(funnel, f"Funnel {found['name']}", found["stages"])
        return page("funnel", session=session, funnel=found, chart=chart, paused=paused,
                    unlisted=unlisted, resumed=done, since=since or "", generated_at=data["generated_at"])

    @routes.get(HOME + "/maps")
    def maps(request: Request) -> Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        plans = web.plans()
        return page("maps", session=session, funnels=[(key, plans[key].name) for key in sorted(plans)])

    @routes.get(HOME + "/funnels/{funnel}/map")
    def map_page(request: Request, funnel: str) -> Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        plan = web.plans().get(funnel[:_ID_LIMIT + 1])
        if plan is None:
            return not_found(session, f"No funnel '{funnel}' to draw: the map is drawn from a sequence file, "
                                      "and no file of the release being served defines it.")
        found = read_map(web.db_engine, plan)
        return page("map", session=session, found=found, drawing=funnel_map(found), figures=figures,
                    generated_at=web.clock.now().isoformat())

    @routes.post(HOME + "/funnels/{funnel}/steps/{step}/resume")
    async def resume(request: Request, funnel: str, step: str) -> Response:
        checked = await gate.checked(request)
        if not isinstance(checked, tuple):
            return checked
        session, _ = checked
        if len(funnel) > _ID_LIMIT or len(step) > _ID_LIMIT:
            return not_found(session, "No such step.")
        now = web.clock.now()

        def job(conn: DbConnection) -> int | None:
            return pauses.resume(conn, funnel, step, "dashboard", now)

        woken = await web.writer.run(job)
        if woken is not None:
            log("resumed", funnel=funnel, step=step, by="dashboard", woken=woken)
        target = f"{HOME}/funnels/{quote(funnel, safe='')}?resumed={quote(step, safe='')}"
        return RedirectResponse(target, status_code=303, headers=HEADERS)

    @routes.get(HOME + "/guardrails")
    def guardrails(request: Request, funnel: str | None = None) -> Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        with web.db_engine.connect() as conn:
            events = pauses.guardrail_events(conn, funnel=funnel or None, limit=GUARDRAIL_ROWS)
            now_paused = pauses.pauses(conn, funnel=funnel or None)
        return page("guardrails", session=session, events=events, funnel=funnel or "",
                    paused=[p for p in now_paused if p["resumed_at"] is None], limit=GUARDRAIL_ROWS)

    return routes
