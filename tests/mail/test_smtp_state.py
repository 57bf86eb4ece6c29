"""SmtpTransport.state on a real aiosmtpd server: degraded while it cannot be reached, ok once it answers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from engine.mail.outbox import OutboxTransport
from engine.mail.smtp import LOST_IN_A_ROW, SmtpSettings, SmtpTransport
from engine.mail.transport import OK, Outcome, TransportState
from tests.mail.test_smtp import outgoing
from tests.support.smtp_server import DROP, RecordingHandler, running_smtp


def _settings(port: int) -> SmtpSettings:
    return SmtpSettings("127.0.0.1", port, tls="none", local_hostname="client.test", timeout=5.0)


def test_a_refused_connection_degrades_at_once_and_the_next_answered_transaction_recovers() -> None:
    handler = RecordingHandler()
    with running_smtp(handler) as server:
        port = server.port
    # The server is gone: nothing listens on its port now.
    transport = SmtpTransport(_settings(port))
    states: list[TransportState] = []

    async def run() -> None:
        before = datetime.now(UTC)
        assert transport.state == OK
        first = await transport.send(outgoing("ann@example.com"))
        assert first.outcome is Outcome.RETRY
        states.append(transport.state)
        second = await transport.send(outgoing("bob@example.com"))
        assert second.outcome is Outcome.RETRY
        states.append(transport.state)
        assert states[0].since is not None and before <= states[0].since <= datetime.now(UTC)
        with running_smtp(handler, port=port):
            third = await transport.send(outgoing("cid@example.com"))
            assert third.outcome is Outcome.SENT
            states.append(transport.state)
        await transport.close()

    asyncio.run(run())
    degraded, still, back = states
    assert degraded.status == "degraded"
    assert degraded.error.startswith(f"cannot connect to 127.0.0.1:{port}: ")
    assert "refused" in degraded.error.lower() or "connect call failed" in degraded.error.lower()
    assert still.status == "degraded" and still.since == degraded.since  # since the first failure
    assert back == OK
    assert [m.rcpt_tos for m in handler.received] == [("cid@example.com",)]


def test_refusals_from_a_server_that_answers_leave_the_transport_ok() -> None:
    handler = RecordingHandler(reply_for=lambda rcpt: "451 4.3.0 try later" if "later" in rcpt else
                               "550 5.1.1 no such user" if "ghost" in rcpt else None)
    with running_smtp(handler) as server:
        transport = SmtpTransport(_settings(server.port))

        async def run() -> list[Outcome]:
            outcomes = [(await transport.send(outgoing(to))).outcome
                        for to in ("later@example.com", "ghost@example.com", "later2@example.com")]
            await transport.close()
            return outcomes

        assert asyncio.run(run()) == [Outcome.RETRY, Outcome.BOUNCED, Outcome.RETRY]
        assert transport.state == OK


def test_connections_lost_mid_transaction_degrade_only_when_every_recent_attempt_lost_one() -> None:
    dropping = {"on": True}
    handler = RecordingHandler(after_data=lambda rcpt: DROP if dropping["on"] else None)
    with running_smtp(handler) as server:
        transport = SmtpTransport(_settings(server.port))
        seen: list[str] = []

        async def run() -> None:
            for n in range(LOST_IN_A_ROW):
                result = await transport.send(outgoing(f"lost{n}@example.com"))
                assert result.outcome is Outcome.UNKNOWN
                seen.append(transport.state.status)
            assert transport.state.error.startswith("connection lost after the data")
            dropping["on"] = False
            assert (await transport.send(outgoing("fine@example.com"))).outcome is Outcome.SENT
            seen.append(transport.state.status)
            await transport.close()

        asyncio.run(run())
    assert seen == ["ok"] * (LOST_IN_A_ROW - 1) + ["degraded", "ok"]


def test_the_outbox_transport_is_ok_even_when_a_write_fails(tmp_path: Path) -> None:
    (tmp_path / "outbox").write_text("a file where the folder should be")
    transport = OutboxTransport(tmp_path / "outbox")
    result = asyncio.run(transport.send(outgoing()))
    assert result.outcome is Outcome.RETRY  # the message waits; there is no server to be degraded
    assert transport.state == OK


def test_check_finds_the_server_back_without_an_email_and_pools_the_connection() -> None:
    handler = RecordingHandler()
    with running_smtp(handler) as server:
        port = server.port
    patient = SmtpTransport(_settings(port))  # probes at most every 60 s
    eager = SmtpTransport(_settings(port), probe_seconds=0)
    seen: list[str] = []

    async def run() -> None:
        for transport in (patient, eager):
            assert (await transport.send(outgoing())).outcome is Outcome.RETRY
            await transport.check()  # still down
            seen.append(transport.state.status)
        with running_smtp(handler, port=port):
            await patient.check()  # tried less than a minute ago: waits for the next email or minute
            await eager.check()
            seen.extend([patient.state.status, eager.state.status])
            connections = handler.connections
            assert (await eager.send(outgoing("dan@example.com"))).outcome is Outcome.SENT
            assert handler.connections == connections == 1  # the probe's connection carried it
        await patient.close()
        await eager.close()

    asyncio.run(run())
    assert seen == ["degraded", "degraded", "degraded", "ok"]
