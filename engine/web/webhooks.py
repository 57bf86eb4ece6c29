"""Provider webhooks: Amazon SES (through SNS) and Postmark report complaints and late bounces.

Both providers put HTTP Basic credentials in the webhook URL
(`https://hooks:KEY@funnel.example.com/webhooks/ses`); the password must be the
`webhook_key` setting: a key of its own, never the API key, since it sits in URLs the
providers' consoles show. Without it every call answers 401 and nothing is recorded.
Each body is normalised by its provider's module (engine/feedback/) before anything is
written.

Answers are chosen for providers that retry: 2xx for everything understood, including
addresses the engine does not know and reports it ignores; 400 only for a body no
retry could fix. Redeliveries record nothing twice: the provider's report id is the key.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from engine.feedback import Feedback, FeedbackKind, postmark, ses
from engine.logs import log
from engine.store import queries
from engine.store.db import DbConnection
from engine.store.sentmail import delivery_by_message_id
from engine.subscribers import inbound
from engine.web.body import (
    BodyCut,
    BodyTooLarge,
    DuplicateKeys,
    duplicate_key_problems,
    load_json,
    read_capped,
)
from engine.web.context import Web

# SNS messages are at most 256 KiB; a Postmark bounce may carry the bounced message in
# `Content`. Our emails are tens of KiB, so 1 MiB holds any real report.
MAX_BODY = 1024 * 1024
BASIC = HTTPBasic(auto_error=False, realm="funnel-engine webhooks",
                  description="any user name; the password is the webhook_key setting")
CHALLENGE = {"WWW-Authenticate": 'Basic realm="funnel-engine webhooks"'}
Parser = Callable[[Any], list[Feedback]]
# The bodies are read raw (SNS posts JSON as text/plain); this only documents them.
_JSON_BODY = {"application/json": {"schema": {"type": "object"}}}
_SES_BODY = {"requestBody": {"required": True, "content": {
    **_JSON_BODY, "text/plain": {"schema": {"type": "string", "description": "an SNS message (JSON)"}}}}}
_POSTMARK_BODY = {"requestBody": {"required": True, "content": _JSON_BODY}}


def router(web: Web) -> APIRouter:
    """The /webhooks/ routes."""

    def authorized(credentials: Annotated[HTTPBasicCredentials | None, Security(BASIC)]) -> None:
        # SNS sends the credentials only after a 401 that carries the Basic challenge.
        if not web.webhook_key:
            raise HTTPException(401, "webhooks are off: set FUNNEL_WEBHOOK_KEY",
                                headers=CHALLENGE)
        given = credentials.password.encode("utf-8") if credentials else b""
        if not hmac.compare_digest(given, web.webhook_key.encode("utf-8")):
            raise HTTPException(401, "put the webhook key in the URL: https://hooks:KEY@host/webhooks/...",
                                headers=CHALLENGE)

    responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "no or wrong key"}, 400: {"description": "not a report of this provider"},
        413: {"description": "a body over 1 MiB"}, 422: {"description": "a JSON key given twice"},
    }
    routes = APIRouter(prefix="/webhooks", tags=["provider webhooks"], dependencies=[Depends(authorized)],
                       responses=responses)

    @routes.post("/ses", summary="Amazon SES bounce and complaint notifications, through Amazon SNS",
                 openapi_extra=_SES_BODY)
    async def from_ses(request: Request) -> JSONResponse:
        payload = _json(await _read_body(request))
        announced = request.headers.get("x-amz-sns-message-type")
        if announced and isinstance(payload, dict) and "Type" in payload and payload["Type"] != announced:
            raise HTTPException(400, f"the x-amz-sns-message-type header says {announced!r} "
                                     f"but the body's Type is {payload['Type']!r}")
        try:
            url = ses.subscribe_url(payload)
        except ValueError as error:
            raise HTTPException(400, str(error)) from error
        if url is not None:
            # Not fetched: a public endpoint makes no outbound request a caller could aim.
            log("ses_subscription", logging.WARNING, topic=payload.get("TopicArn"), subscribe_url=url,
                todo="open subscribe_url once (or confirm in the SNS console) to start notifications")
            return JSONResponse({"status": "subscription logged; confirm it with the SubscribeURL"})
        return await apply(_parsed(ses.parse, payload))

    @routes.post("/postmark", summary="Postmark bounce, spam complaint and subscription change webhooks",
                 openapi_extra=_POSTMARK_BODY)
    async def from_postmark(request: Request) -> JSONResponse:
        return await apply(_parsed(postmark.parse, _json(await _read_body(request))))

    async def apply(reports: list[Feedback]) -> JSONResponse:
        counts = {"recorded": 0, "duplicate": 0, "ignored": 0, "unknown_address": 0}
        for report in reports:
            if report.kind is FeedbackKind.IGNORED:
                counts["ignored"] += 1
                log("feedback_ignored", provider=report.provider, id=report.provider_id, reason=report.detail)
        wanted = [r for r in reports if r.kind is not FeedbackKind.IGNORED]
        if not wanted:
            return JSONResponse(counts)
        now = web.clock.now()

        def job(conn: DbConnection) -> list[Outcome]:
            return [_record(conn, web, report, now) for report in wanted]

        for report, subscriber, new, matched in await web.writer.run(job):
            if subscriber is None:
                counts["unknown_address"] += 1
                log("feedback_unknown_address", provider=report.provider, id=report.provider_id,
                    kind=report.kind.value)
                continue
            counts["recorded" if new else "duplicate"] += 1
            action = "complained" if report.kind is FeedbackKind.COMPLAINT else "bounced_later"
            log(action, subscriber=subscriber, provider=report.provider, id=report.provider_id, new=new,
                message_matched=matched, detail=report.detail)
        return JSONResponse(counts)

    return routes


Outcome = tuple[Feedback, int | None, bool, bool]  # report, subscriber (None: unknown), new, email matched


def _record(conn: DbConnection, web: Web, report: Feedback, now: datetime) -> Outcome:
    """Record one complaint or bounce, attributed to the email its Message-ID names if that was theirs."""
    row = queries.find_subscriber(conn, report.email)
    if row is None:
        return report, None, False, False
    delivery = delivery_by_message_id(conn, report.message_id) if report.message_id else None
    if delivery is not None and delivery["subscriber_id"] != row["id"]:
        delivery = None  # a forwarded message reported by someone else: blame their latest email
    key = f"{report.provider}:{report.provider_id}:{row['id']}"
    if report.kind is FeedbackKind.COMPLAINT:
        stops, new = inbound.complain(conn, row["id"], now, key, delivery)
    else:
        stops, new = inbound.bounce(conn, row["id"], now, key, delivery, detail=report.detail)
    web.stoplist.add(stops)  # before the commit: a send checking meanwhile must see it
    return report, row["id"], new, delivery is not None


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 beyond MAX_BODY bytes without reading the rest."""
    try:
        return await read_capped(request, MAX_BODY)
    except BodyTooLarge as error:
        raise HTTPException(413, f"a webhook body must be under {MAX_BODY // 1024} KiB") from error
    except BodyCut as error:
        raise HTTPException(400, "the client went away before sending the whole body") from error


def _json(body: bytes) -> Any:
    """The body as JSON, whatever its Content-Type (SNS sends text/plain)."""
    try:
        return load_json(body)
    except DuplicateKeys as error:
        raise HTTPException(422, duplicate_key_problems(error)) from error
    except (ValueError, RecursionError) as error:
        raise HTTPException(400, f"the body is not JSON: {error}"[:300]) from error


def _parsed(parse: Parser, payload: Any) -> list[Feedback]:
    try:
        return parse(payload)
    except ValueError as error:
        raise HTTPException(400, str(error)[:300]) from error
