"""SmtpTransport against a real aiosmtpd server on loopback: what arrives, and every outcome by phase."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given
from hypothesis import strategies as st

from engine.mail.message import build_message, new_message_id
from engine.mail.smtp import SmtpSettings, SmtpTransport, _stuffed
from engine.mail.transport import Outcome, Outgoing, Result
from tests.mail.test_message import parse_compat32, rfc2047_display_name
from tests.support.smtp_server import DROP, RecordingHandler, SmtpServer, planned_reply, running_smtp

T = TypeVar("T")
SENDER = "sam@example.com"
HEADERS = ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "List-Unsubscribe",
           "List-Unsubscribe-Post", "Content-Type"]


def outgoing(to: str = "ann@example.com", name: str = "Ann", subject: str = "Hi", html: str = "<p>Hi</p>",
             text: str = "Hi") -> Outgoing:
    message_id = new_message_id("funnel.example.com")
    data = build_message(sender=f"Coach Sam <{SENDER}>", to_name=name, to_address=to, subject=subject,
                         html=html, text=text, message_id=message_id, date=datetime.now(UTC),
                         list_unsubscribe=f"https://funnel.example.com/u/{message_id[:8]}")
    return Outgoing(message_id, SENDER, to, data)


def settings(server: SmtpServer, **overrides: Any) -> SmtpSettings:
    values: dict[str, Any] = {"tls": "none", "local_hostname": "client.test", "timeout": 5.0}
    values.update(overrides)
    return SmtpSettings(server.host, server.port, **values)


def with_transport(config: SmtpSettings, use: Callable[[SmtpTransport], Awaitable[T]]) -> T:
    """Run `use` with a fresh transport in a fresh event loop, closing the transport after."""
    async def run() -> T:
        transport = SmtpTransport(config)
        try:
            return await use(transport)
        finally:
            await transport.close()
    return asyncio.run(run())


def send_each(config: SmtpSettings, messages: list[Outgoing]) -> list[Result]:
    """Send one after another over one transport."""
    return [result for result, _ in timed_send_each(config, messages)]


def timed_send_each(config: SmtpSettings, messages: list[Outgoing]) -> list[tuple[Result, float]]:
    """send_each, with the seconds each send took."""
    async def use(transport: SmtpTransport) -> list[tuple[Result, float]]:
        results = []
        for message in messages:
            started = time.monotonic()
            results.append((await transport.send(message), time.monotonic() - started))
        return results
    return with_transport(config, use)


def parsed(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def arrived(handler: RecordingHandler, message: Outgoing) -> EmailMessage:
    """The one copy of `message` the server took, checked to have only its envelope recipient."""
    (received,) = [r for r in handler.received if message.message_id.encode() in r.data]
    assert received.mail_from == message.mail_from
    assert received.rcpt_tos == (message.rcpt_to,)
    return parsed(received.data)


class PipeliningHandler(RecordingHandler):
    """The same server offering PIPELINING (RFC 2920): the transport sends MAIL, RCPT and DATA at once."""

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        """Add PIPELINING before the last line of the EHLO reply."""
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


@pytest.fixture(params=["one command at a time", "pipelined"])
def handler(request: pytest.FixtureRequest) -> RecordingHandler:
    """Every test of a phase's reply runs against a server without PIPELINING and one with it."""
    replies = {"later@example.com": "451 4.3.0 try later", "ghost@example.com": "550 5.1.1 no such user",
               "busy@example.com": "421 4.7.0 too busy, closing",
               "relay@elsewhere.org": "554 5.7.1 <relay@elsewhere.org>: Relay access denied"}
    after_data = {"spam@example.com": "554 5.7.1 looks like spam", "full@example.com": "452 4.3.1 disk full",
                  "tired@example.com": "421 4.7.0 closing", "drop@example.com": DROP}
    kind = PipeliningHandler if request.param == "pipelined" else RecordingHandler
    return kind(replies.get, after_data=after_data.get)


@pytest.fixture
def server(handler: RecordingHandler) -> Iterator[SmtpServer]:
    with running_smtp(handler) as running:
        yield running


@pytest.mark.parametrize("name, subject", [
    ("Árvíztűrő tükörfúrógép", "Árvíztűrő tükörfúrógép: az első edzésed"),
    ("Наталья Иванова", "Ваш план тренировок на неделю — начнём!"),
    ("王小明", "你的第一次马拉松训练计划已准备好"),
    ("François Lefèvre", "Préparez-vous : votre première séance, c'est aujourd'hui à 18 h !"),
    ("Zoë 🏃‍♀️🎉", "🎉 You did it! 42,195 km 🏅"),
    ("Łukasz Żółć " * 12, "Długi temat " * 20),
])
def test_non_ascii_names_subjects_and_bodies_arrive_exactly(
        server: SmtpServer, handler: RecordingHandler, name: str, subject: str) -> None:
    text = f"Szia {name}!\n\n{subject}\n.\nFrom the coach\n"
    html = f"<p>Szia <b>{name}</b>!</p>\n<p>{subject}</p>"
    message = outgoing(name=name, subject=subject, html=html, text=text)
    assert send_each(settings(server), [message])[0].outcome is Outcome.SENT
    received = arrived(handler, message)
    (mailbox,) = received["To"].addresses
    if len(name.encode()) <= 45:  # one encoded-word; longer ones meet CPython gh-128110
        assert mailbox.display_name == name.strip()
    raw = next(r.data for r in handler.received if message.message_id.encode() in r.data)
    assert rfc2047_display_name(parse_compat32(raw), "ann@example.com") == name.strip()
    assert mailbox.addr_spec == "ann@example.com"
    assert str(received["Subject"]) == " ".join(subject.split())
    assert [part.get_content().replace("\r\n", "\n") for part in received.iter_parts()] == [text, html]


@pytest.mark.parametrize("hostile", [
    "Ann\r\nBcc: x@example.org", "Ann\nBcc: x@example.org", "Ann\u2028Bcc: x@example.org", "Ann\x00Lee",
    "=?utf-8?q?A=0ABcc:_x@example.org?=", "A" * 500, "Ann\r\n\r\n.\r\nMAIL FROM:<x@example.org>",
    "Zoë\r\nBcc: x@example.org\u2029Cc: y@example.org\x85To: z@example.org",
])
def test_injected_headers_never_arrive(server: SmtpServer, handler: RecordingHandler, hostile: str) -> None:
    message = outgoing(name=hostile, subject=hostile)
    assert send_each(settings(server), [message])[0].outcome is Outcome.SENT
    received = arrived(handler, message)
    assert list(received.keys()) == HEADERS
    assert [a.addr_spec for a in received["To"].addresses] == ["ann@example.com"]
    assert [r.rcpt_tos for r in handler.received] == [("ann@example.com",)]


def test_a_good_delivery_is_sent_with_the_servers_words(server: SmtpServer) -> None:
    (result,) = send_each(settings(server), [outgoing()])
    assert result == Result(Outcome.SENT, 250, "2.0.0 OK queued")


@pytest.mark.parametrize("to, expected", [
    ("later@example.com", Result(Outcome.RETRY, 451, "4.3.0 try later")),
    ("busy@example.com", Result(Outcome.RETRY, 421, "4.7.0 too busy, closing", domain_wide=True)),
    ("ghost@example.com", Result(Outcome.BOUNCED, 550, "5.1.1 no such user")),
    # A policy refusal at RCPT says nothing about the address: not a bounce, nothing suppressed.
    ("relay@elsewhere.org",
     Result(Outcome.REJECTED, 554, "5.7.1 <relay@elsewhere.org>: Relay access denied")),
    ("spam@example.com", Result(Outcome.REJECTED, 554, "5.7.1 looks like spam")),
    ("full@example.com", Result(Outcome.RETRY, 452, "4.3.1 disk full")),
    ("tired@example.com", Result(Outcome.RETRY, 421, "4.7.0 closing", domain_wide=True)),
])
def test_each_reply_is_classified_by_its_phase(server: SmtpServer, to: str, expected: Result) -> None:
    assert send_each(settings(server), [outgoing(to)]) == [expected]


def test_a_connection_cut_after_the_data_is_unknown(server: SmtpServer, handler: RecordingHandler) -> None:
    first, after = send_each(settings(server), [outgoing("drop@example.com"), outgoing()])
    assert first.outcome is Outcome.UNKNOWN and first.code is None
    assert "after the data" in first.reply
    assert after.outcome is Outcome.SENT  # on a new connection
    assert handler.connections == 2
    assert [r.dropped for r in handler.received] == [True, False]


class SlowHandler(RecordingHandler):
    """Takes the data, then thinks for longer than the client waits."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(1.0)
        return await super().handle_DATA(server, session, envelope)


def test_no_reply_to_the_data_in_time_is_unknown() -> None:
    with running_smtp(SlowHandler()) as server:
        (result,) = send_each(settings(server, data_timeout=0.2), [outgoing()])
    assert result.outcome is Outcome.UNKNOWN


class SlowPipelinedHandler(PipeliningHandler):
    """Offers PIPELINING, then thinks for `rcpt_delay` s before its RCPT reply and `data_delay` s before
    the reply to the data: the pipelined path's own deadlines (_ReplyDeadlines), not aiosmtplib's."""

    def __init__(self, rcpt_delay: float = 0.0, data_delay: float = 0.0) -> None:
        super().__init__()
        self.rcpt_delay, self.data_delay = rcpt_delay, data_delay

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        delay, self.rcpt_delay = self.rcpt_delay, 0.0  # only the first message waits
        await asyncio.sleep(delay)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.data_delay)
        return await super().handle_DATA(server, session, envelope)


def test_no_pipelined_reply_to_the_data_in_time_is_unknown() -> None:
    with running_smtp(SlowPipelinedHandler(data_delay=1.5)) as server:
        ((result, took),) = timed_send_each(settings(server, data_timeout=0.4), [outgoing()])
    assert result.outcome is Outcome.UNKNOWN
    assert result.reply == "connection lost after the data: no reply in 0.4 s"
    assert 0.4 <= took < 1.5  # given up after its timeout, before the server answered


def test_no_pipelined_reply_to_rcpt_in_time_is_retry_and_the_next_message_gets_a_new_connection() -> None:
    handler = SlowPipelinedHandler(rcpt_delay=1.5)
    with running_smtp(handler) as server:
        (first, took), (second, _) = timed_send_each(settings(server, timeout=0.4),
                                                      [outgoing(), outgoing("bob@example.com")])
    assert first.outcome is Outcome.RETRY
    assert first.reply == "connection lost at RCPT: no reply in 0.4 s"  # MAIL was answered at once
    assert 0.4 <= took < 1.5
    assert second.outcome is Outcome.SENT
    assert handler.connections == 2  # the late one was dropped
    assert [r.rcpt_tos for r in handler.received] == [("bob@example.com",)]


def test_a_pipelined_reply_that_comes_before_its_deadline_is_taken() -> None:
    """The deadlines are looked at every quarter of the shorter timeout: a reply slower than that
    look, but inside its timeout, is waited for."""
    with running_smtp(SlowPipelinedHandler(data_delay=0.6)) as server:
        ((result, took),) = timed_send_each(settings(server, timeout=1.6, data_timeout=1.6), [outgoing()])
    assert result.outcome is Outcome.SENT
    assert took >= 0.6


def test_refusals_keep_the_connection_and_421_drops_it(server: SmtpServer, handler: RecordingHandler) -> None:
    results = send_each(settings(server), [outgoing("ghost@example.com"), outgoing("later@example.com"),
                                           outgoing("spam@example.com"), outgoing()])
    assert [r.outcome for r in results] == [Outcome.BOUNCED, Outcome.RETRY, Outcome.REJECTED, Outcome.SENT]
    assert handler.connections == 1  # RSET after each refusal, then reused
    results = send_each(settings(server), [outgoing("busy@example.com"), outgoing()])
    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.SENT]
    assert handler.connections == 3  # the 421 connection was dropped and replaced


def test_messages_reuse_one_connection(server: SmtpServer, handler: RecordingHandler) -> None:
    messages = [outgoing(f"reader{i}@example.com") for i in range(20)]
    assert {r.outcome for r in send_each(settings(server), messages)} == {Outcome.SENT}
    assert handler.connections == 1
    assert [r.rcpt_tos for r in handler.received] == [(m.rcpt_to,) for m in messages]


def test_concurrent_sends_stay_within_the_pool(server: SmtpServer, handler: RecordingHandler) -> None:
    messages = [outgoing(f"reader{i}@example.com") for i in range(40)]

    async def use(transport: SmtpTransport) -> list[Result]:
        return await asyncio.gather(*(transport.send(m) for m in messages))

    results = with_transport(settings(server, max_connections=4), use)
    assert {r.outcome for r in results} == {Outcome.SENT}
    assert handler.max_open <= 4
    assert handler.connections == 4
    assert sorted(r.rcpt_tos[0] for r in handler.received) == sorted(m.rcpt_to for m in messages)


class HangUpOnceHandler(RecordingHandler):
    """Drops the connection at the first MAIL FROM of its second message, like an idle timeout."""

    def __init__(self) -> None:
        super().__init__()
        self.mails = 0

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        self.mails += 1
        if self.mails == 2:
            assert server.transport is not None
            server.transport.close()
        envelope.mail_from = address
        return "250 OK"


def test_a_pooled_connection_that_died_is_replaced_without_losing_the_message() -> None:
    handler = HangUpOnceHandler()
    with running_smtp(handler) as server:
        results = send_each(settings(server), [outgoing(), outgoing("bob@example.com")])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert handler.connections == 2
    assert [r.rcpt_tos for r in handler.received] == [("ann@example.com",), ("bob@example.com",)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_nothing_listening_is_retry() -> None:
    config = SmtpSettings("127.0.0.1", free_port(), tls="none", local_hostname="client.test")
    (result,) = send_each(config, [outgoing()])
    assert result.outcome is Outcome.RETRY and result.code is None
    assert "cannot connect" in result.reply


def test_a_server_that_never_greets_is_retry_after_the_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody speaks
        config = SmtpSettings("127.0.0.1", silent.getsockname()[1], tls="none", timeout=0.2,
                              local_hostname="client.test")
        (result,) = send_each(config, [outgoing()])
    assert result.outcome is Outcome.RETRY and result.code is None


def test_an_unsafe_envelope_is_refused_before_any_connection() -> None:
    config = SmtpSettings("127.0.0.1", free_port(), tls="none")
    good = outgoing()
    bad_rcpt = Outgoing(good.message_id, SENDER, "ann@example.com\r\nRCPT TO:<x@example.org>", good.data)
    bad_from = Outgoing(good.message_id, "sam@example.com>\r\nRSET", good.rcpt_to, good.data)
    rcpt_result, from_result = send_each(config, [bad_rcpt, bad_from])
    assert rcpt_result.outcome is Outcome.BOUNCED and "not sent" in rcpt_result.reply
    assert from_result.outcome is Outcome.REJECTED and "not sent" in from_result.reply


def test_bare_newlines_and_leading_dots_in_raw_data_survive(server: SmtpServer,
                                                           handler: RecordingHandler) -> None:
    raw = b"Subject: raw\n\n.one\n..two\r\n.\nlast"
    (result,) = send_each(settings(server), [Outgoing("raw@example.com", SENDER, "ann@example.com", raw)])
    assert result.outcome is Outcome.SENT
    assert handler.received[0].data == b"Subject: raw\r\n\r\n.one\r\n..two\r\n.\r\nlast\r\n"


def test_sending_after_close_is_an_error(server: SmtpServer) -> None:
    async def use(transport: SmtpTransport) -> None:
        await transport.close()
        with pytest.raises(RuntimeError, match="after close"):
            await transport.send(outgoing())
    with_transport(settings(server), use)


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="tls"):
        SmtpSettings("mx.example.com", tls="ssl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_connections"):
        SmtpSettings("mx.example.com", max_connections=0)
    assert "hunter2" not in repr(SmtpSettings("mx.example.com", username="u", password="hunter2"))


# TLS and AUTH, with a throwaway certificate authority.

@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def test_starttls(handler: RecordingHandler, server_tls: ssl.SSLContext, cafile: str) -> None:
    with running_smtp(handler, tls_context=server_tls, require_starttls=True) as server:
        results = send_each(settings(server, tls="starttls", cafile=cafile), [outgoing(), outgoing()])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert handler.connections == 1


def test_implicit_tls(handler: RecordingHandler, server_tls: ssl.SSLContext, cafile: str) -> None:
    with running_smtp(handler, tls_context=server_tls, implicit_tls=True) as server:
        results = send_each(settings(server, tls="tls", cafile=cafile), [outgoing(), outgoing()])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert handler.connections == 1


def test_an_untrusted_certificate_is_retry_not_plain_text(handler: RecordingHandler,
                                                          server_tls: ssl.SSLContext) -> None:
    with running_smtp(handler, tls_context=server_tls) as server:
        (result,) = send_each(settings(server, tls="starttls"), [outgoing()])
    assert result.outcome is Outcome.RETRY
    assert "CERTIFICATE_VERIFY_FAILED" in result.reply
    assert handler.received == []


def test_starttls_required_but_not_offered_is_retry(server: SmtpServer, handler: RecordingHandler) -> None:
    (result,) = send_each(settings(server, tls="starttls"), [outgoing()])
    assert result.outcome is Outcome.RETRY and "STARTTLS" in result.reply
    assert handler.received == []


@pytest.mark.parametrize("mechanism, hidden", [("PLAIN", ["LOGIN"]), ("LOGIN", ["PLAIN"])])
def test_auth(handler: RecordingHandler, server_tls: ssl.SSLContext, cafile: str, mechanism: str,
              hidden: list[str]) -> None:
    with running_smtp(handler, tls_context=server_tls, auth=("funnel", "s3cret"),
                      auth_exclude=hidden) as server:
        config = settings(server, tls="starttls", cafile=cafile, username="funnel", password="s3cret")
        results = send_each(config, [outgoing(), outgoing()])
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert handler.used_auth == [mechanism]  # once: the connection was reused


def test_a_wrong_password_is_retry_with_the_servers_reply(handler: RecordingHandler,
                                                          server_tls: ssl.SSLContext, cafile: str) -> None:
    with running_smtp(handler, tls_context=server_tls, auth=("funnel", "s3cret")) as server:
        config = settings(server, tls="starttls", cafile=cafile, username="funnel", password="wrong")
        (result,) = send_each(config, [outgoing()])
    assert result.outcome is Outcome.RETRY
    assert result.code == 535 and "Authentication" in result.reply
    assert handler.received == []


def test_no_auth_when_the_server_requires_it_is_retry(handler: RecordingHandler,
                                                       server_tls: ssl.SSLContext, cafile: str) -> None:
    with running_smtp(handler, tls_context=server_tls, auth=("funnel", "s3cret")) as server:
        (result,) = send_each(settings(server, tls="starttls", cafile=cafile), [outgoing()])
    assert result.outcome is Outcome.RETRY and result.code == 530  # at MAIL FROM: 530 auth required
    assert handler.received == []


# The server as its own process, for crash tests elsewhere.

def test_the_process_server_fails_the_planned_recipients_and_logs_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "accepted.jsonl"
    command = [sys.executable, "-m", "tests.support.smtp_server", "--port", "0", "--log", str(log),
               "--tempfail-percent", "20", "--bounce-percent", "10", "--tempfail-once"]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    messages = [outgoing(f"reader{i}@example.com") for i in range(30)]
    with subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            word, port = process.stdout.readline().split()
            assert word == "ready"
            config = SmtpSettings("127.0.0.1", int(port), tls="none", local_hostname="client.test")
            results = send_each(config, messages)
            deferred = [m for m, r in zip(messages, results, strict=True) if r.outcome is Outcome.RETRY]
            second = send_each(config, deferred)  # --tempfail-once: accepted this time
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
    expected = {None: Outcome.SENT, "451 4.3.0 try again later": Outcome.RETRY,
                "550 5.1.1 no such user": Outcome.BOUNCED}
    planned = [expected[planned_reply(m.rcpt_to, 20, 10)] for m in messages]
    assert [r.outcome for r in results] == planned
    assert set(planned) == set(expected.values())  # 30 readers meet every case
    assert {r.outcome for r in second} == {Outcome.SENT}
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    accepted = [m for m, outcome in zip(messages, planned, strict=True) if outcome is Outcome.SENT] + deferred
    assert lines == [{"rcpt": m.rcpt_to, "message_id": m.message_id} for m in accepted]


def _stuffed_by_lines(data: bytes) -> bytes:
    """RFC 5321 §4.5.2 said line by line: every CRLF, CR or LF ends a line; a leading '.' doubled."""
    lines = [b"." + line if line.startswith(b".") else line for line in re.split(rb"\r\n|\r|\n", data)]
    stuffed = b"\r\n".join(lines)
    return stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b"."


_LINE_PIECES = st.sampled_from([b".", b"a", b"\r", b"\n", b"\r\n", b".."])


@given(st.binary(max_size=60) | st.lists(_LINE_PIECES).map(b"".join))
def test_the_data_is_stuffed_line_by_line(data: bytes) -> None:
    assert _stuffed(data) == _stuffed_by_lines(data)


@given(st.lists(st.lists(st.sampled_from([b".", b"a", b"..", b" "])).map(b"".join)).map(b"\r\n".join))
def test_data_known_to_be_crlf_is_stuffed_the_same(data: bytes) -> None:
    assert _stuffed(data, crlf=True) == _stuffed(data)


async def _answers_whole_groups(received: list[bytes], rcpt_reply: bytes) -> asyncio.Server:
    """A server offering PIPELINING that answers MAIL, RCPT and DATA only once all three came, in one packet.

    A client waiting for MAIL's reply before it sends RCPT waits in vain. It answers 354
    to DATA even after refusing the recipient, as RFC 2920 §3.1 says a server must not.
    """
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.test\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250-mx.test\r\n250 PIPELINING\r\n")
        group = b""
        while line := await reader.readline():
            if line in (b"RSET\r\n", b"QUIT\r\n"):
                received.append(line)
                writer.write(b"250 2.0.0 ok\r\n" if line == b"RSET\r\n" else b"221 bye\r\n")
                continue
            group += line
            if line != b"DATA\r\n":
                continue
            received.append(group)
            group = b""
            writer.write(b"250 2.1.0 sender ok\r\n" + rcpt_reply + b"\r\n354 go ahead\r\n")
            data = b""
            while (line := await reader.readline()) not in (b".\r\n", b""):
                data += line
            received.append(data + line)
            writer.write(b"250 2.0.0 queued\r\n")
        writer.close()
    return await asyncio.start_server(session, "127.0.0.1", 0)


def _send_to_whole_groups(rcpt_reply: bytes) -> tuple[Result, list[bytes]]:
    received: list[bytes] = []

    async def run() -> Result:
        server = await _answers_whole_groups(received, rcpt_reply)
        port = server.sockets[0].getsockname()[1]
        transport = SmtpTransport(SmtpSettings("127.0.0.1", port, tls="none", local_hostname="client.test",
                                               timeout=2.0))
        try:
            return await transport.send(outgoing())
        finally:
            await transport.close()
            server.close()
    return asyncio.run(run()), received


def test_mail_rcpt_and_data_go_together_to_a_server_that_offers_pipelining() -> None:
    result, received = _send_to_whole_groups(b"250 2.1.5 ok")
    assert result.outcome is Outcome.SENT, result
    assert received[0] == b"MAIL FROM:<sam@example.com>\r\nRCPT TO:<ann@example.com>\r\nDATA\r\n"
    assert received[1].startswith(b"Date: ") and received[1].endswith(b"\r\n.\r\n")


def test_a_refused_recipient_sends_no_data_even_when_data_is_answered_354() -> None:
    result, received = _send_to_whole_groups(b"550 5.1.1 no such user")
    assert (result.outcome, result.code) == (Outcome.BOUNCED, 550)
    assert received[1:3] == [b".\r\n", b"RSET\r\n"]  # the empty data ended, then the session reset
