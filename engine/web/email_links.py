"""The routes behind the links in emails: confirm, survey answers, unsubscribe, clicks, opens.

Every path ends in a token signed for one purpose (engine/mail/tokens.py) that names one
delivery by its Message-ID; a forged, changed, expired or unknown token gets the same
plain 404 and changes nothing. Mail scanners fetch every link of a message within
seconds, so a GET never confirms, answers or unsubscribes: it shows a page whose button
POSTs. The one exception RFC 8058 asks for is the one-click POST to /u/, which mailbox
providers send without cookies or a page.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from engine.logs import log
from engine.mail.tokens import verify
from engine.sequences.plan import Plan
from engine.store import sentmail
from engine.store.db import DbConnection, DbError, Unavailable
from engine.subscribers import inbound
from engine.subscribers.leads import Proof
from engine.web.catalogue import language_of
from engine.web.context import Web, client_ip
from engine.web.pages import not_found, page
from engine.web.signup_form import FORM_TYPES, media_type, read_body

T = TypeVar("T")
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1x1 transparent GIF
CONFIRM_WORDING = "pressed the confirm button on the page the confirmation email linked to"


class _Found:
    """A verified token's values and the delivery it names."""

    def __init__(self, values: list[str], delivery: dict[str, Any]) -> None:
        self.values = values
        self.delivery = delivery


