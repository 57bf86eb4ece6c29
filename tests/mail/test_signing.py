"""DKIM signing: messages the engine signs verify with dkimpy's verifier against the published key,
after a real SMTP server (aiosmtpd on loopback) took them; a message changed on the way fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from engine.config import Settings
from engine.daemon.wiring import make_transport
from engine.mail.dkimkeys import DkimKey, KeyEntry, KeyType, generate, private_pem, read_key
from engine.mail.memory import MemoryTransport
from engine.mail.message import build_message, new_message_id
from engine.mail.signing import Signer, SigningTransport, relaxed_body
from engine.mail.transport import Outcome, Outgoing
from tests.support.smtp_server import RecordingHandler, running_smtp

# Made once for the module: an RSA-2048 key takes ~50 ms to generate.
ED = read_key(KeyEntry("example.com", "ed1", "-"), private_pem(generate(KeyType.ED25519)))
RSA = read_key(KeyEntry("example.com", "rsa1", "-"), private_pem(generate(KeyType.RSA)))


def dns_of(keys: Iterable[DkimKey]) -> Callable[..., bytes | None]:
    """dkimpy's dnsfunc answering with the keys' published records (the fake DNS)."""
    records = {f"{k.record_name}.".encode(): k.record.encode() for k in keys}
    return lambda name, timeout=5: records.get(name)


def message(
    subject: str = "Your guide", sender: str = "Ann <ann@example.com>", unsubscribe: bool = True
) -> bytes:
    return build_message(
        sender=sender,
        to_name="Bob Byrd",
        to_address="bob@receiver.example",
        subject=subject,
        html="<p>Hello Bob</p>\n" * 200,
        text="Hello Bob\n" * 200,
        message_id=new_message_id("example.com"),
        date=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        list_unsubscribe="https://funnel.example.com/u/abc" if unsubscribe else None,
    )


def verdicts(data: bytes, keys: Iterable[DkimKey]) -> list[bool]:
    """Each DKIM-Signature's verdict, top to bottom."""
    checker = dkim.DKIM(data)
    count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
    return [_verified(checker, i, keys) for i in range(count)]


def _verified(checker: dkim.DKIM, idx: int, keys: Iterable[DkimKey]) -> bool:
    try:
        return bool(checker.verify(idx=idx, dnsfunc=dns_of(keys)))
    except dkim.DKIMException:  # dkimpy raises some failures (a body hash mismatch) instead
        return False


@pytest.mark.parametrize("keys", [[ED], [RSA], [ED, RSA]], ids=["ed25519", "rsa", "both"])
def test_a_signed_message_verifies_for_each_key(keys: list[DkimKey]) -> None:
    signed = Signer(keys).sign(message())
    assert verdicts(signed, keys) == [True] * len(keys)
    tags = [
        dkim.util.parse_tag_value(v.replace(b"\r\n", b""))
        for n, v in dkim.DKIM(signed).headers
        if n == b"DKIM-Signature"
    ]
    algorithm = {KeyType.ED25519: b"ed25519-sha256", KeyType.RSA: b"rsa-sha256"}
    assert [t[b"a"] for t in tags] == [algorithm[k.type] for k in keys]  # Ed25519 first
    assert {t[b"d"] for t in tags} == {b"example.com"}


def test_the_one_click_headers_are_signed_and_from_and_subject_oversigned() -> None:
    signed = Signer([ED]).sign(message())
    checker = dkim.DKIM(signed)
    assert checker.verify(dnsfunc=dns_of([ED]))
    h = dkim.util.parse_tag_value(
        next(v for n, v in checker.headers if n == b"DKIM-Signature").replace(b"\r\n", b"")
    )[b"h"]
    names = [n.strip() for n in h.split(b":")]
    assert names == [
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"mime-version",
        b"content-type",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
        b"from",
        b"subject",
    ]
    # A second From or Subject added on the way (a header a reader would see) breaks it.
    head, _, body = signed.partition(b"\r\n\r\n")
    for extra in (b"From: Mallory <ceo@example.com>", b"Subject: Urgent: wire money"):
        assert verdicts(head + b"\r\n" + extra + b"\r\n\r\n" + body, [ED]) == [False]
    # So does dropping the one-click header.
    stripped = signed.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"")
    assert verdicts(stripped, [ED]) == [False]


