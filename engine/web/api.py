"""The admin API under /api/: events from a shop, the subscriber list and broadcasts, behind a bearer key.

`FUNNEL_API_KEY` (or `api_key` in funnel.toml) is the key; without one set, every call
answers 401, so a fresh install exposes nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.errors import did_you_mean
from engine.feedback import bare_message_id
from engine.flow.state import EventType
from engine.logs import log
from engine.store import queries, sentmail, signups, subscribers
from engine.store.db import DbConnection, Row
from engine.subscribers import inbound
from engine.subscribers.addresses import MAX_LENGTH
from engine.subscribers.leads import Proof, add_lead
from engine.web import api_broadcasts, api_experiments
from engine.web.body import StrictJsonRoute
from engine.web.context import Web
from engine.web.signup_form import Refusal, check_signup, text_problem

# Types the API may not record: they come from links in emails, with proof of who clicked.
FROM_LINKS_ONLY = {EventType.CONFIRMED.value, EventType.ANSWER.value, EventType.CLICK.value,
                   EventType.OPEN.value}
# Reports about an email sent: they suppress the address (engine/subscribers/inbound.py complain, bounce).
FEEDBACK = {EventType.COMPLAINT.value: "complained", EventType.BOUNCE.value: "bounced_later"}
PREFIX = "/api"
# The largest body an /api/ call takes. A subscriber with 30 fields of 500 characters,
# each written as \uXXXX escapes, is about 100 KiB; an event is under 1 KiB.
MAX_BODY = 256 * 1024
BEARER = HTTPBearer(auto_error=False, description="the api_key setting (FUNNEL_API_KEY)")


def _plain(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        problem = text_problem(value, limit)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


Line = Annotated[str, _plain(200)]
Key = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,50}$")]


class EventIn(BaseModel):
    """An event for one subscriber, named by `email` or `subscriber_id`."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, _plain(MAX_LENGTH)] | None = Field(None, description="the subscriber's address")
    subscriber_id: int | None = Field(None, ge=1, le=2**62, description="or the subscriber's id")
    type: str = Field(
        pattern=r"^[a-z][a-z0-9_.-]{0,49}$",
        description="purchase, tag, untag, unsubscribe, complaint, bounce (a hard bounce reported "
        "later), or a custom event name like webinar_attended",
    )
    product: Line | None = Field(None, description="purchase: the product id (exit_on may filter by it)")
    amount: float | None = Field(
        None, ge=0, le=1e12, allow_inf_nan=False, strict=True, description="purchase: revenue"
    )
    currency: str | None = Field(None, pattern=r"^[A-Za-z]{3}$", description="purchase: ISO 4217 code")
    name: Key | None = Field(None, description="tag and untag: the tag")
    funnel: Annotated[str, _plain(100)] | None = Field(
        None, description="unsubscribe: only from this funnel (default: all)"
    )
    id: Annotated[str, _plain(180)] | None = Field(
        None, min_length=1, description="your id for this event: a retried call records it once"
    )
    message_id: Annotated[str, _plain(250)] | None = Field(
        None, min_length=1, description="complaint and bounce: the Message-ID of the email it is about "
        "(with or without <>); without it, the latest marketing email sent takes the blame"
    )

    @model_validator(mode="after")
    def _one_subscriber(self) -> EventIn:
        if (self.email is None) == (self.subscriber_id is None):
            raise ValueError("give exactly one of 'email' and 'subscriber_id'")
        if self.type in FROM_LINKS_ONLY:
            raise ValueError(f"'{self.type}' events come from the links in emails, not from the API")
        if self.type in (EventType.TAG.value, EventType.UNTAG.value) and not self.name:
            raise ValueError(f"a {self.type} event needs 'name': the tag")
        if self.message_id is not None and self.type not in FEEDBACK:
            raise ValueError("'message_id' is for complaint and bounce events")
        return self


class EventOut(BaseModel):
    """What the event did."""

    status: Literal["recorded", "duplicate"]
    subscriber_id: int
    type: str


class SubscriberIn(BaseModel):
    """A subscriber to add to a funnel (an admin's import of one person)."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, _plain(MAX_LENGTH)]
    funnel: Annotated[str, _plain(100)] | None = None
    name: Annotated[str, _plain(100)] | None = None
    first_name: Annotated[str, _plain(100)] | None = Field(None, description="as templates greet the person")
    last_name: Annotated[str, _plain(100)] | None = None
    magnet: Line | None = None
    locale: Line | None = None
    timezone: Line | None = None
    source: Line | None = None
    utm_source: Line | None = None
    utm_medium: Line | None = None
    utm_campaign: Line | None = None
    utm_term: Line | None = None
    utm_content: Line | None = None
    fields: dict[Key, Annotated[str, _plain(500)]] = Field(default_factory=dict, max_length=30)
    answers: dict[Key, Key] = Field(default_factory=dict, max_length=20)
    confirmed: bool = Field(
        False, description="true: the person already confirmed elsewhere; skip double opt-in"
    )


class Enrollment(BaseModel):
    """Where the subscriber stands in one funnel."""

    funnel: str
    stage: str
    segment: str | None
    step: str | None
    next_run_at: datetime | None


class SubscriberOut(BaseModel):
    """A subscriber and their funnels."""

    id: int
    email: str
    name: str
    first_name: str | None = Field(description="as given; null when not given")
    last_name: str | None = Field(description="as given; null when not given")
    status: str
    locale: str | None
    timezone: str | None
    source: str | None
    fields: dict[str, Any]
    created_at: datetime
    tags: list[str]
    enrollments: list[Enrollment]


class SubscriberPage(BaseModel):
    """One page of subscribers; pass `next` as `after` for the following one."""

    subscribers: list[SubscriberOut]
    next: int | None


class EventRow(BaseModel):
    """An event of the subscriber."""

    type: str
    at: datetime
    funnel: str | None
    question: str | None
    answer: str | None
    product: str | None
    name: str | None
    amount: float | None
    currency: str | None


class DeliveryRow(BaseModel):
    """An email decided for the subscriber and what became of it."""

    funnel: str
    step: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_reply: str | None


class SubscriberDetail(SubscriberOut):
    """A subscriber with everything that happened to them."""

    events: list[EventRow]
    deliveries: list[DeliveryRow]


def key_refusal(web: Web, authorization: str | None) -> str | None:
    """Why the Authorization header does not open the API (the message of a 401), or None."""
    if not web.api_key:
        return "the API is off: set FUNNEL_API_KEY (or api_key in funnel.toml)"
    scheme, _, given = (authorization or "").partition(" ")
    key = given.strip().encode("utf-8", "replace") if scheme.lower() == "bearer" else b""
    if not hmac.compare_digest(key, web.api_key.encode("utf-8")):
        return "send Authorization: Bearer <api key>"
    return None


def api_key_required(web: Web) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """The dependency of every /api/ route (api_stats.py too): the bearer key, or 401.

    KeyGate has checked the key before the body was read; this documents it in the OpenAPI
    schema and keeps a route safe in an app built without the gate.
    """

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]) -> None:
        header = f"Bearer {credentials.credentials}" if credentials else None
        refusal = key_refusal(web, header)
        if refusal:
            raise HTTPException(401, refusal, headers={"WWW-Authenticate": "Bearer"})

    return authorized


class KeyGate:
    """ASGI middleware: a call under /api/ without the key is answered 401 before a byte of its body is read.

    FastAPI reads and parses a route's JSON body before it runs the route's dependencies,
    so the key check of `api_key_required` alone came too late: four unauthenticated
    100 MB posts took a daemon from 110 MB to 1 GB (issue 13).
    """

    def __init__(self, app: ASGIApp, web: Web) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX + "/"):
            refusal = key_refusal(self.web, Headers(scope=scope).get("authorization"))
            if refusal:
                # Connection: close: the unread body must not be taken for the next request.
                answer = JSONResponse({"detail": refusal}, status_code=401,
                                      headers={"WWW-Authenticate": "Bearer", "Connection": "close"})
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "no or wrong API key"}}


def router(web: Web) -> APIRouter:
    """The /api/ routes."""
    routes = APIRouter(prefix=PREFIX, dependencies=[Depends(api_key_required(web))], responses=UNAUTHORIZED,
                       route_class=StrictJsonRoute)

    @routes.post("/events", status_code=201, response_model=EventOut,
                 responses={200: {"model": EventOut, "description": "a repeated id: nothing recorded"},
                            404: {"description": "no such subscriber"},
                            422: {"description": "a field is wrong, or message_id names another's email"}},
                 summary="Record a purchase, tag, untag, unsubscribe, complaint, bounce or custom event")
    async def post_event(event: EventIn) -> JSONResponse:
        now = web.clock.now()

        def job(conn: DbConnection) -> tuple[int, bool] | None:
            row = _subscriber(conn, event)
            if row is None:
                return None
            if event.type == EventType.UNSUBSCRIBE.value:
                # Per subscriber: the same caller id for another person is another request.
                key = f"api:{row['id']}:{event.id}" if event.id else f"api:{row['id']}:{now.isoformat()}"
                stops, new = inbound.unsubscribe(conn, row["id"], event.funnel, now, key)
                web.stoplist.add(stops)
                return row["id"], new
            if event.type in FEEDBACK:
                return row["id"], _feedback(conn, web, row["id"], event, now)
            shop = inbound.ShopEvent(type=event.type, product=event.product, amount=event.amount,
                                     currency=event.currency, name=event.name, id=event.id)
            return row["id"], inbound.record_shop_event(conn, row["id"], shop, now)

        if event.funnel is not None and event.funnel not in web.plans():
            raise HTTPException(422, f"no funnel '{event.funnel}'; "
                                + did_you_mean(event.funnel, sorted(web.plans()), "leave 'funnel' out"))
        try:
            found = await web.writer.run(job)
        except NotTheirs as error:
            raise HTTPException(422, str(error)) from error
        if found is None:
            raise HTTPException(404, "no subscriber with this address or id")
        subscriber, new = found
        log(FEEDBACK.get(event.type, "event"), type=event.type, subscriber=subscriber, new=new,
            product=event.product)
        out = EventOut(status="recorded" if new else "duplicate", subscriber_id=subscriber, type=event.type)
        return JSONResponse(out.model_dump(), status_code=201 if new else 200)

    @routes.get("/subscribers", response_model=SubscriberPage, summary="List subscribers, oldest first")
    async def list_subscribers(
        funnel: Annotated[str | None, Query(max_length=100)] = None,
        status: Annotated[str | None, Query(max_length=20)] = None,
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> SubscriberPage:
        return await run_in_threadpool(_page, web, funnel, status, after, limit)

    @routes.post("/subscribers", status_code=201, response_model=SubscriberOut,
                 responses={200: {"model": SubscriberOut, "description": "already known"},
                            404: {"description": "no such funnel"}, 422: {"description": "a field is wrong"}},
                 summary="Add a subscriber to a funnel")
    async def add_subscriber(body: SubscriberIn) -> JSONResponse:
        values: dict[str, Any] = {k: v for k, v in body.model_dump().items()
                                  if isinstance(v, str) and v is not None}
        values.update({f"fields[{k}]": v for k, v in body.fields.items()})
        values.update({f"answers[{k}]": v for k, v in body.answers.items()})
        try:
            if web.check_email_domain:  # a DNS lookup: not on the event loop
                signup = await run_in_threadpool(check_signup, values, web.plans(), True)
            else:
                signup = check_signup(values, web.plans())
        except Refusal as refusal:
            problems = [{"loc": ["body", where], "msg": msg, "type": "value_error"}
                        for where, msg in refusal.problems]
            return JSONResponse({"detail": problems}, status_code=refusal.status)
        plan = signup.plan
        now = web.clock.now()
        proof = Proof("api", wording="added through the admin API"
                      + (", confirmed elsewhere" if body.confirmed else ""))

        def job(conn: DbConnection) -> tuple[int | None, bool]:
            added = add_lead(conn, plan, signup.lead, proof, now)
            if added.subscriber_id and body.confirmed and plan.double_opt_in:
                queries.record_event(conn, added.subscriber_id, EventType.CONFIRMED.value, now,
                                     funnel=plan.funnel, external_id=f"api-confirm:{added.enrollment_id}")
            return added.subscriber_id, added.new_subscriber

        subscriber, new = await web.writer.run(job)
        if subscriber is None:
            raise HTTPException(409, "this address is suppressed (bounced, complained or forgotten)")
        log("api_subscriber", subscriber=subscriber, funnel=plan.funnel, new=new)
        detail: SubscriberDetail | None = await run_in_threadpool(_detail, web, signup.lead.email)
        assert detail is not None
        out = SubscriberOut.model_validate(detail.model_dump(exclude={"events", "deliveries"}))
        return JSONResponse(out.model_dump(mode="json"), status_code=201 if new else 200)

    @routes.get("/subscribers/{email}", response_model=SubscriberDetail,
                responses={404: {"description": "no such subscriber"}},
                summary="One subscriber with their funnels, events and emails")
    async def get_subscriber(email: Annotated[str, _plain(MAX_LENGTH)]) -> SubscriberDetail:
        detail = await run_in_threadpool(_detail, web, email)
        if detail is None:
            raise HTTPException(404, "no subscriber with this address")
        return detail

    routes.include_router(api_broadcasts.router(web))  # /api/broadcasts
    routes.include_router(api_experiments.router(web))  # /api/experiments
    return routes


class NotTheirs(Exception):
    """The message_id of a complaint or bounce names an email sent to someone else."""


def _subscriber(conn: DbConnection, event: EventIn) -> Row | None:
    """The subscriber the event names by address or id."""
    if event.email is not None:
        return queries.find_subscriber(conn, event.email)
    assert event.subscriber_id is not None  # EventIn checks that one of the two is given
    return queries.subscribers_by_id(conn, [event.subscriber_id]).get(event.subscriber_id)


def _feedback(conn: DbConnection, web: Web, subscriber: int, event: EventIn, now: datetime) -> bool:
    """Record a complaint or a hard bounce reported through the API; True when new."""
    message_id = bare_message_id(event.message_id)
    delivery = sentmail.delivery_by_message_id(conn, message_id) if message_id else None
    if delivery is not None and delivery["subscriber_id"] != subscriber:
        raise NotTheirs(f"message_id {message_id} was sent to another subscriber, not to this one")
    # Without an id, the email named (or the moment) tells a repeated report from a new one.
    key = f"api:{subscriber}:{event.id or message_id or now.isoformat()}"
    if event.type == EventType.COMPLAINT.value:
        stops, new = inbound.complain(conn, subscriber, now, key, delivery)
    else:
        stops, new = inbound.bounce(conn, subscriber, now, key, delivery, detail="reported through the API")
    web.stoplist.add(stops)  # before the commit: a send checking meanwhile must see it
    return new


def _summary(row: Row, tags: list[str], enrollments: list[Row]) -> SubscriberOut:
    return SubscriberOut(id=row["id"], email=row["email"], name=row["name"] or "",
                         first_name=row["first_name"], last_name=row["last_name"], status=row["status"],
                         locale=row["locale"], timezone=row["timezone"], source=row["source"],
                         fields=dict(row["fields"] or {}), created_at=row["created_at"], tags=sorted(tags),
                         enrollments=[Enrollment(funnel=e["funnel"], stage=e["stage"], segment=e["segment"],
                                                 step=e["step"], next_run_at=e["next_run_at"])
                                      for e in enrollments])


def _summaries(conn: DbConnection, rows: list[Row]) -> list[SubscriberOut]:
    """The rows with their tags and enrollments: two statements however many rows there are."""
    ids = [row["id"] for row in rows]
    tags = subscribers.tags_by_subscriber(conn, ids)
    enrollments = signups.enrollments_by_subscriber(conn, ids)
    return [_summary(row, tags.get(row["id"], []), enrollments.get(row["id"], [])) for row in rows]


def _page(web: Web, funnel: str | None, status: str | None, after: int, limit: int) -> SubscriberPage:
    with web.db_engine.connect() as conn:
        items = _summaries(conn, subscribers.subscribers_page(conn, funnel, status, after, limit))
    return SubscriberPage(subscribers=items, next=items[-1].id if len(items) == limit else None)


def _detail(web: Web, email: str) -> SubscriberDetail | None:
    with web.db_engine.connect() as conn:
        row = queries.find_subscriber(conn, email)
        if row is None:
            return None
        summary = _summaries(conn, [row])[0]
        events = queries.events_by_subscriber(conn, [row["id"]]).get(row["id"], [])
        deliveries = queries.deliveries_of(conn, row["id"])
    return SubscriberDetail(
        **summary.model_dump(),
        events=[EventRow.model_validate(dict(e)) for e in events],
        deliveries=[DeliveryRow.model_validate(dict(d)) for d in deliveries],
    )