def router(web: Web) -> APIRouter:
    """The routes behind email links."""
    routes = APIRouter(tags=["links in emails"])

    def verified(purpose: str, token: str, arity: int) -> list[str] | None:
        values = verify(web.secret, purpose, token, web.clock.now(), web.link_lifetime)
        return values if values is not None and len(values) == arity else None

    async def found(purpose: str, token: str, arity: int) -> _Found | None:
        values = verified(purpose, token, arity)
        if values is None:
            return None
        delivery = await run_in_threadpool(_lookup, web, values[0])  # raises Unavailable
        return None if delivery is None else _Found(values, delivery)

    async def count(values: list[str], seen: str, record: Callable[..., None]) -> None:
        """Record an open or click once; a repeat, a gone subscriber or a database that is
        down changes nothing and does not keep the person from their page or picture."""
        if web.seen_links.hit(seen):
            return
        try:
            delivery = await run_in_threadpool(_lookup, web, values[0])
            if delivery is not None:
                now = web.clock.now()
                await web.writer.run(lambda conn: record(conn, delivery, *values[1:], now))
        except Unavailable:
            pass

    def written(delivery: Mapping[str, Any]) -> Plan | None:
        """The funnel in the language its emails to this person are written in (docs/languages.md)."""
        plan = web.plans().get(delivery["funnel"])
        return plan.in_language(delivery["locale"]) if plan else None

    def names(delivery: Mapping[str, Any]) -> dict[str, Any]:
        plan = written(delivery)
        return {
            "funnel_name": plan.name if plan else delivery["funnel"],
            "magnet_title": plan.magnet(delivery["magnet"]).title if plan else "your download",
            "email": delivery["email"],
            # The page speaks the language of the emails; a funnel with none: the person's locale.
            "language": language_of((plan.language if plan else None) or delivery["locale"]),
        }

    @routes.get("/confirm/{token}")
    async def confirm_page(token: str) -> Response:
        hit = await found("confirm", token, 1)
        return not_found() if hit is None else page("confirm", **names(hit.delivery), done=False)

    @routes.post("/confirm/{token}")
    async def confirm(token: str, request: Request) -> Response:
        hit = await found("confirm", token, 1)
        if hit is None:
            return not_found()
        proof = Proof("confirm", form=None, ip=client_ip(request),
                      user_agent=request.headers.get("user-agent"), wording=CONFIRM_WORDING)
        now = web.clock.now()
        done = await web.writer.run(lambda conn: inbound.confirm(conn, hit.delivery, proof, now))
        log("confirmed", subscriber=hit.delivery["subscriber_id"], funnel=hit.delivery["funnel"], new=done)
        return page("confirm", **names(hit.delivery), done=True)

    def answer_names(hit: _Found) -> dict[str, Any]:
        _, question, choice = hit.values
        plan = written(hit.delivery)
        questions = plan.survey.questions if plan and plan.survey else ()
        asked = next((q for q in questions if q.id == question), None)
        label = dict(asked.answers).get(choice, choice) if asked else choice
        return {**names(hit.delivery), "question": asked.text if asked else "", "label": label}

    @routes.get("/a/{token}")
    async def answer_page(token: str) -> Response:
        hit = await found("answer", token, 3)
        return not_found() if hit is None else page("answer", **answer_names(hit), done=False)

    @routes.post("/a/{token}")
    async def answer(token: str) -> Response:
        hit = await found("answer", token, 3)
        if hit is None:
            return not_found()
        _, question, choice = hit.values
        now = web.clock.now()
        await web.writer.run(lambda conn: inbound.answer(conn, hit.delivery, question, choice, now))
        log("answered", subscriber=hit.delivery["subscriber_id"], funnel=hit.delivery["funnel"],
            question=question, answer=choice)
        return page("answer", **answer_names(hit), done=True)

    @routes.get("/u/{token}")
    async def unsubscribe_page(token: str) -> Response:
        hit = await found("unsubscribe", token, 1)
        return not_found() if hit is None else page("unsubscribe", **names(hit.delivery), done=False)

    @routes.post("/u/{token}")
    async def unsubscribe(token: str, request: Request) -> Response:
        hit = await found("unsubscribe", token, 1)
        if hit is None:
            return not_found()
        everything = (await _unsubscribe_scope(request)) == "all"
        delivery = hit.delivery
        now = web.clock.now()
        funnel = None if everything else delivery["funnel"]
        subscriber, key = delivery["subscriber_id"], delivery["message_id"]

        def job(conn: DbConnection) -> list[inbound.Stop]:
            stops, _ = inbound.unsubscribe(conn, subscriber, funnel, now, key,
                                           came_from=(delivery["funnel"], delivery["step"]))
            web.stoplist.add(stops)  # before the commit: a send checking meanwhile must see it
            return stops

        await web.writer.run(job)
        log("unsubscribed", subscriber=delivery["subscriber_id"], funnel=funnel or "*")
        return page("unsubscribe", **names(delivery), done=True, everything=everything)

    @routes.get("/c/{token}")
    async def click(token: str) -> Response:
        values = verified("click", token, 2)
        if values is None or urlsplit(values[1]).scheme not in ("http", "https"):
            return not_found()
        message_id, url = values
        await count(values, f"{message_id} {url}", inbound.click)  # unique clicks
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store",
                                                               "Referrer-Policy": "no-referrer"})

    @routes.get("/o/{token}")
    async def opened(token: str) -> Response:
        values = verified("open", token, 1)
        if values is None:
            return not_found()
        await count(values, values[0], inbound.opened)
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store, private"})

    return routes


def _lookup(web: Web, message_id: str) -> dict[str, Any] | None:
    try:
        with web.db_engine.connect() as conn:
            row = sentmail.delivery_by_message_id(conn, message_id)
    except DbError as error:
        log("read_failed", logging.ERROR, error=f"{type(error).__name__}: {error}"[:500])
        raise Unavailable from error
    return None if row is None else dict(row)


async def _unsubscribe_scope(request: Request) -> str:
    """'all' or 'funnel' from the page's buttons; a one-click POST (RFC 8058) is 'funnel'."""
    if media_type(request) not in FORM_TYPES:
        return "funnel"  # a bare POST to the link: unsubscribe, do not argue
    try:
        body = await read_body(request)
        if media_type(request) == FORM_TYPES[0]:
            fields = dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=20))
        else:
            form = await request.form(max_files=0, max_fields=20)
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
    except Exception:  # a broken or huge body still unsubscribes, from this funnel
        return "funnel"
    return "all" if fields.get("scope") == "all" else "funnel"
