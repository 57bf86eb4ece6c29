"""Guardrails on a real database (SQLite and PostgreSQL): a storm of unsubscribes pauses a step,
subscribers who reach it wait there, the alert webhook hears of it, and `funnel resume` lets it go."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from unittest.mock import patch

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import engine.cli.guardrails as guardrails_cli
from engine.cli import main
from engine.scheduler.guard import FOLD_SECONDS, Guard, check_guardrails
from engine.stats.alerts import post_alert
from engine.store import pauses, queries
from engine.store.stepstats import step_counts
from engine.store.tables import DELIVERY, ENROLLMENT, GUARDRAIL_EVENT, STEP_PAUSE, TALLY
from engine.subscribers import inbound
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
RULES = """
guardrails:
  min_sends: 10
  unsubscribe_rate: 20%
  bounce_rate: off
  complaint_rate: 5%
"""


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/secret-path", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = minimal_project(tmp_path / "project")
    path = folder / "sequences" / "minimal.yaml"
    path.write_text(path.read_text() + RULES)
    return folder


@pytest.fixture
def harness(db_url: str, project: Path, hook: tuple[str, list[dict[str, Any]]]) -> Iterator[Harness]:
    h = Harness(db_url, project, MONDAY, alert_webhook=hook[0], guardrail_seconds=3600)
    yield h
    h.close()


def _signup(h: Harness, names: list[str]) -> None:
    for name in names:
        h.add(f"{name}@example.com", answers={"level": "new"})
        h.event(f"{name}@example.com", "confirmed", funnel="minimal")


def _unsubscribe_from(h: Harness, email: str, step: str) -> None:
    subscriber = _id(h, email)
    with h.db_engine.begin() as conn:
        mine = sa.and_(DELIVERY.c.step == step, DELIVERY.c.subscriber_id == subscriber)
        row = conn.execute(sa.select(DELIVERY).where(mine)).mappings().one()
        inbound.unsubscribe(conn, row["subscriber_id"], "minimal", h.clock.now(), row["message_id"],
                            came_from=("minimal", step))


def _id(h: Harness, email: str) -> int:
    with h.db_engine.connect() as conn:
        row = queries.find_subscriber(conn, email)
    assert row is not None
    return int(row["id"])


def _sent_to(h: Harness, step: str) -> set[str]:
    return {m.rcpt_to for m in h.transport.sent if h.sent_steps(m.rcpt_to).count(step)}


def test_an_unsubscribe_storm_pauses_the_step_and_resume_lets_the_waiting_go_on(
    harness: Harness, hook: tuple[str, list[dict[str, Any]]], db_url: str, project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = harness
    first = [f"a{i}" for i in range(12)]
    _signup(h, first)
    h.run_until(MONDAY + 2 * DAY + 4 * timedelta(hours=1))  # e1 goes out Wednesday 08:00
    assert len(_sent_to(h, "e1")) == 12
    for name in first[:3]:  # 3 of 12 = 25%, over the 20% threshold
        _unsubscribe_from(h, f"{name}@example.com", "e1")
    late = [f"b{i}" for i in range(4)]
    _signup(h, late)  # they reach e1 two days later, after the pause

    with h.db_engine.connect() as conn:
        counts = {c.step: c for c in step_counts(conn, "minimal")}
    assert (counts["e1"].sent, counts["e1"].unsubscribed) == (12, 3)
    paused = check_guardrails(h.db_engine, h.daemon.live.current.plans, h.clock.now())
    assert [(p.step, p.breach.metric, p.breach.count, p.breach.sends) for p in paused] == [
        ("e1", "unsubscribes", 3, 12)]
    assert paused[0].breach.detail == "unsubscribes 25% of 12 sends (3), over the 20% threshold"
    # Judged again: it is paused once, not twice.
    assert check_guardrails(h.db_engine, h.daemon.live.current.plans, h.clock.now()) == []

    # The alert, posted by the daemon's guard when it finds the same storm.
    with h.db_engine.begin() as conn:
        pauses.resume(conn, "minimal", "e1", "test", h.clock.now() - timedelta(seconds=1))
        conn.execute(sa.update(STEP_PAUSE).values(resumed_at=MONDAY))  # judge the whole history again
    guard = h.daemon.ticker.guard
    assert guard is not None
    guard.check(h.clock.now())
    for _ in range(100):
        if hook[1]:
            break
        threading.Event().wait(0.05)
    assert len(hook[1]) == 1
    alert = hook[1][0]
    assert (alert["event"], alert["funnel"], alert["step"], alert["metric"]) == (
        "step_paused", "minimal", "e1", "unsubscribes")
    assert "funnel resume minimal e1" in alert["text"]
    assert alert["dashboard"] == "https://funnel.example/dashboard/funnels/minimal"

    h.run_until(MONDAY + 9 * DAY)
    # The first cohort went on past e1; the late ones wait at e1 instead of skipping it.
    assert {f"b{i}@example.com" for i in range(4)}.isdisjoint(_sent_to(h, "e1"))
    assert {f"b{i}@example.com" for i in range(4)}.isdisjoint(_sent_to(h, "e2"))
    assert len(_sent_to(h, "e2")) == 9  # 12 minus the 3 who unsubscribed
    with h.db_engine.connect() as conn:
        waiting = conn.execute(sa.select(ENROLLMENT.c.step, ENROLLMENT.c.next_run_at).where(
            ENROLLMENT.c.subscriber_id.in_([_id(h, f"b{i}@example.com") for i in range(4)]))).all()
    assert waiting == [("e1", None)] * 4

    monkeypatch.setattr(guardrails_cli, "clock", h.clock)
    cli = CliRunner()
    args = ["--project", str(project), "resume", "minimal"]
    env = {"FUNNEL_DATABASE_URL": db_url}
    running = cli.invoke(main, [*args, "e2"], env=env)
    assert running.exit_code == 0, running.output
    assert "step 'e2' of funnel 'minimal' is not paused; nothing to do" in running.output
    wrong = cli.invoke(main, [*args, "e11"], env=env)
    assert wrong.exit_code == 1
    assert "step 'e11' of funnel 'minimal' is not in it; did you mean 'e1'?" in wrong.output
    done = cli.invoke(main, [*args, "e1"], env=env)
    assert done.exit_code == 0, done.output
    assert "resumed 'e1' of 'minimal': 4 subscriber(s) waiting at it go on at the next tick" in done.output
    h.tick()
    assert {f"b{i}@example.com" for i in range(4)} <= _sent_to(h, "e1")
    # Judged on what was sent since the resume only: 4 sends, under min_sends, so no pause.
    assert check_guardrails(h.db_engine, h.daemon.live.current.plans, h.clock.now()) == []
    with h.db_engine.connect() as conn:
        history = conn.execute(sa.select(GUARDRAIL_EVENT.c.action, GUARDRAIL_EVENT.c.by)
                               .order_by(GUARDRAIL_EVENT.c.id)).all()
    assert history == [("paused", None), ("resumed", "test"), ("paused", None), ("resumed", "cli")]

    # After the resume only its new mail is judged: late unsubscribes from the old e1 do not
    # count against it, a storm in the new one does.
    fresh = [f"n{i}" for i in range(8)]
    _signup(h, fresh)
    h.run_until(h.clock.now() + 3 * DAY)
    assert {f"{n}@example.com" for n in fresh} <= _sent_to(h, "e1")  # 4 + 8 = 12 new sends
    for name in first[3:6]:
        _unsubscribe_from(h, f"{name}@example.com", "e1")
    assert check_guardrails(h.db_engine, h.daemon.live.current.plans, h.clock.now()) == []
    for name in fresh[:3]:
        _unsubscribe_from(h, f"{name}@example.com", "e1")
    again = check_guardrails(h.db_engine, h.daemon.live.current.plans, h.clock.now())
    assert [(p.step, p.breach.count, p.breach.sends) for p in again] == [("e1", 3, 12)]


def test_complaints_pause_a_step_and_transactional_steps_are_never_paused(harness: Harness) -> None:
    h = harness
    _signup(h, [f"c{i}" for i in range(10)])
    h.run_until(MONDAY + 2 * DAY + 4 * timedelta(hours=1))
    ids = [_id(h, f"c{i}@example.com") for i in range(6)]
    with h.db_engine.begin() as conn:
        inbound.complain(conn, ids[0], h.clock.now(), "report-1")  # blames e1, the latest
        # Unsubscribes from the magnet email: transactional mail is never held back.
        for i in range(1, 6):
            mine = sa.and_(DELIVERY.c.step == "magnet", DELIVERY.c.subscriber_id == ids[i])
            row = conn.execute(sa.select(DELIVERY).where(mine)).mappings().one()
            inbound.unsubscribe(conn, row["subscriber_id"], None, h.clock.now(), row["message_id"],
                                came_from=("minimal", "magnet"))
    paused = check_guardrails(h.db_engine, h.daemon.live.current.plans, h.clock.now())
    assert [(p.step, p.breach.metric) for p in paused] == [("e1", "complaints")]
    assert paused[0].breach.detail == "complaints 10% of 10 sends (1), over the 5% threshold"


def test_a_failed_alert_is_logged_and_the_pause_holds(db_url: str, project: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(db_url, project, MONDAY, alert_webhook="http://127.0.0.1:9/nothing-listens")
    try:
        _signup(h, [f"d{i}" for i in range(10)])
        h.run_until(MONDAY + 2 * DAY + 4 * timedelta(hours=1))
        ids = [_id(h, f"d{i}@example.com") for i in range(3)]
        with h.db_engine.begin() as conn:
            for i in range(3):
                inbound.complain(conn, ids[i], h.clock.now(), f"r{i}")
        sent: list[Any] = []
        guard = Guard(h.db_engine, lambda: h.daemon.live.current.plans, 60,
                      alert=lambda p: sent.append(p.alert("https://x.example")), monotonic=lambda: 0.0)
        assert guard.due()
        assert [p.step for p in guard.check(h.clock.now())] == ["e1"]
        assert not guard.due()  # not again within the interval
        assert sent and sent[0]["step"] == "e1"
        assert post_alert("http://127.0.0.1:9/x", sent[0], timeout=1) is False
        assert "alert_failed" in [r.getMessage() for r in caplog.records]
        with h.db_engine.connect() as conn:
            assert pauses.paused_steps(conn) == {"minimal": frozenset({"e1"})}
    finally:
        h.close()


def test_the_tallies_are_folded_every_few_seconds_and_the_steps_judged_every_interval(
        db_url: str, project: Path) -> None:
    h = Harness(db_url, project, MONDAY)
    try:
        clock = [0.0]
        guard = Guard(h.db_engine, lambda: h.daemon.live.current.plans, 60, monotonic=lambda: clock[0])
        guard.run(h.clock.now())
        _signup(h, ["f1", "f2"])  # the triggers append their tallies
        with h.db_engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(TALLY)).scalar_one() > 0
        clock[0] = FOLD_SECONDS - 0.1
        assert not guard.due()
        clock[0] = FOLD_SECONDS
        assert guard.due()
        judged: list[bool] = []
        with patch("engine.scheduler.guard.check_guardrails", lambda *a: judged.append(True) or []):
            assert guard.run(h.clock.now()) == []
            assert judged == []  # folded only: the interval has not passed
            with h.db_engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(TALLY)).scalar_one() == 0
            clock[0] = 60.0
            guard.run(h.clock.now())
            assert judged == [True]
    finally:
        h.close()
