"""A real SMTP server on loopback (aiosmtpd) that records what it gets, in a test or as its own process.

In a test::

    handler = RecordingHandler(reply_for=lambda rcpt: "550 5.1.1 no such user" if "ghost" in rcpt else None)
    with running_smtp(handler) as server:
        ...  # send to server.host, server.port
    handler.received  # [Received(mail_from, rcpt_tos, data, dropped)]

As a process (for crash tests that count copies)::

    python -m tests.support.smtp_server --port 0 --log accepted.jsonl --tempfail-percent 5 \
        --bounce-percent 1 [--tempfail-once] [--contents]

prints "ready <port>" once listening and appends {"rcpt": ..., "message_id": ...} to the log
for every accepted recipient (with --contents, its "subject" and its tracked "clicks" links
too); which recipients fail is decided by `planned_reply` (with --tempfail-once a 451
recipient is accepted from its second attempt on). SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.message
import email.policy
import hashlib
import json
import re
import signal
import ssl
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

DROP = "drop"  # an after-DATA "reply" that closes the connection without answering
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^>\r\n]*)>", re.IGNORECASE | re.MULTILINE)
_CLICK = re.compile(r'href="([^"]*/c/[^"]+)"')  # a tracked link (engine/mail/tracking.py)


@dataclass(frozen=True)
class Received:
    """One message as the server got it; `dropped` when the connection was cut instead of a reply."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    dropped: bool = False


class RecordingHandler:
    """An aiosmtpd handler that records messages and connections and answers as told.

    `reply_for(rcpt)` may return a reply for RCPT ("451 4.3.0 try later"); `after_data(rcpt)`
    a reply for the end of the data ("554 5.7.1 no", "421 4.7.0 busy") or DROP. None accepts.
    The server runs in its own thread, so everything recorded sits behind a lock.
    """

    def __init__(self, reply_for: Callable[[str], str | None] | None = None, *,
                 after_data: Callable[[str], str | None] | None = None, log: TextIO | None = None,
                 contents: bool = False) -> None:
        self.reply_for = reply_for
        self.after_data = after_data
        self.log = log
        self.contents = contents  # log each message's subject and tracked links too
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._open: set[SMTP] = set()
        self._connections = 0
        self._max_open = 0
        self._auth: list[str] = []

    @property
    def received(self) -> list[Received]:
        """The messages taken (and those dropped after their data), in order."""
        with self._lock:
            return list(self._received)

    @property
    def connections(self) -> int:
        """How many SMTP sessions (connections that said EHLO) there were."""
        with self._lock:
            return self._connections

    @property
    def max_open(self) -> int:
        """The most sessions open at the same time."""
        with self._lock:
            return self._max_open

    @property  # not named auth_*: aiosmtpd would offer any handler attribute so named as a mechanism
    def used_auth(self) -> list[str]:
        """The AUTH mechanisms clients used, one entry per attempt."""
        with self._lock:
            return list(self._auth)

    def connection_closed(self, server: SMTP) -> None:
        """Called by the server when a connection ends."""
        with self._lock:
            self._open.discard(server)

    def authenticator(self, user: str, password: str) -> Callable[..., AuthResult]:
        """An aiosmtpd authenticator accepting `user` with `password` only."""
        def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: Any) -> AuthResult:
            with self._lock:
                self._auth.append(mechanism)
            ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
                user.encode(), password.encode())
            # handled=False: aiosmtpd answers 535 itself; True would leave the client waiting.
            return AuthResult(success=ok, handled=False, auth_data=auth_data)
        return check

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        """Count the session (once, even when STARTTLS makes the client say EHLO again)."""
        session.host_name = hostname
        with self._lock:
            if server not in self._open:
                self._open.add(server)
                self._connections += 1
                self._max_open = max(self._max_open, len(self._open))
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        """Refuse as `reply_for` says, else accept the recipient."""
        reply = self.reply_for(address) if self.reply_for else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message, then answer as `after_data` says (or drop the connection)."""
        rcpts = tuple(envelope.rcpt_tos)
        message = Received(envelope.mail_from or "", rcpts, envelope.original_content or b"")
        replies = [r for r in map(self.after_data, rcpts) if r] if self.after_data else []
        if replies and replies[0] == DROP:
            self._record(Received(message.mail_from, rcpts, message.data, dropped=True))
            assert server.transport is not None
            server.transport.close()
            return "250 2.0.0 never heard"  # written to a closed connection: ignored
        if replies:
            return replies[0]
        self._record(message)
        return "250 2.0.0 OK queued"

    def _record(self, message: Received) -> None:
        match = _MESSAGE_ID.search(message.data)
        message_id = match.group(1).decode("ascii", "replace") if match else None
        with self._lock:
            self._received.append(message)
            if self.log is not None:
                for rcpt in message.rcpt_tos:
                    line: dict[str, Any] = {"rcpt": rcpt, "message_id": message_id}
                    if message.dropped:
                        line["dropped"] = True
                    if self.contents:
                        line.update(_contents(message.data))
                    self.log.write(json.dumps(line) + "\n")
                self.log.flush()


def _contents(data: bytes) -> dict[str, Any]:
    """A message's subject and the tracked click links of its HTML part, as a reader would follow them."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    body = parsed.get_body(("html",))
    html = body.get_content() if isinstance(body, email.message.EmailMessage) else ""
    return {"subject": str(parsed["Subject"]), "clicks": _CLICK.findall(html)}


