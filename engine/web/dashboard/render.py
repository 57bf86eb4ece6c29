"""The dashboard's pages: autoescaped Jinja templates, served with a strict Content-Security-Policy.

The policy allows nothing but the dashboard's own style sheet, data: images, frames from
this site (the outbox preview) and form posts back here: no script runs on these
pages, whatever a subscriber typed into their name.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from engine.web.dashboard.chart import percent
from engine.web.dashboard.session import Session
from engine.web.pages import SECURITY_HEADERS

HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def _money(amounts: Mapping[str, float] | None) -> str:
    if not amounts:
        return "0"
    return ", ".join(f"{amount:,.2f} {currency}".strip() for currency, amount in sorted(amounts.items()))


def _at(value: datetime | str | None) -> str:
    """A time (or an ISO 8601 text, as the report has them) in UTC, to the minute."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The one Jinja environment of the dashboard's templates."""
    env = Environment(
        loader=PackageLoader("engine.web.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        auto_reload=False,
    )
    env.filters["percent"] = lambda value: percent(value) or "-"
    env.filters["money"] = _money
    env.filters["at"] = _at
    return env


def page(name: str, status: int = 200, headers: Mapping[str, str] | None = None,
         **context: Any) -> HTMLResponse:
    """The page `name`.html rendered with `context`, with the dashboard's security headers."""
    html = environment().get_template(f"{name}.html").render(**context)
    return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})


def not_found(session: Session, what: str) -> HTMLResponse:
    """The dashboard's 404 page, saying what was not found."""
    return page("message", status=404, session=session, title="Not found", text=what)


def style() -> str:
    """The dashboard's style sheet."""
    loader = environment().loader
    assert loader is not None
    source, _, _ = loader.get_source(environment(), "dashboard.css")
    return source
