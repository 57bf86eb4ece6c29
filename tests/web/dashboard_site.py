"""A served daemon with a dashboard password, and a story to show in it: shared by the HTTP and
browser tests of the dashboard.

The story: Ann (answered 'new') is confirmed and waits at nurture step e1, which a guardrail
paused; two subscribers carry hostile names; the outbox holds every message sent so far
(written by the real OutboxTransport) and one hostile HTML email with a script in it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from engine.mail.outbox import OutboxTransport
from engine.mail.transport import Outgoing
from engine.store import pauses
from engine.store.tables import ENROLLMENT, STEP_PAUSE
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project
from tests.web.conftest import API_KEY, START
from tests.web.served import serve

PASSWORD = "correct horse battery staple"
SCRIPT_NAME = "<script>alert(1)</script>"
IMG_NAME = '"><img src=x onerror=alert(2)>'
HOSTILE_MESSAGE = "hostile-1@funnel.example"  # the outbox message whose HTML carries a script
PAUSE_DETAIL = "unsubscribes 5 of 200 sends (2.5%) above 2.0%"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Dash:
    """The served daemon and its HTTP client."""

    harness: Harness
    http: httpx.Client

    @property
    def outbox(self) -> Path:
        """The outbox transport's folder the dashboard shows."""
        folder = self.harness.daemon.web.outbox_dir
        assert folder is not None
        return folder


@contextmanager
def dashboard(db_url: str, folder: Path, smtp: bool = False, **settings: Any) -> Iterator[Dash]:
    """The minimal funnel served for real, with the dashboard's password set.

    `smtp`: the daemon's transport is SMTP, so there is no outbox folder to show (the
    harness still sends into memory).
    """
    values: dict[str, Any] = {"api_key": API_KEY, "admin_password": PASSWORD,
                              "base_url": "http://127.0.0.1:8000", **settings}
    harness = Harness(db_url, minimal_project(folder / "project"), START, **values)
    if smtp:
        harness.daemon.web = replace(harness.daemon.web, outbox_dir=None)
    try:
        with serve(harness) as http:
            yield Dash(harness, http)
    finally:
        harness.close()


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    found = _CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


def log_in(http: httpx.Client, password: str = PASSWORD, next_path: str = "/dashboard") -> httpx.Response:
    """Open the login page and post the password; the session cookie lands in the client."""
    form = http.get("/dashboard/login")
    assert form.status_code == 200, form.text
    return http.post("/dashboard/login", data={"csrf": csrf_of(form.text), "password": password,
                                              "next": next_path})


def tell_story(h: Harness) -> None:
    """Ann waits at the paused step e1; two hostile names sign up; the outbox gets its files."""
    h.add("ann@example.com", answers={"level": "new"}, name="Ann Lee")
    h.add("mallory@example.com", name=SCRIPT_NAME)
    h.add("imgur@example.com", name=IMG_NAME)
    h.tick()  # three confirmation emails
    h.event("ann@example.com", "confirmed", funnel="minimal")
    h.tick()  # Ann's magnet; her survey was answered on the form, so nurture begins
    with h.db_engine.begin() as conn:
        assert pauses.pause(conn, "minimal", "e1", pauses.Breach("unsubscribes", PAUSE_DETAIL, 200, 5, 0.02),
                            h.clock.now())
    # e1 was due on Wednesday at 08:00 (a 08:00-11:00 window): it waits, paused. Ends Friday 09:00.
    h.run_until(START + timedelta(days=4), every=timedelta(hours=6))
    assert "e1" not in h.sent_steps("ann@example.com")
    write_outbox(h)


def write_outbox(h: Harness) -> None:
    """Every message sent so far, and a hostile one, written by the outbox transport."""
    folder = h.daemon.web.outbox_dir
    assert folder is not None
    transport = OutboxTransport(folder)

    async def write() -> None:
        for message in h.transport.sent:
            await transport.send(message)
        await transport.send(Outgoing(HOSTILE_MESSAGE, "team@example.com", "ann@example.com", _hostile()))

    asyncio.run(write())


def _hostile() -> bytes:
    message = EmailMessage()
    message["From"] = "Team <team@example.com>"
    message["To"] = "ann@example.com"
    message["Subject"] = "Hostile <b>subject</b>"
    message["Message-ID"] = f"<{HOSTILE_MESSAGE}>"
    message.set_content("The text part.")
    message.add_alternative(
        "<html><body><h1 id='greeting'>Hello from the email</h1>"
        "<script>alert('from the email')</script>"
        "<img src='https://tracker.example/o/pixel.gif' alt='pixel'>"
        "<p>Body text</p></body></html>",
        subtype="html",
    )
    return message.as_bytes()


def ann_enrollment(h: Harness) -> dict[str, Any]:
    """Ann's enrollment row."""
    with h.db_engine.connect() as conn:
        rows = conn.execute(sa.select(ENROLLMENT).where(ENROLLMENT.c.funnel == "minimal")
                            .order_by(ENROLLMENT.c.id)).mappings().all()
    return dict(rows[0])


def pause_row(h: Harness, step: str = "e1") -> dict[str, Any]:
    """The step_pause row of a step of the minimal funnel."""
    with h.db_engine.connect() as conn:
        row = conn.execute(sa.select(STEP_PAUSE).where(STEP_PAUSE.c.funnel == "minimal",
                                                       STEP_PAUSE.c.step == step)).mappings().one()
    return dict(row)
