"""The dashboard's releases page: which files went live when, what each changed, and whom it touched.

A release row is written once, by the daemon that first served it (engine/scheduler/releases.py),
with the impact report `funnel validate --against-db` would have printed at that moment.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from engine.store.releases import recent_releases
from engine.web.context import Web
from engine.web.dashboard.auth import HOME, Gate
from engine.web.dashboard.render import page
from engine.web.dashboard.session import Session

RELEASE_ROWS = 50
# The summary's lists of what changed, in the order and words the page shows them.
CHANGES = (("emails_added", "Emails added"), ("emails_removed", "Emails removed"),
           ("emails_moved", "Emails moved"), ("emails_changed", "Emails with a changed text"),
           ("templates_added", "Templates added"), ("templates_removed", "Templates removed"),
           ("templates_changed", "Templates changed"))


def router(web: Web, gate: Gate) -> APIRouter:
    """The releases page."""
    routes = APIRouter(include_in_schema=False)

    @routes.get(HOME + "/releases")
    def releases(request: Request) -> Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        with web.db_engine.connect() as conn:
            rows = recent_releases(conn, RELEASE_ROWS)
        return page("releases", session=session, releases=rows, changes=CHANGES, limit=RELEASE_ROWS)

    return routes
