"""`funnel run` as operators start it: a real process, real HTTP, real signals, a real SMTP server."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.project.folder import Project
from engine.store import meta
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.tables import SUBSCRIBER
from engine.subscribers.leads import Lead, Proof, add_lead
from tests.support.project import minimal_project


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _SlowHandler:
    """Accepts every message, taking `delay` seconds over each DATA."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.received: list[bytes] = []
        self.data_started = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        import asyncio

        self.data_started.set()
        await asyncio.sleep(self.delay)
        assert isinstance(envelope.content, bytes)
        self.received.append(envelope.content)
        return "250 OK"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return minimal_project(tmp_path / "project")


def _add_leads(project: Path, url: str, count: int) -> None:
    db_engine = make_engine(url)
    upgrade(db_engine)
    plan = Project(project).plan("minimal")
    with db_engine.begin() as conn:
        for i in range(count):
            add_lead(
                conn,
                plan,
                Lead(email=f"s{i}@example.com", name=f"Reader {i}"),
                Proof("import"),
                datetime.now(UTC),
            )
    db_engine.dispose()


class _Daemon:
    def __init__(self, project: Path, env: dict[str, str], *args: str) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine",
                "--project",
                str(project),
                "run",
                "--port",
                str(self.port),
                *args,
            ],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_healthy(self, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.communicate()
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1.0)
                if response.status_code == 200 and response.json()["checks"]["scheduler"] == "ok":
                    return dict(response.json())
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the daemon never became healthy")

    def __enter__(self) -> _Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        """A failed assertion must not leave the daemon running after the test."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=10)

    def stop(self) -> tuple[int, list[dict[str, Any]]]:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=30)
        self.stderr = stderr
        return self.process.returncode, [
            json.loads(line) for line in stderr.splitlines() if line.startswith("{")
        ]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {
        "FUNNEL_DATABASE_URL": f"sqlite:///{tmp_path / 'funnel.db'}",
        "FUNNEL_SECRET_KEY": "k" * 32,
        "FUNNEL_BASE_URL": "https://funnel.example",
        "FUNNEL_TICK_SECONDS": "0.2",
    }


def test_the_daemon_serves_health_sends_to_the_outbox_and_stops_cleanly_on_sigterm(
    project: Path, env: dict[str, str]
) -> None:
    _add_leads(project, env["FUNNEL_DATABASE_URL"], 3)
    with _Daemon(project, env) as daemon:
        health = daemon.wait_healthy()
        assert health["status"] == "ok"
        assert health["checks"]["database"] == health["checks"]["scheduler"] == "ok"
        deadline = time.monotonic() + 20
        while len(list((project / "outbox").glob("*.eml"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        status, logs = daemon.stop()
    assert status == 0
    files = sorted((project / "outbox").glob("*.eml"))
    recipients = sorted(
        message_from_bytes(f.read_bytes(), policy=policy.default)["To"].addresses[0].addr_spec for f in files
    )
    assert recipients == ["s0@example.com", "s1@example.com", "s2@example.com"]
    actions = [line["action"] for line in logs]
    assert actions[0] == "started" and actions[-2:] == ["stopping", "stopped"]
    assert actions.count("sent") == 3 and all("ts" in line and "level" in line for line in logs)


def test_sigterm_lets_the_message_in_flight_finish_and_records_it(project: Path, env: dict[str, str]) -> None:
    handler = _SlowHandler(delay=1.5)
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        _add_leads(project, env["FUNNEL_DATABASE_URL"], 1)
        with _Daemon(
            project,
            {
                **env,
                "FUNNEL_TRANSPORT": "smtp",
                "FUNNEL_SMTP_HOST": "127.0.0.1",
                "FUNNEL_SMTP_PORT": str(controller.port),
                "FUNNEL_SMTP_TLS": "none",
            },
        ) as daemon:
            # Not wait_healthy(): it waits for the first tick to end, and this one ends only
            # after the slow server has taken the message.
            assert handler.data_started.wait(20)
            status, logs = daemon.stop()  # while the server is still taking the data
    finally:
        controller.stop()
    assert status == 0
    assert "Traceback" not in daemon.stderr and "Cancelled" not in daemon.stderr  # the tick ran to its end
    assert len(handler.received) == 1
    assert [line["action"] for line in logs].count("sent") == 1
    db_engine = make_engine(env["FUNNEL_DATABASE_URL"])
    with db_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT status FROM delivery").scalars().all() == ["sent"]
    db_engine.dispose()


def test_time_scale_refuses_a_transport_that_really_sends(project: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine", "--project", str(project), "run", "--time-scale", "100"],
        env={**os.environ, **env, "FUNNEL_TRANSPORT": "smtp"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--time-scale 100 would send real mail 100 times faster" in result.stderr
    assert "add --force" in result.stderr


def test_a_broken_sequence_file_stops_the_start_with_its_line(project: Path, env: dict[str, str]) -> None:
    path = project / "sequences" / "minimal.yaml"
    path.write_text(path.read_text().replace("template: t/e1.html", "tempalte: t/e1.html"))
    result = subprocess.run(
        [sys.executable, "-m", "engine", "--project", str(project), "run"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "minimal.yaml:" in result.stderr and "did you mean 'template'?" in result.stderr
    assert "fix them (funnel validate) and start again" in result.stderr


def _run_once(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`funnel run ARGS` that is expected to stop on its own (a start-up failure)."""
    return subprocess.run(
        [sys.executable, "-m", "engine", "--project", str(project), "run", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_port_in_use_is_one_line_and_status_3_before_anything_starts(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as held:  # another daemon, as far as the port is concerned
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = _run_once(project, env, "--port", str(port))
    assert result.returncode == 3
    assert result.stderr == (
        f"Error: port {port} on 127.0.0.1 is in use (another funnel run?): "
        f"stop it or pass --port {port + 1}\n"
    )
    assert result.stdout == ""
    # The socket is bound before the database is opened: nothing was created or migrated.
    assert not (tmp_path / "funnel.db").exists()


def test_an_address_the_machine_does_not_have_is_one_line_and_status_3(
    project: Path, env: dict[str, str]
) -> None:
    result = _run_once(project, env, "--host", "192.0.2.1", "--port", "0")  # TEST-NET-1: never local
    assert result.returncode == 3
    assert result.stderr == (
        "Error: cannot listen on 192.0.2.1: this machine has no such address; "
        "pass --host 127.0.0.1 (or 0.0.0.0 for every interface)\n"
    )


def test_a_database_folder_that_does_not_exist_is_one_line_and_status_1(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-folder" / "funnel.db"
    result = _run_once(project, {**env, "FUNNEL_DATABASE_URL": f"sqlite:///{missing}"}, "--port", "0")
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: cannot create the database {missing}: the folder {missing.parent} does not exist; "
        "create it or set FUNNEL_DATABASE_URL to a file in an existing folder\n"
    )
    assert not missing.parent.exists()


def test_a_bad_setting_is_one_line_and_status_1(project: Path, env: dict[str, str]) -> None:
    result = _run_once(project, {**env, "FUNNEL_TICK_SECONDS": "soon"}, "--port", "0")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: setting 'tick_seconds' (funnel.toml or FUNNEL_TICK_SECONDS): ")
    assert "got 'soon' (seconds between scheduler ticks)" in result.stderr


def test_without_base_url_links_follow_the_port_the_daemon_listens_on(
    project: Path, env: dict[str, str]
) -> None:
    del env["FUNNEL_BASE_URL"]
    with _Daemon(project, env) as daemon:
        daemon.wait_healthy()
        origin = f"http://127.0.0.1:{daemon.port}"
        signup = httpx.post(f"{origin}/subscribe", json={"email": "ann@example.com", "funnel": "minimal"})
        assert signup.status_code == 201, signup.text
        deadline = time.monotonic() + 20
        while not list((project / "outbox").glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.1)
        [mail] = (project / "outbox").glob("*.eml")
        message = message_from_bytes(mail.read_bytes(), policy=policy.default)
        body = message.get_body(("plain",))
        assert body is not None
        [link] = re.findall(r"http://[^\s<>()]+/confirm/[^\s<>()]+", body.get_content())
        assert link.startswith(f"{origin}/confirm/")
        page = httpx.get(link)
        confirmed = httpx.post(link)  # the page's button
        status, logs = daemon.stop()
    assert page.status_code == 200, link
    assert confirmed.status_code == 200
    assert status == 0
    assert logs[0]["action"] == "started" and logs[0]["links"] == origin
    db_engine = make_engine(env["FUNNEL_DATABASE_URL"])
    with db_engine.connect() as conn:
        kinds = conn.exec_driver_sql("SELECT kind FROM consent ORDER BY id").scalars().all()
    assert kinds == ["signup", "confirm"]
    db_engine.dispose()


def test_a_set_base_url_is_used_as_it_is_and_said_at_start(project: Path, env: dict[str, str]) -> None:
    with _Daemon(project, env) as daemon:
        daemon.wait_healthy()
        _, logs = daemon.stop()
    assert logs[0]["action"] == "started" and logs[0]["links"] == "https://funnel.example"
    assert logs[0]["port"] == daemon.port


def _clock_mark(url: str) -> dict[str, Any] | None:
    db_engine = make_engine(url)
    try:
        return meta.read(db_engine, "clock")
    finally:
        db_engine.dispose()


def test_a_demo_clock_runs_on_its_own_database_and_marks_it(project: Path, env: dict[str, str]) -> None:
    del env["FUNNEL_DATABASE_URL"]  # the defaults, as the README's demo runs
    with _Daemon(project, env, "--time-scale", "3600") as daemon:
        daemon.wait_healthy()
        status, logs = daemon.stop()
    assert status == 0
    demo = project / "funnel-demo.db"
    assert demo.exists() and not (project / "funnel.db").exists()
    assert logs[0]["action"] == "started" and logs[0]["time_scale"] == 3600
    assert logs[0]["database"] == f"sqlite:///{demo.resolve()}"
    mark = _clock_mark(f"sqlite:///{demo}")
    assert mark is not None and {k: mark[k] for k in ("kind", "scale")} == {"kind": "fast", "scale": 3600}
    real = _Daemon(project, env)  # a real-time run next to it uses funnel.db, marked real
    with real:
        real.wait_healthy()
        real.stop()
    assert _clock_mark(f"sqlite:///{project / 'funnel.db'}") == {"kind": "real"}


def test_a_database_a_demo_wrote_is_refused_by_a_real_run_and_commands_share_its_clock(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    with _Daemon(project, env, "--time-scale", "3600") as daemon:
        daemon.wait_healthy()
        daemon.stop()
    url = env["FUNNEL_DATABASE_URL"]
    refused = (
        f"Error: {url}: this database was written by a --time-scale 3600 demo; its times are in the "
        "future: run it with --time-scale 3600, use another database (FUNNEL_DATABASE_URL) or delete it\n"
    )
    result = _run_once(project, env, "--port", "0")
    assert (result.returncode, result.stderr) == (1, refused)
    # Commands beside the demo write in its time, not the real clock's: an import lands in its future.
    (tmp_path / "people.csv").write_text("email\nlate@example.com\n")
    before = datetime.now(UTC)
    command = subprocess.run(
        [sys.executable, "-m", "engine", "--project", str(project), "subscribers", "import",
         str(tmp_path / "people.csv"), "--funnel", "minimal"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )
    assert command.returncode == 0, command.stderr
    db_engine = make_engine(url)
    with db_engine.connect() as conn:
        created = conn.execute(sa.select(SUBSCRIBER.c.created_at)
                               .where(SUBSCRIBER.c.email == "late@example.com")).scalar_one()
    db_engine.dispose()
    assert created > before + timedelta(minutes=30)  # the demo's clock had run ahead
    other_speed = _run_once(project, env, "--port", "0", "--time-scale", "60")
    assert other_speed.returncode == 1
    assert other_speed.stderr == (
        f"Error: {url}: this database was written by a --time-scale 3600 demo; run with --time-scale "
        "3600, or use another database (FUNNEL_DATABASE_URL) or delete it\n"
    )


def test_a_demo_clock_refuses_a_database_a_real_run_wrote(project: Path, env: dict[str, str]) -> None:
    with _Daemon(project, env) as daemon:
        daemon.wait_healthy()
        daemon.stop()
    result = _run_once(project, env, "--port", "0", "--time-scale", "3600")
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: {env['FUNNEL_DATABASE_URL']}: this database was written by a real-time run; a "
        "--time-scale 3600 demo would write the future into it: leave FUNNEL_DATABASE_URL unset (a demo "
        "uses funnel-demo.db) or point it at another database\n"
    )
    assert _clock_mark(env["FUNNEL_DATABASE_URL"]) == {"kind": "real"}


def test_a_database_a_newer_version_migrated_stops_the_start_with_one_line(
    project: Path, env: dict[str, str]
) -> None:
    db_engine = make_engine(env["FUNNEL_DATABASE_URL"])
    upgrade(db_engine)
    with db_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    db_engine.dispose()
    result = _run_once(project, env, "--port", "0")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: the database sqlite:///") and result.stderr.count("\n") == 1
    assert "is at schema revision 0099, which this version of funnel-engine does not know" in result.stderr
