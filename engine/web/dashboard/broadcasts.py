"""The dashboard's broadcast pages: every broadcast with its state, one broadcast's numbers, and cancelling.

The numbers are engine/stats/broadcasts.py's, the same JSON as `funnel broadcast stats --json`
and `GET /api/broadcasts/{id}`, so the dashboard never disagrees with them.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from engine.logs import log
from engine.stats import broadcasts as numbers
from engine.store import broadcasts as calendar
from engine.store.db import DbConnection, snapshot
from engine.web.context import Web
from engine.web.dashboard.auth import HOME, Gate
from engine.web.dashboard.render import HEADERS, not_found, page
from engine.web.dashboard.session import Session

_ID_LIMIT = 100  # the broadcast id column's length
# A broadcast that can still be stopped: on the calendar and not over.
CANCELLABLE = (calendar.SCHEDULED, calendar.TAKING, calendar.SENDING)


def router(web: Web, gate: Gate) -> APIRouter:
    """The broadcast list, a broadcast's page and its Cancel button."""
    routes = APIRouter(include_in_schema=False)

    @routes.get(HOME + "/broadcasts")
    def broadcast_list(request: Request) -> Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        with snapshot(web.db_engine) as conn:
            rows = numbers.listing(conn, web.plans())
        return page("broadcasts", session=session, broadcasts=rows)

    @routes.get(HOME + "/broadcasts/{broadcast_id}")
    def broadcast_page(request: Request, broadcast_id: str, cancelled: str | None = None) -> Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        try:
            _, broadcast = numbers.find(web.plans(), broadcast_id[:_ID_LIMIT + 1])
        except numbers.UnknownBroadcastError:
            return not_found(session, "No broadcast with this id in the files the daemon serves "
                                      "(a file with errors is not served: run funnel validate).")
        with snapshot(web.db_engine) as conn:
            found = numbers.numbers(conn, broadcast)
        # A held broadcast is on the calendar too: its message says to cancel it.
        cancellable = found["held"] is not None or found["state"] in CANCELLABLE
        return page("broadcast", session=session, b=found, cancellable=cancellable,
                    cancelled=cancelled is not None and found["state"] == calendar.CANCELLED)

    @routes.post(HOME + "/broadcasts/{broadcast_id}/cancel")
    async def cancel(request: Request, broadcast_id: str) -> Response:
        checked = await gate.checked(request)
        if not isinstance(checked, tuple):
            return checked
        session, _ = checked
        try:
            _, broadcast = await run_in_threadpool(numbers.find, web.plans(), broadcast_id[:_ID_LIMIT + 1])
        except numbers.UnknownBroadcastError:
            return not_found(session, "No such broadcast.")
        now = web.clock.now()

        def job(conn: DbConnection) -> calendar.Cancelled | None:
            try:
                return calendar.cancel(conn, broadcast.id, now, "dashboard")
            except calendar.CalendarError:  # a draft: nothing to stop (the page shows no button)
                return None

        stopped = await web.writer.run(job)
        if stopped is not None and not stopped.already:
            log("broadcast_cancelled", broadcast=broadcast.id, by="dashboard", recipients=stopped.recipients,
                deliveries=stopped.deliveries)
        target = f"{HOME}/broadcasts/{quote(broadcast.id, safe='')}?cancelled=1"
        return RedirectResponse(target, status_code=303, headers=HEADERS)

    return routes
