"""What needs a person is a WARNING, once; what merely happened stays INFO (issue 13, finding 4).

A transport that cannot reach its server: one `transport_degraded` however many emails are
deferred, one `transport_recovered` when it answers again, each email's `deferred` at INFO.
A reload that failed and a step a guardrail paused are warnings too.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.mail.memory import MemoryTransport
from engine.mail.transport import OK, Outcome, Outgoing, Result, TransportState
from engine.project.folder import Project
from engine.scheduler.funnels import LiveFunnels
from engine.scheduler.guard import check_guardrails
from tests.scheduler.harness import Harness
from tests.scheduler.test_guardrails import RULES, _signup, _unsubscribe_from
from tests.support.project import minimal_project

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DOWN = "cannot connect to smtp.test:25: Error connecting to smtp.test on port 25: [Errno 111] refused"


class _Server:
    """A MemoryTransport script for a server that is down until `up` is set, with the state it would show."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.up = False

    def __call__(self, message: Outgoing) -> Result:
        if not self.up:
            since = self.transport.state.since or datetime.now(UTC)
            self.transport.state = TransportState("degraded", DOWN, since)
            return Result(Outcome.RETRY, None, DOWN)
        self.transport.state = OK
        return Result(Outcome.SENT, 250, "2.0.0 OK")


def _records(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == action]


def test_a_server_down_for_many_emails_is_one_warning_and_one_recovery(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    transport = MemoryTransport()
    server = _Server(transport)
    transport.script = server
    h = Harness(db_url, minimal_project(tmp_path / "project"), MONDAY, transport=transport)
    try:
        with caplog.at_level(logging.INFO, logger="funnel"):
            _signup(h, [f"a{i}" for i in range(6)])
            h.run_until(MONDAY + timedelta(hours=3), every=timedelta(minutes=10))  # retries every 5-30 min
            deferred = _records(caplog, "deferred")
            assert len(deferred) >= 12 and {r.levelno for r in deferred} == {logging.INFO}
            [degraded] = _records(caplog, "transport_degraded")
            assert degraded.levelno == logging.WARNING
            assert degraded.fields["error"] == DOWN  # type: ignore[attr-defined]
            assert not _records(caplog, "transport_recovered")
            assert not transport.sent

            server.up = True
            h.run_until(MONDAY + timedelta(hours=9), every=timedelta(minutes=10))
        [recovered] = _records(caplog, "transport_recovered")
        assert recovered.levelno == logging.WARNING
        assert recovered.fields["last_error"] == DOWN  # type: ignore[attr-defined]
        assert len(_records(caplog, "transport_degraded")) == 1
        # Nothing lost, nothing twice.
        sent = [m.message_id for m in transport.sent]
        assert len(sent) == len(set(sent)) >= 6
        assert all(d["status"] == "sent" for d in h.deliveries())
    finally:
        h.close()


def test_a_change_found_by_the_tick_without_any_email_is_logged_too(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    transport = MemoryTransport()
    h = Harness(db_url, minimal_project(tmp_path / "project"), MONDAY, transport=transport)
    try:
        with caplog.at_level(logging.INFO, logger="funnel"):
            transport.state = TransportState("degraded", DOWN, datetime.now(UTC))
            h.tick()
            h.tick()
            assert len(_records(caplog, "transport_degraded")) == 1
            transport.state = OK  # what SmtpTransport.check() does when the server greets it again
            h.tick()
        assert len(_records(caplog, "transport_recovered")) == 1
        assert not transport.attempts
    finally:
        h.close()


def test_a_failed_reload_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    project = minimal_project(tmp_path / "project")
    live = LiveFunnels(Project(project))
    (project / "sequences" / "minimal.yaml").write_text("funnel: minimal\nsegmnts: []\n")
    with caplog.at_level(logging.INFO, logger="funnel"):
        assert live.reload_if_changed() is False
    [failed] = _records(caplog, "reload_failed")
    assert failed.levelno == logging.WARNING


def test_a_step_a_guardrail_paused_is_a_warning(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = minimal_project(tmp_path / "project")
    path = project / "sequences" / "minimal.yaml"
    path.write_text(path.read_text() + RULES)
    h = Harness(db_url, project, MONDAY)
    try:
        first = [f"a{i}" for i in range(12)]
        _signup(h, first)
        h.run_until(MONDAY + timedelta(days=2, hours=4))
        for name in first[:3]:  # 3 of 12: over the 20% threshold
            _unsubscribe_from(h, f"{name}@example.com", "e1")
        with caplog.at_level(logging.INFO, logger="funnel"):
            paused = check_guardrails(h.db_engine, h.daemon.live.current.plans, h.clock.now())
        assert [p.step for p in paused] == ["e1"]
        [line] = _records(caplog, "step_paused")
        assert line.levelno == logging.WARNING
        assert line.fields["hint"] == "funnel resume minimal e1"  # type: ignore[attr-defined]
    finally:
        h.close()
