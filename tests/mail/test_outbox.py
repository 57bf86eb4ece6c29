"""The outbox (.eml files, written atomically) and the in-memory transport."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from engine.mail.memory import MemoryTransport
from engine.mail.message import build_message, new_message_id
from engine.mail.outbox import OutboxTransport, safe_file_stem
from engine.mail.transport import Outcome, Outgoing, Result, Transport


def outgoing(message_id: str | None = None, subject: str = "Welcome, Zoë") -> Outgoing:
    message_id = message_id or new_message_id("funnel.example.com")
    data = build_message(sender="Coach Sam <sam@example.com>", to_name="Ann", to_address="ann@example.com",
                         subject=subject, html="<p>Hi</p>", text="Hi", message_id=message_id,
                         date=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    return Outgoing(message_id, "sam@example.com", "ann@example.com", data)


def send(transport: Transport, *messages: Outgoing) -> list[Result]:
    async def run() -> list[Result]:
        try:
            return [await transport.send(message) for message in messages]
        finally:
            await transport.close()
    return asyncio.run(run())


def test_the_outbox_writes_one_eml_that_parses_back(tmp_path: Path) -> None:
    folder = tmp_path / "outbox" / "nested"  # created on first use
    message = outgoing()
    (result,) = send(OutboxTransport(folder), message)
    path = folder / f"{message.message_id}.eml"
    assert result == Result(Outcome.SENT, 250, f"written to {path}")
    assert path.read_bytes() == message.data
    parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert str(parsed["Subject"]) == "Welcome, Zoë"
    assert parsed["Message-ID"] == f"<{message.message_id}>"
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left behind


def test_a_resend_of_the_same_message_id_overwrites(tmp_path: Path) -> None:
    first = outgoing("same@funnel.example.com", subject="First")
    second = outgoing("same@funnel.example.com", subject="Second")
    assert [r.outcome for r in send(OutboxTransport(tmp_path), first, second)] == [Outcome.SENT] * 2
    assert [p.name for p in tmp_path.iterdir()] == ["same@funnel.example.com.eml"]
    assert (tmp_path / "same@funnel.example.com.eml").read_bytes() == second.data


def test_a_crash_before_the_rename_leaves_the_old_file_whole(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    old = outgoing("same@funnel.example.com", subject="Old")
    send(OutboxTransport(tmp_path), old)

    def crash(source: str, target: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr("engine.mail.outbox.os.replace", crash)
    (result,) = send(OutboxTransport(tmp_path), outgoing("same@funnel.example.com", subject="New"))
    assert result.outcome is Outcome.RETRY and "disk gone" in result.reply
    assert [p.name for p in tmp_path.iterdir()] == ["same@funnel.example.com.eml"]
    assert (tmp_path / "same@funnel.example.com.eml").read_bytes() == old.data


def test_a_folder_that_cannot_be_made_is_retry(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    (result,) = send(OutboxTransport(tmp_path / "file" / "outbox"), outgoing())
    assert result.outcome is Outcome.RETRY and "cannot write" in result.reply


@pytest.mark.parametrize("message_id", [
    "../../etc/passwd@x", "a/b@x", "a\\b@x", ".hidden@x", "..@x", "a b@x"])
def test_file_names_stay_in_the_folder(message_id: str, tmp_path: Path) -> None:
    stem = safe_file_stem(message_id)
    assert "/" not in stem and "\\" not in stem and not stem.startswith(".")
    assert (tmp_path / f"{stem}.eml").resolve().parent == tmp_path.resolve()


def test_ids_that_clean_alike_get_distinct_files() -> None:
    assert safe_file_stem("a_b@x") == "a_b@x"
    assert safe_file_stem("a/b@x") not in {"a_b@x", safe_file_stem("a\\b@x")}


def test_sending_to_a_closed_outbox_is_an_error(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path)
    asyncio.run(transport.close())
    with pytest.raises(RuntimeError, match="after close"):
        asyncio.run(transport.send(outgoing()))


def test_memory_keeps_every_attempt_and_the_sent_ones() -> None:
    transport = MemoryTransport()
    first, second = outgoing(), outgoing()
    assert send(transport, first, second) == [Result(Outcome.SENT, 250, "kept in memory")] * 2
    assert transport.sent == [first, second]
    assert transport.closed


def test_memory_follows_a_script_for_retry_tests() -> None:
    replies = iter([Result(Outcome.RETRY, 451, "4.3.0 later"), Result(Outcome.SENT, 250, "ok")])
    transport = MemoryTransport(script=lambda message: next(replies))
    message = outgoing()
    results = send(transport, message, message)
    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.SENT]
    assert transport.attempts == list(zip([message, message], results, strict=True))
    assert transport.sent == [message]


def test_memory_refuses_sends_after_close() -> None:
    transport = MemoryTransport()
    asyncio.run(transport.close())
    with pytest.raises(RuntimeError, match="after close"):
        asyncio.run(transport.send(outgoing()))
