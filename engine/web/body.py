"""Request bodies: read with a size cap, never past it, and JSON read one way; one place for every route."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import HTTPException
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """The body is over the cap: answer 413."""


class BodyCut(Exception):
    """The client went away before sending the whole body: answer 400."""


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, at most `limit` bytes; a declared or streamed size over it raises BodyTooLarge.

    The body is cached on the request, so starlette's form parser can read it again.
    """
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
    except ClientDisconnect as error:
        raise BodyCut from error
    body = b"".join(chunks)
    request._body = body
    return body


class TooLarge(HTTPException):
    """A body over the cap, met while it streamed in: answered 413 wherever it is raised."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is over {limit // 1024} KiB; send a smaller one")


class BodyLimit:
    """ASGI middleware: no route reads more than its cap of any request body.

    A declared Content-Length over the cap is answered 413 before the app runs; a body
    without one (chunked) is counted as it streams in and cut at the cap. Routes keep their
    own smaller caps (read_capped); this is the ceiling for all, the dashboard's forms and
    FastAPI's own JSON parsing included. `limits` maps a path prefix to its cap.
    """

    def __init__(self, app: ASGIApp, limit: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.limits = dict(limits or {})

    def cap(self, path: str) -> int:
        """The cap of a request to `path`."""
        return next((cap for prefix, cap in self.limits.items() if path.startswith(prefix)), self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.cap(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await too_large(limit)(scope, receive, send)
            return
        size = 0
        started = False

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise TooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except TooLarge:  # raised where no exception handler saw it (outside a route)
            if started:
                raise
            await too_large(limit)(scope, receive, send)


def too_large(limit: int) -> Response:
    """The 413 answer for a body over `limit` bytes."""
    return JSONResponse({"detail": TooLarge(limit).detail}, status_code=413, headers={"Connection": "close"})


class DuplicateKeys(ValueError):
    """A JSON object names a key twice; parsers disagree on which value wins, so none is taken."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        named = ", ".join(f"'{key[:100]}'" for key in keys)
        super().__init__(f"{named} given more than once; send each key once")


def load_json(body: bytes | str) -> Any:
    """The JSON document in `body`; DuplicateKeys when an object repeats a key, ValueError for no JSON.

    The one JSON reader of every route: `{"type": "purchase", "type": "complaint"}` must
    not be a complaint to us and a purchase to the shop that sent it (issue 13).
    """
    return json.loads(body, object_pairs_hook=unique_keys)


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The pairs as a dict; DuplicateKeys when a key repeats (a JSON object's, or a form's fields)."""
    values: dict[str, Any] = {}
    twice: list[str] = []
    for key, value in pairs:
        if key in values and key not in twice:
            twice.append(key)
        values[key] = value
    if twice:
        raise DuplicateKeys(twice)
    return values


def duplicate_key_problems(error: DuplicateKeys) -> list[dict[str, Any]]:
    """A 422 answer's detail for `error`, one entry per key, as FastAPI lists a field's problem."""
    return [{"loc": ["body", key[:100]], "msg": f"'{key[:100]}' was sent more than once; send it once",
             "type": "value_error"} for key in error.keys]


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = load_json(await self.body())
            except DuplicateKeys as error:
                raise HTTPException(422, duplicate_key_problems(error)) from error
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body goes through load_json: a repeated key is a 422 that names it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict
