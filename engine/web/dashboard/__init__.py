"""The operator's dashboard at /dashboard: funnels, steps, broadcasts, subscribers, the outbox, guardrails,
releases.

Server-rendered HTML without JavaScript, behind one password (auth.py) with a CSRF
token in every form (csrf.py). docs/dashboard.md describes the pages and their security.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from engine.web.context import Web
from engine.web.dashboard import auth, broadcasts, charts, emails, funnels, outbox, people, releases
from engine.web.dashboard.render import style

_STYLE_HEADERS = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}


def router(web: Web) -> APIRouter:
    """Every route of the dashboard."""
    gate = auth.Gate(web)
    routes = APIRouter(include_in_schema=False)

    @routes.get(auth.HOME + "/style.css")
    def style_sheet() -> Response:
        # Public: the login page needs it, and it holds nothing but colours and spacing.
        return Response(style(), media_type="text/css", headers=_STYLE_HEADERS)

    for part in (auth, funnels, emails, broadcasts, people, outbox, releases, charts):
        routes.include_router(part.router(web, gate))
    return routes
