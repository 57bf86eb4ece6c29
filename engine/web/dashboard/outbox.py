"""The dashboard's outbox: the .eml files the outbox transport wrote, newest first, and each
message as its recipient would see it.

The message's HTML comes from its own route, shown in an `<iframe sandbox="">` and
served with `Content-Security-Policy: sandbox`: no script of the email runs, and the
frame is not of our origin, so it cannot read the dashboard or its cookie. Remote
images are not loaded: the open pixel must not count the operator's look as an open.
A file name is accepted only if it is one the transport could have written
(engine/mail/outbox.py's safe names), directly inside the folder and not a link. Any bytes
in a file show as text (eml.py): no stored message makes a page fail.
"""

from __future__ import annotations

import heapq
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, Response

from engine.web.context import Web
from engine.web.dashboard import eml
from engine.web.dashboard.auth import HOME, Gate
from engine.web.dashboard.eml import Shown
from engine.web.dashboard.render import not_found, page
from engine.web.dashboard.session import Session
from engine.web.pages import SECURITY_HEADERS

PAGE_SIZE = 50
MAX_MESSAGE = 10 * 1024 * 1024  # bytes read of one .eml; ours are tens of KiB
HEADER_BYTES = 64 * 1024  # what the list reads of each shown file for its subject and recipient
_NAME = re.compile(r"^[A-Za-z0-9@_+-][A-Za-z0-9@._+-]{0,250}\.eml$")


def _untracked(html: str, base_url: str) -> str:
    """The HTML with its tracked links disarmed: an operator's click in the preview is not the
    subscriber's click (and would count as one)."""
    base = re.escape(base_url.rstrip("/"))
    tracked = re.compile(r'href\s*=\s*(["\'])' + base + r"/c/[^\"']*\1", re.IGNORECASE)
    return tracked.sub('href="#" title="a tracked link: not followed in the preview"', html)


FRAME_HEADERS = {
    **SECURITY_HEADERS,
    # sandbox: an opaque origin, no scripts, no forms, no popups, whether framed or opened alone.
    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "SAMEORIGIN",
}


@dataclass(frozen=True)
class Listed:
    """One .eml file of the outbox."""

    name: str
    written: datetime
    subject: str
    to: str


def message_path(directory: Path, name: str) -> Path | None:
    """The file `name` inside `directory`, if it is a plain .eml file there; else None."""
    if not _NAME.match(name):
        return None
    path = directory / name
    try:
        if path.is_symlink() or not path.is_file():
            return None
        if Path(os.path.realpath(path)).parent != Path(os.path.realpath(directory)):
            return None
    except OSError:
        return None
    return path


def listing(directory: Path, offset: int, limit: int) -> tuple[list[Listed], int]:
    """`limit` messages from `offset`, newest first, and how many there are."""
    found: list[tuple[float, str]] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if _NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                    found.append((entry.stat(follow_symlinks=False).st_mtime, entry.name))
    except (FileNotFoundError, NotADirectoryError):
        return [], 0
    newest = heapq.nlargest(offset + limit, found)[offset:]
    return [_listed(directory, name, mtime) for mtime, name in newest], len(found)


def _listed(directory: Path, name: str, mtime: float) -> Listed:
    try:
        with open(directory / name, "rb") as file:
            head = file.read(HEADER_BYTES)
    except OSError:  # deleted since the folder was listed, or not readable
        return Listed(name, datetime.fromtimestamp(mtime, UTC), "(unreadable)", "")
    head = head.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]  # the body is not needed here
    subject, to = eml.summary(head)
    return Listed(name, datetime.fromtimestamp(mtime, UTC), subject, to)


def read_message(path: Path) -> Shown:
    """The message in `path`, split for showing."""
    with open(path, "rb") as file:
        return eml.shown(file.read(MAX_MESSAGE))


def router(web: Web, gate: Gate) -> APIRouter:
    """The outbox pages."""
    routes = APIRouter(include_in_schema=False)

    def opened(request: Request, name: str) -> tuple[Session, Shown] | Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        path = message_path(web.outbox_dir, name) if web.outbox_dir is not None else None
        if path is None:
            return not_found(session, "No message of the outbox has this name.")
        try:
            return session, read_message(path)
        except OSError:  # deleted between the check and the read
            return not_found(session, "No message of the outbox has this name.")

    @routes.get(HOME + "/outbox")
    def outbox(request: Request, number_text: Annotated[str, Query(alias="page")] = "1") -> Response:
        session = gate.require(request)
        if not isinstance(session, Session):
            return session
        if web.outbox_dir is None:
            return page("outbox", session=session, enabled=False, items=[], total=0, number=1, pages=1)
        valid = number_text.isascii() and number_text.isdigit() and len(number_text) < 8
        number = int(number_text) if valid else 1
        number = max(1, number)
        items, total = listing(web.outbox_dir, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        return page("outbox", session=session, enabled=True, items=items, total=total, number=number,
                    pages=pages, folder=str(web.outbox_dir))

    @routes.get(HOME + "/outbox/{name}")
    def message(request: Request, name: str) -> Response:
        found = opened(request, name)
        if not isinstance(found, tuple):
            return found
        session, shown = found
        return page("message_view", session=session, message=name, shown=shown)

    @routes.get(HOME + "/outbox/{name}/html")
    def message_html(request: Request, name: str) -> Response:
        found = opened(request, name)
        if not isinstance(found, tuple):
            return found
        html = found[1].html
        if html is None:
            return not_found(found[0], "This message has no HTML part.")
        return HTMLResponse(_untracked(html, web.base_url), headers=FRAME_HEADERS)

    return routes
