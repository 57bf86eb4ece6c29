"""The dashboard's subscriber pages: search by address or name, and one subscriber's timeline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from engine.store import queries
from engine.store.search import MAX_QUERY, search_subscribers
from engine.store.signups import enrollment_stages
from engine.subscribers.profile import load_profile
from engine.web.context import Web
from engine.web.dashboard import timeline
from engine.web.dashboard.auth import HOME, Gate
from engine.web.dashboard.render import not_found, page
from engine.web.dashboard.session import Session

PAGE_SIZE = 50
_MAX_ID = 2**62


def router(web: Web, gate: Gate) -> APIRouter:
    """The subscriber search and timeline pages."""
    routes = APIRouter(include_in_schema=False)

    @routes.get(HOME + "/subscribers")
    def search(request: Request, q: str = "", before: str = "") -> Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        text = q[:MAX_QUERY]
        start = _id(before)
        with web.db_engine.connect() as conn:
            rows = search_subscribers(conn, text, start, PAGE_SIZE + 1)
            shown = rows[:PAGE_SIZE]
            stages = enrollment_stages(conn, [r["id"] for r in shown])
        funnels: dict[int, list[tuple[str, str]]] = {}
        for (subscriber, funnel), (_, stage) in sorted(stages.items()):
            funnels.setdefault(subscriber, []).append((funnel, stage))
        later = shown[-1]["id"] if len(rows) > PAGE_SIZE else None
        return page("subscribers", session=session, q=text, rows=shown, funnels=funnels, later=later,
                    paged=start is not None)

    @routes.get(HOME + "/subscribers/{subscriber_id}")
    def subscriber(request: Request, subscriber_id: str) -> Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        wanted = _id(subscriber_id)
        if wanted is None:
            return not_found(session, "No subscriber has this id.")
        with web.db_engine.connect() as conn:
            row = queries.subscribers_by_id(conn, [wanted]).get(wanted)
        plans = web.plans()
        profile = load_profile(web.db_engine, row["email"], plans, set(), web.clock.now()) if row else None
        if profile is None:  # gone (erased) between the two reads, or never there
            return not_found(session, "No subscriber has this id; they may have been erased.")
        return page("subscriber", session=session, profile=profile, person=profile.subscriber,
                    entries=timeline.entries(profile, plans), positions=timeline.positions(profile, plans),
                    limit=timeline.MAX_ENTRIES)

    return routes


def _id(text: str) -> int | None:
    """A subscriber id given in a URL, or None for anything else."""
    if not (text.isascii() and text.isdigit() and len(text) < 20):
        return None
    value = int(text)
    return value if 0 < value <= _MAX_ID else None
