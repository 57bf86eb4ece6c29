"""A real `funnel run` process and the mailbox it sends to, for end-to-end tests.

`live_daemon` starts the daemon as an operator does (a subprocess with FUNNEL_ variables)
on a SQLite file, sending over SMTP to a `Mailbox`: a recording aiosmtpd handler on
loopback (tests/support/smtp_server.py) that can also hold its reply to one message.
Holding the reply keeps the daemon's tick waiting on the SMTP server, as a slow server
would, so a test can act on that message before the fast clock runs on to the next
decision.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.mail.context import PreviewLinks, Subscriber, template_context
from engine.mail.render import Renderer
from engine.sequences.plan import Plan
from tests.support.smtp_server import Received, RecordingHandler

API_KEY = "e2e-api-key"
# The longest a test waits for any one thing. Far more than anything takes on an idle
# machine (a second or two), so that a slow, shared one makes a test slower, not red.
PATIENCE = 120.0
# A held reply is given anyway after this long, so that a failed test never leaves the
# daemon hanging; the daemon's own SMTP timeout is set above it.
HOLD_LIMIT = 100.0
T = TypeVar("T")
_TEXT_URL = re.compile(r"https?://[^\s<>\"')\]]+")


class Mailbox(RecordingHandler):
    """A RecordingHandler that parses what it gets and can hold its reply to a message by subject."""

    def __init__(self) -> None:
        super().__init__()
        self._holds: dict[str, threading.Event] = {}
        self._parsed: list[tuple[str, EmailMessage]] = []

    def hold(self, subject: str) -> None:
        """Hold the reply to the next message with this subject until `release(subject)`."""
        with self._lock:
            self._holds[subject] = threading.Event()

    def release(self, subject: str | None = None) -> None:
        """Let the held reply (or, with no subject, every one) go."""
        with self._lock:
            events = [self._holds[subject]] if subject is not None else list(self._holds.values())
        for event in events:
            event.set()

    def messages(self, rcpt: str) -> list[EmailMessage]:
        """What `rcpt` received, in the order the server took it (held ones included)."""
        with self._lock:
            return [m for to, m in self._parsed if to == rcpt]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message first, so that a test can read a held one; then hold if asked."""
        data = envelope.original_content or b""
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        subject = subject_of(parsed)
        with self._lock:
            for rcpt in envelope.rcpt_tos:
                self._parsed.append((rcpt, parsed))
            hold = self._holds.get(subject)
        self._record(Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), data))
        if hold is not None:
            deadline = time.monotonic() + HOLD_LIMIT
            while not hold.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return "250 2.0.0 OK queued"


def subject_of(message: EmailMessage) -> str:
    """The decoded subject on one line."""
    return " ".join(str(message["Subject"] or "").split())


def html_of(message: EmailMessage) -> str:
    """The HTML part's text."""
    part = message.get_body(("html",))
    assert part is not None, "the message has no HTML part"
    return str(part.get_content())


def text_of(message: EmailMessage) -> str:
    """The plain-text part's text."""
    part = message.get_body(("plain",))
    assert part is not None, "the message has no text part"
    return str(part.get_content())


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []  # (href, text)
        self.sources: list[str] = []
        self._open: list[str] | None = None
        self._href = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href, self._open = dict(attrs).get("href") or "", []
        elif tag == "img":
            self.sources.append(dict(attrs).get("src") or "")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.found.append((self._href, " ".join("".join(self._open).split())))
            self._open = None


def anchors(html: str) -> list[tuple[str, str]]:
    """(href, text) of every <a> in `html`, decoded, in order."""
    parser = _Anchors()
    parser.feed(html)
    return parser.found


