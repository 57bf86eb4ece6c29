"""The dashboard's email page: one email of a funnel, its numbers, and a preview as the sample
subscriber would read it, in any of the funnel's languages and as any of its variants.

The preview is rendered by the live release's renderer (the templates being served), with
the same context as a send and links that count nothing (engine/mail/preview.py). Its HTML
has its own route, shown in an `<iframe sandbox="">` and served with the sandbox policy of
the outbox's messages: no script of the email runs, no remote image is fetched.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from engine.mail.context import SAMPLE
from engine.mail.preview import Preview, preview
from engine.sequences.languages import is_tag
from engine.sequences.plan import Plan
from engine.store.stepstats import StepCounts, step_counts
from engine.web.context import Web
from engine.web.dashboard.auth import HOME, Gate
from engine.web.dashboard.chart import LABELS, figures
from engine.web.dashboard.outbox import FRAME_HEADERS
from engine.web.dashboard.render import not_found, page
from engine.web.dashboard.session import Session

_ID_LIMIT = 100  # the funnel and step columns' length


def email_href(funnel: str, step: str) -> str:
    """The email page of `step` in `funnel`, as links to it are written."""
    return f"{HOME}/funnels/{quote(funnel, safe='')}/emails/{quote(step, safe='')}"


def router(web: Web, gate: Gate) -> APIRouter:
    """The email page and its preview's HTML."""
    routes = APIRouter()

    def shown(request: Request, funnel: str, step: str, variant: str | None,
              locale: str | None) -> tuple[Session, Plan, Preview] | Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        plan = web.plans().get(funnel[:_ID_LIMIT + 1])
        if plan is None:
            return not_found(session, f"No funnel '{funnel}' in the release being served.")
        email = plan.email(step[:_ID_LIMIT + 1])
        if email is None:
            return not_found(session, f"Funnel '{funnel}' has no email '{step}' in the release being served.")
        if variant and variant not in {v.id for v in email.variants}:
            return _refused(session, f"Email '{step}' has no variant '{variant}'; its variants are: "
                            f"{', '.join(v.id for v in email.variants) or 'none'}.")
        if locale and not is_tag(locale):
            return _refused(session, f"'{locale}' is not a language tag; write one like en, hu or pt-BR.")
        if web.renderer is None:
            return not_found(session, "This daemon renders no previews.")
        subscriber = replace(SAMPLE, locale=locale) if locale else SAMPLE
        found = preview(plan, web.renderer(), email.id, subscriber, variant=variant or None)
        assert found is not None  # the email is the plan's
        return session, plan, found

    @routes.get(HOME + "/funnels/{funnel}/emails/{step}")
    def email_page(request: Request, funnel: str, step: str, variant: str | None = None,
                   locale: str | None = None) -> Response:
        found = shown(request, funnel, step, variant, locale)
        if not isinstance(found, tuple):
            return found
        session, plan, sample = found
        with web.db_engine.connect() as conn:
            counts = next(iter(step_counts(conn, plan.funnel, steps=[sample.email.id])), None)
        numbers = (counts or StepCounts(plan.funnel, sample.email.id)).as_dict()
        return page("email", session=session, plan=plan, sample=sample, variant=variant or "",
                    locale=locale or "", counts=figures(numbers, list(LABELS)),
                    base=email_href(plan.funnel, sample.email.id))

    @routes.get(HOME + "/funnels/{funnel}/emails/{step}/html")
    def email_html(request: Request, funnel: str, step: str, variant: str | None = None,
                   locale: str | None = None) -> Response:
        found = shown(request, funnel, step, variant, locale)
        if not isinstance(found, tuple):
            return found
        return HTMLResponse(found[2].rendered.html, headers=FRAME_HEADERS)

    return routes


def _refused(session: Session, text: str) -> HTMLResponse:
    return page("message", status=400, session=session, title="Not shown", text=text)
