"""The trailing-slash redirect (`/dashboard/` -> `/dashboard`) with a relative Location.

Starlette's own (`Router.redirect_slashes`) builds an absolute URL from the request's
`Host` header, so a forged Host ended up in `Location` (a cache in front could keep that
redirect for everyone). This one answers with the path alone: the browser stays on the
site it asked, whatever Host said, and a proxy's public name needs no setting here.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import RedirectResponse
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

# Characters a path or query may carry as they are; everything else (CR, LF, spaces,
# non-ASCII) is percent-encoded, so nothing the client sent can break the header.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?%"


def slash_redirects(router: Router) -> ASGIApp:
    """The router's answer when no route matched: a redirect to the path with (or without) the
    trailing slash when that one exists, else the router's usual 404."""

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path != "/":
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            moved = {**scope, "path": other}
            if other and any(route.matches(moved)[0] is not Match.NONE for route in router.routes):
                await RedirectResponse(location(other, scope.get("query_string", b"")))(scope, receive, send)
                return
        await router.not_found(scope, receive, send)

    return default


def location(path: str, query: bytes) -> str:
    """A relative Location for `path` and the raw query: never `//host` (another site)."""
    target = "/" + quote(path, safe=_PATH_SAFE).lstrip("/")
    if query:
        target += "?" + quote(query.decode("latin-1"), safe=_QUERY_SAFE)
    return target