def test_mail_from_a_domain_without_a_key_goes_unsigned() -> None:
    data = message(sender="Ann <ann@other.example>")
    assert Signer([ED, RSA]).sign(data) == data


@pytest.mark.parametrize("keys", [[ED], [RSA], [ED, RSA]], ids=["ed25519", "rsa", "both"])
def test_signed_through_the_smtp_transport_and_checked_at_the_server(
    keys: list[DkimKey], tmp_path: Path
) -> None:
    """The engine's SMTP transport, built from settings with dkim_keys, to aiosmtpd on loopback."""
    entries = []
    for key in keys:
        path = tmp_path / f"{key.selector}.pem"
        path.write_bytes(private_pem(key.private))
        entries.append(f"example.com {key.selector} {path.name}")
    handler = RecordingHandler()
    with running_smtp(handler) as server:
        settings = Settings(
            transport="smtp",
            smtp_host=server.host,
            smtp_port=server.port,
            smtp_tls="none",
            dkim_keys="\n".join(entries),
        )
        transport = make_transport(settings, tmp_path)
        assert isinstance(transport, SigningTransport)
        sent = [message(), message(subject="Tampered on the way?")]

        async def send_all() -> list[Outcome]:
            try:
                return [
                    (
                        await transport.send(
                            Outgoing(
                                f"m{i}@example.com",
                                "ann@example.com",
                                "bob@receiver.example",
                                data,
                                crlf=True,
                            )
                        )
                    ).outcome
                    for i, data in enumerate(sent)
                ]
            finally:
                await transport.close()

        assert asyncio.run(send_all()) == [Outcome.SENT, Outcome.SENT]
    first, second = (r.data for r in handler.received)
    assert verdicts(first, keys) == [True] * len(keys)
    assert verdicts(second, keys) == [True] * len(keys)
    # Changed in transit: a word of the body, or the Subject.
    assert verdicts(first.replace(b"Hello Bob", b"Hello Rob", 1), keys) == [False] * len(keys)
    assert verdicts(second.replace(b"Subject: Tampered", b"Subject: Changed", 1), keys) == [False] * len(keys)


def test_the_outbox_writes_signed_eml_files(tmp_path: Path) -> None:
    (tmp_path / "ed1.pem").write_bytes(private_pem(ED.private))
    transport = make_transport(Settings(dkim_keys="example.com ed1 ed1.pem"), tmp_path)
    data = message()
    result = asyncio.run(
        transport.send(Outgoing("m1@example.com", "ann@example.com", "bob@x.example", data, crlf=True))
    )
    assert result.outcome is Outcome.SENT
    (written,) = (tmp_path / "outbox").iterdir()
    assert written.read_bytes().startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    assert verdicts(written.read_bytes(), [ED]) == [True]


def test_without_dkim_keys_the_transport_is_not_wrapped(tmp_path: Path) -> None:
    assert not isinstance(make_transport(Settings(), tmp_path), SigningTransport)


def test_the_signing_transport_hands_on_state_check_and_close() -> None:
    inner = MemoryTransport()
    transport = SigningTransport(inner, Signer([ED]))
    asyncio.run(
        transport.send(Outgoing("m@example.com", "ann@example.com", "b@x.example", message(), crlf=True))
    )
    assert inner.sent[0].data.startswith(b"DKIM-Signature:") and inner.sent[0].crlf
    assert transport.state is inner.state
    asyncio.run(transport.close())
    assert inner.closed


@given(st.lists(st.sampled_from([b"\t", b" ", b"  ", b"\r\n", b"\r", b"\n", b"a", b"=20"]), max_size=60))
def test_the_relaxed_body_is_dkimpys(parts: list[bytes]) -> None:
    body = b"".join(parts)
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


def test_a_sender_with_a_non_ascii_name_is_signed_for_its_domain() -> None:
    signed = Signer([ED]).sign(message(sender='"Zoë Ünal, Coach" <coach@Example.com>'))
    assert verdicts(signed, [ED]) == [True]