class _CountingSMTP(SMTP):
    """aiosmtpd's server, telling the handler when a connection ends."""

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        closed = getattr(self.event_handler, "connection_closed", None)
        if closed is not None:
            closed(self)


class _Controller(Controller):
    """aiosmtpd's threaded controller on a free port (0), with connection counting."""

    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # The server is listening by now; learn the port the OS picked before the
        # controller's own readiness check connects to it.
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class SmtpServer:
    """Where a running test server listens."""

    host: str
    port: int
    handler: RecordingHandler


@contextmanager
def running_smtp(handler: RecordingHandler, *, port: int = 0, tls_context: ssl.SSLContext | None = None,
                 implicit_tls: bool = False, require_starttls: bool = False,
                 auth: tuple[str, str] | None = None,
                 auth_exclude: Collection[str] = ()) -> Iterator[SmtpServer]:
    """Run an SMTP server on 127.0.0.1 for the `with` block.

    `tls_context` (a server context) offers STARTTLS, or with `implicit_tls` wraps every
    connection in TLS from the start. `auth=(user, password)` requires AUTH after TLS
    (aiosmtpd's default: it warns when AUTH may go in clear text); `auth_exclude` hides
    mechanisms ("PLAIN") so a client must use another.
    """
    kwargs: dict[str, Any] = {"server_hostname": "mx.test", "timeout": 30}
    if implicit_tls:
        kwargs["ssl_context"] = tls_context
    elif tls_context is not None:
        kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
    if auth is not None:
        kwargs.update(authenticator=handler.authenticator(*auth), auth_required=True,
                      auth_exclude_mechanism=list(auth_exclude))
    controller = _Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, handler)
    finally:
        controller.stop()


def planned_reply(address: str, tempfail_percent: float, bounce_percent: float) -> str | None:
    """The RCPT reply the process server gives `address`: a hash decides, so a test can know it."""
    bucket = int.from_bytes(hashlib.sha256(address.lower().encode()).digest()[:4], "big") % 10_000 / 100
    if bucket < tempfail_percent:
        return "451 4.3.0 try again later"
    if bucket < tempfail_percent + bounce_percent:
        return "550 5.1.1 no such user"
    return None


def _planned_replies(tempfail_percent: float, bounce_percent: float,
                     once: bool) -> Callable[[str], str | None]:
    """`planned_reply` as a handler's reply_for; with `once`, a 451 only at the first attempt."""
    deferred: set[str] = set()  # touched by the server's one event-loop thread only

    def reply_for(rcpt: str) -> str | None:
        reply = planned_reply(rcpt, tempfail_percent, bounce_percent)
        if once and reply is not None and reply.startswith("451"):
            if rcpt.lower() in deferred:
                return None
            deferred.add(rcpt.lower())
        return reply
    return reply_for


def main(argv: list[str] | None = None) -> int:
    """Run the recording server until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.smtp_server", description=main.__doc__)
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    parser.add_argument("--log", type=Path, required=True, help="JSON lines of accepted recipients")
    parser.add_argument("--tempfail-percent", type=float, default=0.0, help="recipients answered 451")
    parser.add_argument("--bounce-percent", type=float, default=0.0, help="recipients answered 550")
    parser.add_argument("--tempfail-once", action="store_true",
                        help="answer 451 to a recipient's first attempt only, then accept it")
    parser.add_argument("--contents", action="store_true",
                        help="log each message's subject and tracked click links too")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with args.log.open("a", encoding="utf-8") as log:
        handler = RecordingHandler(
            _planned_replies(args.tempfail_percent, args.bounce_percent, args.tempfail_once), log=log,
            contents=args.contents)
        with running_smtp(handler, port=args.port) as server:
            print(f"ready {server.port}", flush=True)
            stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
