"""`funnel send-test`: one email rendered like `preview`, sent through the outbox or a real SMTP server."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from engine.mail.outbox import safe_file_stem
from tests.cli.conftest import Cli
from tests.support.smtp_server import RecordingHandler, running_smtp


def _parse(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_send_test_writes_to_the_outbox_and_touches_no_database(project: Path, tmp_path: Path) -> None:
    cli = Cli(project, f"sqlite:///{tmp_path / 'never.db'}")
    data = '{"name": "Zed Zane", "first_name": "Zed"}'
    result = cli("send-test", "minimal", "magnet", "--to", "me@example.com", "--data", data,
                 FUNNEL_BASE_URL="https://funnel.example")
    assert result.exit_code == 0, result.output
    (written,) = (project / "outbox").iterdir()
    assert result.stdout == (f"sent 'magnet' of minimal to me@example.com through outbox: "
                             f"written to {written}\n")
    message = _parse(written.read_bytes())
    assert message["Subject"] == "[test] Your guide, Zed"
    assert message["To"] == "Zed Zane <me@example.com>"
    assert message["List-Unsubscribe"] == "<https://funnel.example/u/preview-magnet>"
    assert written.stem == safe_file_stem(message["Message-ID"].strip("<>"))
    assert not (tmp_path / "never.db").exists()


def test_send_test_through_smtp_prints_the_server_reply(project: Path, tmp_path: Path) -> None:
    handler = RecordingHandler()
    with running_smtp(handler) as server:
        result = Cli(project, "sqlite:///unused.db")(
            "send-test", "minimal", "e1", "--to", "me@example.com",
            FUNNEL_TRANSPORT="smtp", FUNNEL_SMTP_HOST=server.host, FUNNEL_SMTP_PORT=str(server.port),
            FUNNEL_SMTP_TLS="none")
    assert result.exit_code == 0, result.output
    assert result.stdout == "sent 'e1' of minimal to me@example.com through smtp: 250 2.0.0 OK queued\n"
    (received,) = handler.received
    assert (received.mail_from, received.rcpt_tos) == ("team@example.com", ("me@example.com",))
    message = _parse(received.data)
    assert message["Subject"] == "[test] E1"
    assert message["List-Unsubscribe"] is None  # the default base_url is not https
    assert "1 Example Street" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_a_refused_test_email_exits_1_with_the_server_reply(project: Path) -> None:
    handler = RecordingHandler(lambda rcpt: "550 5.1.1 no such user")
    with running_smtp(handler) as server:
        result = Cli(project, "sqlite:///unused.db")(
            "send-test", "minimal", "e1", "--to", "ghost@example.com",
            FUNNEL_TRANSPORT="smtp", FUNNEL_SMTP_HOST=server.host, FUNNEL_SMTP_PORT=str(server.port),
            FUNNEL_SMTP_TLS="none")
    assert (result.exit_code, result.stderr) == (
        1, "not sent: 'e1' to ghost@example.com: 550 5.1.1 no such user\n")
    assert handler.received == []


def test_send_test_refuses_a_bad_address_and_an_unknown_step(project: Path) -> None:
    cli = Cli(project, "sqlite:///unused.db")
    bad = cli("send-test", "minimal", "e1", "--to", "me.example.com")
    assert bad.exit_code == 2
    assert "--to address 'me.example.com' must hold exactly one '@'; write one address like " \
           "ann@example.com" in bad.stderr
    unknown = cli("send-test", "minimal", "e11", "--to", "me@example.com")
    assert unknown.exit_code == 2
    assert "funnel 'minimal' has no step 'e11'; did you mean 'e1'?" in unknown.stderr
    assert not (project / "outbox").exists()
