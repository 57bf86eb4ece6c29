"""Reading a request body with a size cap, without reading past it: one place for every route."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request


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
