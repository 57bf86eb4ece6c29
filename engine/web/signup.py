"""POST /subscribe: a website's signup form (or its fetch()) puts a person into a funnel.

Order of checks, cheapest first: the per-IP limit, the body (size, encoding, fields),
the funnel, CORS, the per-address limit, the honeypot. Only then one durable write,
shared with the other signups of the moment (web/writer.py). A browser's answer never
says whether the address was known (the same redirect); a JSON caller gets the same
body, with 201 or 200 as DESIGN.md fixes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from engine.logs import log
from engine.sequences.languages import from_browser
from engine.sequences.plan import Plan
from engine.store.db import DbConnection, Unavailable
from engine.subscribers.addresses import MAX_LENGTH
from engine.subscribers.leads import UTM_KEYS, Added, Proof, add_new_leads
from engine.web.context import Web, client_ip
from engine.web.limits import address_key, ip_key, retry_after
from engine.web.pages import page
from engine.web.signup_form import (
    FORM_TYPES,
    HONEYPOT,
    JSON_TYPE,
    Refusal,
    Signup,
    check_signup,
    media_type,
    origin_of,
    parse_values,
    read_body,
)

PREFLIGHT_MAX_AGE = "600"
MAX_PROBLEMS = 50  # listed per answer, as in the app's own validation answer


class SignupBody(BaseModel):
    """A signup as JSON (forms send the same names; `fields[x]` and `answers[q]` flat)."""

    model_config = ConfigDict(extra="allow")

    email: str = Field(description="the address to send to (required)", max_length=MAX_LENGTH)
    name: str | None = Field(None, max_length=100)
    first_name: str | None = Field(None, max_length=100, description="as templates greet the person")
    last_name: str | None = Field(None, max_length=100)
    funnel: str | None = Field(None, description="the funnel's id; optional when there is only one")
    magnet: str | None = Field(None, description="a lead magnet's id; default: the funnel's default")
    locale: str | None = Field(None, description="a language tag like en or pt-BR")
    timezone: str | None = Field(None, description="an IANA time zone like Europe/Budapest")
    source: str | None = Field(None, description="where the signup came from")
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    redirect: str | None = Field(None, description="a thank-you page on the funnel's allowed_redirects")
    form: str | None = Field(None, description="a name for the form, kept with the consent record")
    fields: dict[str, str] | None = Field(None, description="custom fields for templates")
    answers: dict[str, str] | None = Field(None, description="survey answers: question id -> answer id")


class SignupAnswer(BaseModel):
    """The same for every signup of a funnel: it does not tell whether the address was known."""

    status: str = Field(description="'pending_confirmation' (double opt-in) or 'subscribed'")
    funnel: str


class Problem(BaseModel):
    """One thing wrong with a post."""

    loc: list[str]
    msg: str
    type: str = "value_error"


class Problems(BaseModel):
    """Everything wrong with a post, one entry per field."""

    detail: list[Problem]


def router(web: Web) -> APIRouter:
    """The signup routes."""
    routes = APIRouter()

    @routes.post(
        "/subscribe",
        summary="Sign a person up to a funnel (forms and JSON)",
        status_code=201,
        response_model=SignupAnswer,
        responses={
            200: {"model": SignupAnswer, "description": "a repeated signup (JSON)"},
            303: {"description": "a browser form: on to the funnel's thank-you page"},
            403: {"model": Problems, "description": "fetch() from an origin the funnel does not allow"},
            404: {"model": Problems, "description": "no such funnel"},
            413: {"model": Problems, "description": "the post is too large"},
            415: {"model": Problems, "description": "not a form or JSON"},
            422: {"model": Problems, "description": "a field is wrong; nothing was written"},
            429: {"model": Problems, "description": "too many signups from this IP or for this address"},
            503: {"model": Problems, "description": "the database is unavailable; try again"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    JSON_TYPE: {"schema": SignupBody.model_json_schema()},
                    FORM_TYPES[0]: {"schema": _flat_schema()},
                    FORM_TYPES[1]: {"schema": _flat_schema()},
                },
            }
        },
    )
    async def subscribe(request: Request) -> Response:
        origin = request.headers.get("origin")
        wait = web.ip_limit.hit(ip_key(client_ip(request)))
        if wait:
            log("signup_limited", logging.WARNING, by="ip", ip=client_ip(request))
            _count(web, "limited")
            return _refused(request, Refusal(429, (("body", "too many signups from your address; "
                                                            "try again later"),)), wait=wait)
        try:
            body = await read_body(request)
            values = await parse_values(request, body)
            if web.check_email_domain:  # a DNS lookup: not on the event loop
                signup = await run_in_threadpool(check_signup, values, web.plans(), True)
            else:
                signup = check_signup(values, web.plans())
        except Refusal as refusal:
            _count(web, "invalid")
            return _refused(request, refusal)
        plan = signup.plan
        cors = origin if origin and origin.lower() in _origins(plan.allowed_origins) else None
        if request.headers.get("sec-fetch-mode") == "cors" and cors is None:
            _count(web, "invalid")
            return _refused(request, Refusal(403, (("origin", f"'{origin}' may not post to funnel "
                                                    f"'{plan.funnel}'; add it to signup.allowed_origins"),)))
        if signup.trapped:  # before the address's allowance: a bot's post must not use it up
            log("signup_trapped", logging.WARNING, funnel=plan.funnel, ip=client_ip(request))
            _count(web, "trapped")
            return _accepted(request, signup, new=True, cors=cors)
        if signup.lead.locale is None:
            signup = _with_browser_locale(signup, request.headers.get("accept-language"))
        wait = web.address_limit.hit(address_key(signup.lead.email))
        if wait:
            log("signup_limited", logging.WARNING, by="address", funnel=plan.funnel, ip=client_ip(request))
            _count(web, "limited")
            return _refused(request, Refusal(429, (("email", "too many signups for this address; "
                                                             "try again later"),)), wait=wait, cors=cors)
        proof = Proof(
            kind="signup",
            form=signup.form or request.headers.get("referer"),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            wording=plan.consent_wording(signup.lead.magnet),
        )
        now = web.clock.now()
        try:
            added = await web.writer.run(_SignupJob(signup, proof, now))
        except Unavailable:
            _count(web, "unavailable")
            return _refused(request, Refusal(503, (("body", "the signup could not be saved just now; "
                                                            "try again in a minute"),)), wait=30, cors=cors)
        log(
            "signup",
            funnel=plan.funnel,
            subscriber=added.subscriber_id,
            new_subscriber=added.new_subscriber,
            new_enrollment=added.new_enrollment,
            suppressed=added.subscriber_id is None,
        )
        known = "known" if added.subscriber_id is not None else "suppressed"
        _count(web, "new" if added.new_subscriber else known)
        # A suppressed address is answered as a new one: the answer must not tell.
        return _accepted(request, signup, new=added.new_subscriber or added.subscriber_id is None, cors=cors)

    @routes.options("/subscribe", include_in_schema=False)
    async def preflight(request: Request) -> Response:
        origin = request.headers.get("origin", "")
        allowed = {origin_of(o) for plan in web.plans().values() for o in plan.allowed_origins}
        if origin.lower() not in allowed:
            return Response(status_code=403)
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "Content-Type, Accept",
                "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                "Vary": "Origin",
            },
        )

    return routes


def _with_browser_locale(signup: Signup, header: str | None) -> Signup:
    """A form without `locale`: the browser's Accept-Language picks it, the best of the funnel's
    languages it accepts, else the primary language of the first it names (docs/languages.md);
    no usable header, no locale."""
    locale = from_browser(header, signup.plan.languages)
    if locale is None:
        return signup
    return replace(signup, lead=replace(signup.lead, locale=locale))


@lru_cache(maxsize=64)
def _origins(allowed: tuple[str, ...]) -> frozenset[str]:
    """A funnel's allowed origins as a browser sends them (once per release, not per post)."""
    return frozenset(origin_of(o) for o in allowed)


def _count(web: Web, result: str) -> None:
    """Count one answer for /metrics (funnel_signups_total)."""
    if web.metrics is not None:
        web.metrics.signups.inc(result)


def _flat_schema() -> dict[str, Any]:
    names = ["email", "name", "funnel", "magnet", "locale", "timezone", "source", *UTM_KEYS,
             "redirect", "form", HONEYPOT]
    return {
        "type": "object",
        "required": ["email"],
        "properties": {name: {"type": "string"} for name in names},
        "additionalProperties": {"type": "string"},
    }


@dataclass(frozen=True)
class _SignupJob:
    """One signup to write; signups arriving together are written together (web/writer.py)."""

    signup: Signup
    proof: Proof
    now: datetime

    def __call__(self, conn: DbConnection) -> Added:
        return self.run_many(conn, [self])[0]

    @classmethod
    def run_many(cls, conn: DbConnection, jobs: list[_SignupJob]) -> list[Added]:
        now = max(job.now for job in jobs)  # they arrived within one commit of each other
        return add_new_leads(conn, [(j.signup.plan, j.signup.lead, j.proof) for j in jobs], now)


def _wants_json(request: Request) -> bool:
    if media_type(request) == JSON_TYPE:
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _cors_headers(cors: str | None) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": cors, "Vary": "Origin"} if cors else {}


def _accepted(request: Request, signup: Signup, new: bool, cors: str | None) -> Response:
    plan: Plan = signup.plan
    if _wants_json(request):
        answer = SignupAnswer(
            status="pending_confirmation" if plan.double_opt_in else "subscribed", funnel=plan.funnel
        )
        return JSONResponse(answer.model_dump(), status_code=201 if new else 200, headers=_cors_headers(cors))
    target = signup.redirect or plan.thank_you_url
    return RedirectResponse(target, status_code=303, headers=_cors_headers(cors))


def _sendable(text: str) -> str:
    """`text` as UTF-8 can carry it: a lone surrogate (a JSON escape like \\ud800 in a field
    *name*) is shown as the escape the client sent."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _refused(request: Request, refusal: Refusal, wait: float = 0, cors: str | None = None) -> Response:
    refusal = Refusal(refusal.status, tuple((_sendable(where), _sendable(message))
                                            for where, message in refusal.problems[:MAX_PROBLEMS]))
    headers = _cors_headers(cors)
    if wait:
        headers["Retry-After"] = retry_after(wait)
    if _wants_json(request) or media_type(request) not in FORM_TYPES:
        detail = [{"loc": ["body", where], "msg": message, "type": "value_error"}
                  for where, message in refusal.problems]
        return JSONResponse({"detail": detail}, status_code=refusal.status, headers=headers)
    titles = {404: "This form points at a funnel that does not exist", 429: "Too many signups",
              413: "The form is too large", 503: "Please try again in a minute"}
    response = page("refused", refusal.status, funnel_name="Signup", problems=refusal.problems,
                    title=titles.get(refusal.status, "Please correct the form"))
    response.headers.update(headers)
    return response