def every_link(message: EmailMessage) -> list[str]:
    """Every URL a mail scanner would fetch: hrefs and images of the HTML part, URLs of the
    text part and the List-Unsubscribe header; once each, in order of appearance."""
    parser = _Anchors()
    parser.feed(html_of(message))
    found = [href for href, _ in parser.found] + parser.sources + _TEXT_URL.findall(text_of(message))
    found += re.findall(r"<(https?://[^>]+)>", str(message["List-Unsubscribe"] or ""))
    return list(dict.fromkeys(u for u in found if u.startswith(("http://", "https://"))))


def subject_steps(project: Path, plan: Plan, address: str, name: str) -> dict[str, str]:
    """Subject -> step id for every email of `plan`, rendered for this subscriber as the daemon does."""
    renderer = Renderer(project / "templates")
    subscriber = Subscriber(email=address, name=name)
    steps: dict[str, str] = {}
    for step in plan.emails():
        if step is plan.confirmation_again:  # the confirmation resent: the same subject, not walked here
            continue
        context = template_context(plan, step, subscriber, PreviewLinks(), segment=step.segment)
        subject = " ".join(renderer.subject(step.subject, context).split())
        assert subject not in steps, f"steps {steps[subject]} and {step.id} share the subject {subject!r}"
        steps[subject] = step.id
    return steps


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveDaemon:
    """A running `funnel run`, an HTTP client on it, and its log."""

    process: subprocess.Popen[bytes]
    base_url: str
    http: httpx.Client
    log: Path

    @property
    def api(self) -> dict[str, str]:
        """Headers that carry the API key."""
        return {"Authorization": f"Bearer {API_KEY}"}

    def log_tail(self, lines: int = 40) -> str:
        """The end of the daemon's log, for failure messages."""
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_for(self, condition: Callable[[], T | None], what: str | Callable[[], str],
                 timeout: float = PATIENCE) -> T:
        """Poll `condition()` until it returns something true, and return that; fail after `timeout`.

        `what` (or what it returns, when the wait fails) says what was awaited.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if self.process.poll() is not None:
                raise AssertionError(f"the daemon exited ({self.process.returncode}) while waiting for "
                                     f"{_said(what)}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {_said(what)}:\n"
                                     f"{self.log_tail()}")
            time.sleep(0.02)

    def subscriber(self, address: str) -> dict[str, Any]:
        """GET /api/subscribers/{address}: the subscriber, enrollments, events and deliveries."""
        response = self.http.get(f"/api/subscribers/{address}", headers=self.api)
        assert response.status_code == 200, response.text
        return dict(response.json())


def _said(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


@contextmanager
def live_daemon(project: Path, smtp_port: int, folder: Path, scale: float,
                **env: str) -> Iterator[LiveDaemon]:
    """`funnel run --time-scale SCALE --force` on a SQLite file in `folder`, healthy; SIGTERM at the end."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")},
        "FUNNEL_DATABASE_URL": f"sqlite:///{folder / 'funnel.db'}",
        "FUNNEL_TRANSPORT": "smtp",
        "FUNNEL_SMTP_HOST": "127.0.0.1",
        "FUNNEL_SMTP_PORT": str(smtp_port),
        "FUNNEL_SMTP_TLS": "none",
        "FUNNEL_SMTP_TIMEOUT": str(HOLD_LIMIT + 20),
        "FUNNEL_SECRET_KEY": "e2e-secret-" + "s" * 32,
        "FUNNEL_API_KEY": API_KEY,
        "FUNNEL_BASE_URL": base_url,
        "FUNNEL_TICK_SECONDS": "0.05",
        "FUNNEL_SEND_RATE": "1000",
        **env,
    }
    log = folder / "daemon.log"
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "--project", str(project), "run", "--port", str(port),
             "--time-scale", f"{scale:g}", "--force"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as http:
            daemon = LiveDaemon(process, base_url, http, log)
            daemon.wait_for(lambda: _healthy(http), "/healthz to answer 200 with the scheduler ticking")
            yield daemon
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, daemon.log_tail()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _healthy(http: httpx.Client) -> bool:
    try:
        response = http.get("/healthz", timeout=2)
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.json()["checks"]["scheduler"] == "ok"
