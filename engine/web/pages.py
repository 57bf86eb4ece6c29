"""The few HTML pages people see: confirm, answer, unsubscribe, and a refused form.

Autoescaped Jinja templates from engine/web/pages/, served with headers that keep the
signed token in the URL to ourselves (no Referer, no caching, no framing, no scripts).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, Response

from engine.web.catalogue import DEFAULT, translator

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("engine.web", "pages"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        auto_reload=False,
    )


def page(name: str, status: int = 200, language: str = DEFAULT, **context: Any) -> HTMLResponse:
    """The page `name`.html rendered with `context`, its words in `language` (catalogue.py)."""
    html = _environment().get_template(f"{name}.html").render(
        **context, lang=language, _=translator(language))
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def not_found() -> Response:
    """The answer to any token that is forged, changed, expired or unknown: plain, and the same for all."""
    return Response("Not Found", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
