"""Editing a live funnel under a real `funnel run --time-scale 3600 --force` over SMTP (issue 12).

The daemon is a subprocess, subscribers sign up over HTTP, mail goes to an aiosmtpd sink
on loopback, and the test reads the database (SQLite and PostgreSQL) after SIGTERM.

Time: at --time-scale 3600 one wall-clock second is one simulated hour. The funnel
sends a magnet at signup, then e1 an hour later and e2, e3, e4, o1 two hours apart
(about 10 s of wall clock). Nothing sleeps a fixed time: each step polls the sink, the
log or the database with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from engine.store.db import make_engine
from engine.store.tables import DELIVERY, RELEASE, SUBSCRIBER
from tests.support.project import DATA
from tests.support.smtp_server import RecordingHandler, running_smtp

SCALE = "3600"  # one wall-clock second is one simulated hour
STEPS = ("magnet", "e1", "e2", "e3", "e4", "o1")
SUBJECTS = {"magnet": "Your guide", "e1": "E1", "e2": "E2", "e3": "E3", "e4": "E4", "e5": "E5", "o1": "O1"}
HU_PART = '{% include "s/part-" ~ subscriber.locale ~ ".html" %}'

STUDIO = """\
funnel: studio
name: Lotus studio
sender:
  from: "Lotus Studio <hello@lotus.example>"
  postal_address: "1 Lotus Lane, Springfield"
signup:
  thank_you_url: https://lotus.example/thanks
  double_opt_in: false
defaults:
  spacing: 2h
  frequency_cap: 24/day
magnets:
  - id: guide
    title: The breathing guide
    email: {id: magnet, subject: Your guide, template: s/magnet.html}
segments:
  - id: all
    name: Everyone
    nurture:
      emails:
        - {id: e1, role: education, subject: E1, template: s/e1.html, after: 1h}
        - {id: e2, role: education, subject: E2, template: s/e2.html}
        - {id: e3, role: education, subject: E3, template: s/e3.html}
        - {id: e4, role: education, subject: E4, template: s/e4.html}
    sales:
      exit_on: purchase
      emails:
        - {id: o1, subject: O1, template: s/o1.html, last_chance: true}
    customer:
      emails:
        - {id: c1, role: education, subject: C1, template: s/c1.html}
"""


def _studio(folder: Path) -> Path:
    """A single opt-in funnel with no send window: six emails in about ten wall-clock seconds."""
    (folder / "sequences").mkdir(parents=True)
    (folder / "templates" / "s").mkdir(parents=True)
    (folder / "sequences" / "studio.yaml").write_text(STUDIO)
    (folder / "templates" / "layout.html").write_text((DATA / "templates" / "layout.html").read_text())
    for step in (*STEPS, "c1"):
        greeting = "{{ subscriber.first_name or 'there' }}"
        _template(folder, f"s/{step}.html", f"<p>Hi {greeting}, this is {step}.</p>")
    return folder


def _template(project: Path, name: str, body: str) -> None:
    text = '{% extends "layout.html" %}\n{% block body %}' + body + "{% endblock %}\n"
    _save(project, f"templates/{name}", text)


def _save(project: Path, name: str, text: str) -> None:
    """Write a project file at once (os.replace), as editors that save atomically do.

    A plain write_text truncates first: a tick in between would load a release with an
    empty file (a valid template), which is not the edit under test.
    """
    scratch = project / ".saving"  # outside sequences/ and templates/: the daemon does not watch it
    scratch.write_text(text)
    os.replace(scratch, project / name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for: {what}")
        time.sleep(0.05)


class _Run:
    """`python -m engine --project P run --time-scale 3600 --force`, its log in a file read live."""

    def __init__(self, project: Path, db_url: str, smtp_port: int, log_path: Path) -> None:
        self.port = _free_port()
        self.log_path = log_path
        self._log = log_path.open("w")
        env = {
            **os.environ,
            "FUNNEL_DATABASE_URL": db_url,
            "FUNNEL_TRANSPORT": "smtp",
            "FUNNEL_SMTP_HOST": "127.0.0.1",
            "FUNNEL_SMTP_PORT": str(smtp_port),
            "FUNNEL_SMTP_TLS": "none",
            "FUNNEL_SECRET_KEY": "live-edit-test-" + "k" * 32,
            "FUNNEL_BASE_URL": f"http://127.0.0.1:{self.port}",
            "FUNNEL_TICK_SECONDS": "0.1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine", "--project", str(project), "run", "--port", str(self.port),
             "--time-scale", SCALE, "--force"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True,
        )

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def actions(self, action: str) -> list[dict[str, Any]]:
        """The log lines of one action."""
        return [line for line in self.logs() if line["action"] == action]

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False
        _until("/healthz to answer 200", healthy)

    def sign_up(self, email: str, name: str, locale: str = "en") -> None:
        """A real POST /subscribe, as a website's fetch() sends it."""
        response = httpx.post(
            f"http://127.0.0.1:{self.port}/subscribe",
            json={"email": email, "name": name, "funnel": "studio", "locale": locale},
            headers={"Accept": "application/json"},
            timeout=10.0,
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "subscribed"

    def stop(self) -> int:
        """SIGTERM, then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


@contextmanager
def _running(project: Path, db_url: str, tmp_path: Path) -> Iterator[tuple[_Run, RecordingHandler]]:
    handler = RecordingHandler()
    with running_smtp(handler) as server:
        run = _Run(project, db_url, server.port, tmp_path / "daemon.log")
        try:
            run.wait_healthy()
            yield run, handler
        finally:
            run.kill()


def _received(handler: RecordingHandler) -> Counter[tuple[str, str]]:
    """(recipient, subject) -> how many copies the sink took."""
    counts: Counter[tuple[str, str]] = Counter()
    for message in handler.received:
        subject = str(message_from_bytes(message.data, policy=policy.default)["Subject"])
        for rcpt in message.rcpt_tos:
            counts[(rcpt, subject)] += 1
    return counts


def _bodies(handler: RecordingHandler, rcpt: str, subject: str) -> list[str]:
    found = []
    for message in handler.received:
        parsed = message_from_bytes(message.data, policy=policy.default)
        if rcpt in message.rcpt_tos and str(parsed["Subject"]) == subject:
            assert isinstance(parsed, EmailMessage)
            part = parsed.get_body(("html",))
            assert part is not None
            found.append(str(part.get_content()))
    return found


def _order(handler: RecordingHandler, rcpt: str) -> list[str]:
    """The subjects `rcpt` got, in the order the sink took them."""
    return [str(message_from_bytes(m.data, policy=policy.default)["Subject"])
            for m in handler.received if rcpt in m.rcpt_tos]


def _got(handler: RecordingHandler, rcpts: list[str], step: str) -> Callable[[], bool]:
    return lambda: all(_received(handler)[(r, SUBJECTS[step])] >= 1 for r in rcpts)


def _everything(handler: RecordingHandler, rcpts: list[str],
                steps: tuple[str, ...] = STEPS) -> Callable[[], bool]:
    return lambda: all(_got(handler, rcpts, step)() for step in steps)


def _read(db_url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every delivery (with its address) and every release, oldest first."""
    db_engine = make_engine(db_url)
    try:
        with db_engine.connect() as conn:
            deliveries = [dict(r) for r in conn.execute(
                sa.select(DELIVERY, SUBSCRIBER.c.email)
                .join(SUBSCRIBER, SUBSCRIBER.c.id == DELIVERY.c.subscriber_id)
                .order_by(DELIVERY.c.id)).mappings()]
            releases = [dict(r) for r in conn.execute(
                sa.select(RELEASE).order_by(RELEASE.c.went_live_at)).mappings()]
    finally:
        db_engine.dispose()
    return deliveries, releases


def _serving(releases: list[dict[str, Any]], delivery: dict[str, Any]) -> str:
    """The release that was live when `delivery` was sent: the last to go live before it."""
    live = [r["id"] for r in releases if r["went_live_at"] <= delivery["sent_at"]]
    assert live, delivery
    return str(live[-1])


def _assert_all_sent_once(handler: RecordingHandler, deliveries: list[dict[str, Any]], rcpts: list[str],
                          steps: tuple[str, ...] = STEPS) -> None:
    """Nothing failed, nothing lost, nothing twice: in the database and in the sink."""
    assert {d["status"] for d in deliveries} == {"sent"}, [
        (d["email"], d["step"], d["status"], d["last_reply"]) for d in deliveries if d["status"] != "sent"]
    assert sorted((d["email"], d["step"]) for d in deliveries) == sorted((r, s) for r in rcpts for s in steps)
    assert _received(handler) == Counter({(r, SUBJECTS[s]): 1 for r in rcpts for s in steps})


def test_a_template_renamed_before_the_yaml_loses_and_fails_nothing(db_url: str, tmp_path: Path) -> None:
    """e2's template is renamed on disk once every e1 is out; the YAML still names the old file.

    The YAML is fixed once every e2 has fallen due and gone in the gap: about two
    wall-clock seconds, two simulated hours (the "minute later" of an operator, scaled
    so that the whole of an email's spacing passes in the gap). What happens: the
    e2s are rendered from the last release, which holds s/e2.html in memory; nothing
    is held, nothing fails; everything after the fix names the new release.
    """
    project = _studio(tmp_path / "project")
    rcpts = [f"yogi{i}@example.com" for i in range(4)]
    with _running(project, db_url, tmp_path) as (run, handler):
        first = _read(db_url)[1][0]["id"]
        for i, rcpt in enumerate(rcpts):
            run.sign_up(rcpt, f"Yogi {i}")
        _until("every e1 in the sink", _got(handler, rcpts, "e1"))
        templates = project / "templates" / "s"
        os.rename(templates / "e2.html", templates / "second.html")
        _until("reload_failed in the log", lambda: bool(run.actions("reload_failed")))
        _until("every e2 in the sink, while the YAML still names s/e2.html", _got(handler, rcpts, "e2"))
        assert not run.actions("reloaded")  # the YAML was still broken when every e2 went out
        yaml = (project / "sequences" / "studio.yaml").read_text()
        fixed = yaml.replace("template: s/e2.html", "template: s/second.html")
        _save(project, "sequences/studio.yaml", fixed)
        _until("reloaded in the log", lambda: bool(run.actions("reloaded")))
        _until("all six emails for everyone in the sink", _everything(handler, rcpts))
        assert run.stop() == 0
        logs = run.logs()
    deliveries, releases = _read(db_url)
    _assert_all_sent_once(handler, deliveries, rcpts)
    # Two releases: the one the daemon started with, and the fixed YAML's.
    assert len(releases) == 2 and releases[0]["id"] == first
    second = releases[1]["id"]
    summary = releases[1]["summary"]
    assert (summary["templates_added"], summary["templates_removed"]) == (["s/second.html"], ["s/e2.html"])
    # Every delivery names the release that was live when it went.
    assert all(d["release"] == _serving(releases, d) for d in deliveries)
    by_step: dict[str, set[str]] = {}
    for d in deliveries:
        by_step.setdefault(d["step"], set()).add(d["release"])
    assert by_step["e2"] == {first}  # in the gap: from the last good release, in memory
    assert by_step["e3"] == by_step["e4"] == by_step["o1"] == {second}  # after the fix
    # The log: the broken rename, every e2 sent while it stood, then the fix; nothing held.
    actions = [line["action"] for line in logs]
    failed_at, reloaded_at = actions.index("reload_failed"), actions.index("reloaded")
    e2_sent = [i for i, line in enumerate(logs) if line["action"] == "sent" and line.get("step") == "e2"]
    assert len(e2_sent) == len(rcpts) and failed_at < min(e2_sent) and max(e2_sent) < reloaded_at
    assert logs[failed_at]["release"] == first and "s/e2.html" in " ".join(logs[failed_at]["errors"])
    assert (logs[reloaded_at]["release"], logs[reloaded_at]["previous"]) == (second, first)
    assert actions.count("reload_failed") == 1 and actions.count("reloaded") == 1
    assert "render_held" not in actions and "failed" not in actions and "render_failed" not in actions


def test_an_email_the_files_cannot_render_for_some_is_held_then_sent_from_the_fixed_release(
    db_url: str, tmp_path: Path
) -> None:
    """e1 includes a part named by the subscriber's locale; validate checks 'en' only, so it loads.

    The 'hu' subscribers' e1 is held (the part is missing) while the 'en' ones go. The
    missing file is added once the 'en' subscribers have had e2 too: about two
    wall-clock seconds, two simulated hours of retries every 10 simulated minutes. The
    held e1s then go, rendered from the new release, and name it.
    """
    project = _studio(tmp_path / "project")
    _template(project, "s/e1.html", "<p>This is e1.</p>" + HU_PART)
    _save(project, "templates/s/part-en.html", "<p>English part</p>")
    english, hungarian = ["ana@example.com", "bob@example.com"], ["hu1@example.com", "hu2@example.com"]
    with _running(project, db_url, tmp_path) as (run, handler):
        first = _read(db_url)[1][0]["id"]
        for i, rcpt in enumerate(english):
            run.sign_up(rcpt, f"Reader {i}")
        for i, rcpt in enumerate(hungarian):
            run.sign_up(rcpt, f"Olvasó {i}", locale="hu")

        def held() -> bool:
            rows = [d for d in _read(db_url)[0] if d["email"] in hungarian and d["step"] == "e1"]
            # "sending" too: at 3600x a held email is claimed again every 1/6 wall-clock second.
            return len(rows) == 2 and all(
                d["status"] in ("deferred", "sending") and str(d["last_reply"]).startswith("held: ")
                for d in rows)

        _until("the hu subscribers' e1 held", held)
        _until("the en subscribers' e2 in the sink", _got(handler, english, "e2"))
        assert held() and not any(_received(handler)[(rcpt, "E1")] for rcpt in hungarian)
        _save(project, "templates/s/part-hu.html", "<p>Magyar rész</p>")
        _until("reloaded in the log", lambda: bool(run.actions("reloaded")))
        _until("all six emails for everyone in the sink", _everything(handler, english + hungarian))
        assert run.stop() == 0
        logs = run.logs()
    deliveries, releases = _read(db_url)
    _assert_all_sent_once(handler, deliveries, english + hungarian)
    assert len(releases) == 2 and releases[0]["id"] == first
    second = releases[1]["id"]
    assert releases[1]["summary"]["templates_added"] == ["s/part-hu.html"]
    assert all(d["release"] == _serving(releases, d) for d in deliveries)
    e1 = {d["email"]: d for d in deliveries if d["step"] == "e1"}
    assert {rcpt: e1[rcpt]["release"] for rcpt in english + hungarian} == {
        **dict.fromkeys(english, first), **dict.fromkeys(hungarian, second)}
    for rcpt in hungarian:
        [body] = _bodies(handler, rcpt, "E1")
        assert "Magyar rész" in body
        # The next email waits for the held one: the inbox keeps the path's order.
        assert _order(handler, rcpt) == [SUBJECTS[step] for step in STEPS]
    # Held, retried, never failed; the hold names the file and the release it was tried with.
    holds = [line for line in logs if line["action"] == "render_held"]
    assert holds and {(tuple(h["steps"]), h["template"], h["release"]) for h in holds} == {
        (("studio/e1",), "s/e1.html", first)}
    assert all("s/part-hu.html" in h["error"] for h in holds)
    actions = [line["action"] for line in logs]
    assert "failed" not in actions and "render_failed" not in actions and "reload_failed" not in actions
    assert max(i for i, a in enumerate(actions) if a == "render_held") < actions.index("reloaded")


def test_a_new_email_whose_template_comes_later_waits_for_it_and_fails_nothing(
    db_url: str, tmp_path: Path
) -> None:
    """Once every e1 is out, e5 is added after e4 in the YAML, naming s/e5.html, which is not there yet.

    The file is written once every e2 has gone in the gap (about two wall-clock seconds,
    two simulated hours). What happens: nothing is held, as no live release has e5 yet;
    the edit as a whole waits (`reload_failed`, the last release serving e2), and once the
    file is there the new release goes live and sends e5 to everyone, naming it.
    """
    project = _studio(tmp_path / "project")
    rcpts = [f"yogi{i}@example.com" for i in range(3)]
    steps = ("magnet", "e1", "e2", "e3", "e4", "e5", "o1")
    with _running(project, db_url, tmp_path) as (run, handler):
        first = _read(db_url)[1][0]["id"]
        for i, rcpt in enumerate(rcpts):
            run.sign_up(rcpt, f"Yogi {i}")
        _until("every e1 in the sink", _got(handler, rcpts, "e1"))
        yaml = (project / "sequences" / "studio.yaml").read_text()
        e4 = "        - {id: e4, role: education, subject: E4, template: s/e4.html}\n"
        e5 = "        - {id: e5, role: education, subject: E5, template: s/e5.html}\n"
        _save(project, "sequences/studio.yaml", yaml.replace(e4, e4 + e5))
        _until("reload_failed in the log", lambda: bool(run.actions("reload_failed")))
        _until("every e2 in the sink, while s/e5.html is missing", _got(handler, rcpts, "e2"))
        assert not run.actions("reloaded")
        _template(project, "s/e5.html", "<p>This is e5, new.</p>")
        _until("reloaded in the log", lambda: bool(run.actions("reloaded")))
        _until("all seven emails for everyone in the sink", _everything(handler, rcpts, steps))
        assert run.stop() == 0
        logs = run.logs()
    deliveries, releases = _read(db_url)
    _assert_all_sent_once(handler, deliveries, rcpts, steps)
    assert len(releases) == 2 and releases[0]["id"] == first
    second = releases[1]["id"]
    summary = releases[1]["summary"]
    assert (summary["emails_added"], summary["templates_added"]) == (["studio/e5"], ["s/e5.html"])
    assert all(d["release"] == _serving(releases, d) for d in deliveries)
    by_step: dict[str, set[str]] = {}
    for d in deliveries:
        by_step.setdefault(d["step"], set()).add(d["release"])
    assert by_step["e2"] == {first} and by_step["e5"] == by_step["o1"] == {second}
    for rcpt in rcpts:
        [body] = _bodies(handler, rcpt, "E5")
        assert "This is e5, new." in body
    actions = [line["action"] for line in logs]
    failed_at, reloaded_at = actions.index("reload_failed"), actions.index("reloaded")
    assert failed_at < reloaded_at and "s/e5.html" in " ".join(logs[failed_at]["errors"])
    assert "render_held" not in actions and "failed" not in actions and "render_failed" not in actions
