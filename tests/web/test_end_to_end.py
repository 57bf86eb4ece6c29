"""Both shipped funnels end to end: a real `funnel run`, a real SMTP server, and a person's browser.

The daemon runs with a fast clock (`--time-scale`) and sends over SMTP to a recording
aiosmtpd server on loopback (tests/web/live.py). Everything checked is read from the
messages that server received, and everything done goes through HTTP, as the
subscriber's browser, a mail scanner and the shop would do it. `funnel simulate` is the
oracle for which emails arrive, in which order; a message's step is found by its subject.
The subscriber reads each marketing email as it arrives, images on (an open), as
simulate's subscriber does: someone who opened nothing for three weeks would get the
funnel's win-back emails instead (docs/guardrails.md).

The clock: first-marathon spans about 155 simulated days (signup, 30 days of nurture,
the first sales email, then a customer path timed to a 16-week course), camping-gear
about 60. At 150,000x a simulated day passes in 0.58 s, so the first takes about 90 s.
A tick every 0.05 s covers about 2 simulated hours, inside the 3-hour send windows of
both funnels; a tick that comes late on a busy machine makes an email wait for the next
day's window, which delays it but never reorders it. Where the test must act before the
clock runs on (answer before the survey's deadline, buy before the second sales email,
2 simulated days = 1.2 s later), the SMTP server holds its reply to that email until the
test has acted, as a slow server would, and the daemon's tick waits for it.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from engine.project.folder import Project
from engine.sequences.plan import EmailStep, Plan, Role, SegmentPlan
from tests.support.links import images
from tests.support.project import shipped_project
from tests.support.smtp_server import running_smtp
from tests.web.live import (
    LiveDaemon,
    Mailbox,
    anchors,
    every_link,
    html_of,
    live_daemon,
    subject_of,
    subject_steps,
    text_of,
)

SCALE = 150_000.0
# What the visitor types into the form besides the address; the confirmation may hold none of it.
NAME = "Zed <b>Q</b>"
TYPED_FIELD = "Zed's typed note"
TYPED = (NAME, "Zed", "<b>Q", "&lt;b&gt;Q", "typed note")
START = "2026-03-02T09:00"  # the oracle's signup time (a Monday); the order does not depend on it
OBSERVE = 1.5  # seconds (about 2.6 simulated days) of watching for something that must not happen


@dataclass(frozen=True)
class Walk:
    """One subscriber's way through a funnel: the answer they click and what they buy."""

    funnel: str
    question: str
    answer: str  # leads to a segment other than the default, so that a lost answer shows
    product: str | None  # what the shop reports bought; None when any purchase ends sales


WALKS = [
    Walk("first-marathon", "experience", "racer", "sub-3-marathon"),
    # One link for two questions: the survey stays incomplete, and at its deadline the
    # answer's own segment applies.
    Walk("camping-gear", "level", "pro", None),
]


@pytest.mark.parametrize("walk", WALKS, ids=lambda w: w.funnel)
def test_one_subscriber_walks_the_whole_funnel_as_mail_and_browser_see_it(walk: Walk, tmp_path: Path) -> None:
    project = shipped_project(tmp_path / "project")
    plan = Project(project).plan(walk.funnel)
    assert plan.survey is not None and plan.confirmation is not None
    segment = _segment(plan, plan.survey.decide({walk.question: walk.answer}))
    assert segment.id != plan.default_segment and segment.ends_sales(walk.product)
    expected = _expected_steps(project, walk, segment)
    address = f"zed.{walk.funnel}@example.com"
    subjects = subject_steps(project, plan, address, NAME)
    subject_of_step = {step: subject for subject, step in subjects.items()}
    survey, first_sale = plan.survey.email.id, segment.sales.steps[0].id
    mailbox = Mailbox()
    mailbox.hold(subject_of_step[survey])
    mailbox.hold(subject_of_step[first_sale])
    with running_smtp(mailbox) as smtp, live_daemon(project, smtp.port, tmp_path, SCALE) as daemon:
        try:
            def arrived(count: int) -> list[str]:
                """The steps of the first `count` messages to the subscriber, once there are that many."""
                got = daemon.wait_for(
                    lambda: _at_least(mailbox.messages(address), count),
                    lambda: f"email {count} of {len(expected)} ({expected[count - 1]}); so far "
                            f"{_steps(mailbox.messages(address), subjects)}")
                return _steps(got[:count], subjects)

            # 1. A browser posts the landing page's form.
            response = daemon.http.post(
                "/subscribe",
                data={"email": address, "name": NAME, "funnel": walk.funnel, "fields[note]": TYPED_FIELD},
                headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
            assert response.status_code == 303, response.text
            assert response.headers["location"] == plan.thank_you_url

            # 2. The confirmation: its page confirms nothing, its button does.
            assert arrived(1) == [plan.confirmation.id]
            confirmation = mailbox.messages(address)[0]
            leaks = _typed_text(confirmation, address)  # asserted after the walk, to see the rest too
            confirm_url = _one_link(confirmation, f"{daemon.base_url}/confirm/")
            page = daemon.http.get(confirm_url)
            assert page.status_code == 200 and address in page.text
            time.sleep(OBSERVE)
            assert len(mailbox.messages(address)) == 1, "the confirm page's GET sent the magnet"
            shown = daemon.subscriber(address)
            assert "confirmed" not in _event_types(shown)
            assert [e["stage"] for e in shown["enrollments"]] == ["confirming"]
            assert _press_button(daemon, page, confirm_url).status_code == 200

            # 3. The magnet and the survey (its reply held): one answer link, a page, then its button.
            assert arrived(3) == expected[:3]
            label = dict(next(q.answers for q in plan.survey.questions if q.id == walk.question))[walk.answer]
            answer_url = next(href for href, text in anchors(html_of(mailbox.messages(address)[2]))
                              if text == label)
            assert answer_url.startswith(f"{daemon.base_url}/a/"), answer_url
            page = daemon.http.get(answer_url)
            assert page.status_code == 200 and label in html.unescape(page.text)
            assert "answer" not in _event_types(daemon.subscriber(address)), "the answer page's GET answered"
            assert _press_button(daemon, page, answer_url).status_code == 200
            answers = [(e["question"], e["answer"]) for e in daemon.subscriber(address)["events"]
                       if e["type"] == "answer"]
            assert answers == [(walk.question, walk.answer)]
            mailbox.release(subject_of_step[survey])

            # 4. Nurture, the first sales email (its reply held while the shop reports the
            # purchase), then the customer path.
            for count in range(4, len(expected) + 1):
                steps = arrived(count)
                _read(daemon, mailbox.messages(address)[count - 1])
                assert steps == expected[:count], (
                    f"expected {expected[:count]}, got {steps}; the daemon's records:\n"
                    + _history(daemon, address))
                if steps[-1] == first_sale:
                    _buy(daemon, address, walk)
                    mailbox.release(subject_of_step[first_sale])
            final = daemon.wait_for(lambda: _finished(daemon, address),
                                    "the enrollment to end with every email sent")
        finally:
            mailbox.release()
    messages = mailbox.messages(address)
    received = _steps(messages, subjects)
    assert received == expected
    assert len({m["Message-ID"] for m in messages}) == len(messages), "a message arrived twice"
    assert [d["step"] for d in final["deliveries"]] == expected, "the daemon's records differ from the mail"
    assert [e["segment"] for e in final["enrollments"]] == [segment.id]
    nurture = [_role(plan, step) for step in received if step in _ids(segment.nurture.steps)]
    _assert_four_to_one(nurture)
    sales = [step for step in received if step in _ids(segment.sales.steps)]
    assert sales == [first_sale], "sales emails went on after the purchase"
    assert received[-len(segment.customer.steps):] == list(_ids(segment.customer.steps))
    assert not leaks, "the confirmation holds what the visitor typed:\n" + "\n".join(leaks)


@pytest.mark.parametrize("funnel", ["first-marathon", "camping-gear"])
def test_a_mail_scanner_fetching_every_link_confirms_answers_and_unsubscribes_nothing(
    funnel: str, tmp_path: Path
) -> None:
    project = shipped_project(tmp_path / "project")
    plan = Project(project).plan(funnel)
    assert plan.survey is not None and plan.confirmation is not None
    pending, reader = f"pending.{funnel}@example.com", f"reader.{funnel}@example.com"
    pending_subjects = subject_steps(project, plan, pending, "")
    subjects = subject_steps(project, plan, reader, "")
    survey_subject = next(s for s, step in subjects.items() if step == plan.survey.email.id)
    first_nurture = _segment(plan, plan.default_segment).nurture.steps[0].id
    mailbox = Mailbox()
    mailbox.hold(survey_subject)
    with running_smtp(mailbox) as smtp, live_daemon(project, smtp.port, tmp_path, SCALE) as daemon:
        try:
            for address in (pending, reader):
                response = daemon.http.post("/subscribe", data={"email": address, "funnel": funnel},
                                            headers={"Accept": "text/html"})
                assert response.status_code == 303, response.text
            daemon.wait_for(lambda: mailbox.messages(pending), "the first confirmation")
            [confirmation] = daemon.wait_for(lambda: mailbox.messages(reader), "the second confirmation")
            confirm_url = _one_link(confirmation, f"{daemon.base_url}/confirm/")
            assert _press_button(daemon, daemon.http.get(confirm_url), confirm_url).status_code == 200
            daemon.wait_for(lambda: len(mailbox.messages(reader)) == 3, "the magnet and the survey")
            assert _steps(mailbox.messages(pending), pending_subjects) == [plan.confirmation.id]
            assert _steps(mailbox.messages(reader), subjects) == [
                plan.confirmation.id, plan.magnet(None).email.id, plan.survey.email.id]

            # The scanner: every link of every message, GET and HEAD, all at once, no redirects followed.
            links = [u for m in mailbox.messages(pending) + mailbox.messages(reader) for u in every_link(m)]
            links = list(dict.fromkeys(u for u in links if u.startswith(daemon.base_url + "/")))
            kinds = {u[len(daemon.base_url):].split("/")[1] for u in links}
            assert {"confirm", "a", "u", "o", "c"} <= kinds, kinds
            answer_links = sum(len(q.answers) for q in plan.survey.questions)
            assert sum(u.startswith(f"{daemon.base_url}/a/") for u in links) == answer_links
            started = time.monotonic()
            statuses = asyncio.run(_scan(links))
            scanned_in = time.monotonic() - started
            assert all(status < 500 for _, _, status in statuses), statuses
            assert {s for m, u, s in statuses if m == "GET" and "/c/" in u} == {302}

            # Right after the scan, while the survey's reply is still held (its deadline cannot pass).
            shown = daemon.subscriber(reader)
            assert not {"answer", "unsubscribe"} & set(_event_types(shown)), shown["events"]
            assert shown["status"] == "active"
            assert [(e["stage"], e["segment"]) for e in shown["enrollments"]] == [("answering", None)]
            waiting = daemon.subscriber(pending)
            assert "confirmed" not in _event_types(waiting)
            assert [e["stage"] for e in waiting["enrollments"]] == ["confirming"]
            mailbox.release(survey_subject)

            # Mail keeps coming: unanswered, the survey's deadline puts the reader in the default segment.
            daemon.wait_for(lambda: len(mailbox.messages(reader)) >= 4, "the first nurture email")
            assert _steps(mailbox.messages(reader), subjects)[3] == first_nurture
            shown = daemon.subscriber(reader)
        finally:
            mailbox.release()
    assert scanned_in < 30, f"the scan took {scanned_in:.1f}s"
    assert shown["status"] == "active"
    assert [e["segment"] for e in shown["enrollments"]] == [plan.default_segment]
    assert not {"answer", "unsubscribe"} & set(_event_types(shown)), shown["events"]
    assert _event_types(shown).count("confirmed") == 1  # the reader's own press of the button
    # Days went by for the reader; the other address still has only its confirmation.
    assert _steps(mailbox.messages(pending), pending_subjects) == [plan.confirmation.id]


def _expected_steps(project: Path, walk: Walk, segment: SegmentPlan) -> list[str]:
    """The oracle: what `funnel simulate` sends, with the purchase an hour after the first sales email."""
    answer = ["--answer", f"{walk.question}={walk.answer}"]
    first_sale = next(row for row in _simulate(project, walk.funnel, *answer) if row["path"] == "sales")
    after = datetime.fromisoformat(first_sale["at"]) - datetime.fromisoformat(START + "+00:00")
    minutes = int((after + timedelta(hours=1)).total_seconds() // 60)
    bought = f"purchase:{walk.product}" if walk.product else "purchase"
    rows = _simulate(project, walk.funnel, *answer, "--event", f"{bought}@{minutes}m")
    assert [r["step"] for r in rows if r["path"] == "sales"] == [first_sale["step"]]
    assert [r["step"] for r in rows if r["path"] == "customer"] == list(_ids(segment.customer.steps)), (
        "the simulation stopped before the customer path ended: raise --days")
    return [r["step"] for r in rows]


def _simulate(project: Path, funnel: str, *args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "engine", "--project", str(project), "simulate", funnel, "--start", START,
         "--days", "400", "--json", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


def _read(daemon: LiveDaemon, message: EmailMessage) -> None:
    """Open the message as a mail client showing images does: its pixel is fetched."""
    pixels = [src for src in images(html_of(message)) if src.startswith(f"{daemon.base_url}/o/")]
    assert len(pixels) == 1, "a marketing email without its open pixel"
    assert daemon.http.get(pixels[0]).status_code == 200


def _buy(daemon: LiveDaemon, address: str, walk: Walk) -> None:
    """The shop reports the purchase (and, as shops do, retries it once: recorded once)."""
    purchase = {"email": address, "type": "purchase", "product": walk.product, "amount": 149.0,
                "currency": "USD", "id": f"order-{walk.funnel}"}
    bought = daemon.http.post("/api/events", json=purchase, headers=daemon.api)
    assert bought.status_code == 201, bought.text
    again = daemon.http.post("/api/events", json=purchase, headers=daemon.api)
    assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text


def _segment(plan: Plan, segment_id: str) -> SegmentPlan:
    segment = plan.segment(segment_id)
    assert segment is not None, segment_id
    return segment


def _role(plan: Plan, step_id: str) -> Role:
    email = plan.email(step_id)
    assert email is not None, step_id
    return email.role


def _ids(steps: tuple[EmailStep, ...]) -> tuple[str, ...]:
    return tuple(step.id for step in steps)


def _at_least(messages: list[EmailMessage], count: int) -> list[EmailMessage] | None:
    return messages if len(messages) >= count else None


def _steps(messages: list[EmailMessage], subjects: dict[str, str]) -> list[str]:
    """The step id of each message, found by its subject ('?' and the subject when unknown)."""
    return [subjects.get(subject_of(m), f"? {subject_of(m)}") for m in messages]


def _event_types(subscriber: dict[str, Any]) -> list[str]:
    return [event["type"] for event in subscriber["events"]]


def _one_link(message: EmailMessage, prefix: str) -> str:
    found = {href for href, _ in anchors(html_of(message)) if href.startswith(prefix)}
    assert len(found) == 1, f"expected one {prefix} link, found {found}"
    return found.pop()


def _press_button(daemon: LiveDaemon, page: httpx.Response, url: str) -> httpx.Response:
    """What a browser does with the button of a confirm or answer page: POST its form."""
    assert page.status_code == 200, page.text
    form = re.search(r'<form method="post" action="([^"]*)"', page.text)
    assert form is not None, page.text
    return daemon.http.post(urljoin(url, html.unescape(form.group(1))))


def _finished(daemon: LiveDaemon, address: str) -> dict[str, Any] | None:
    shown = daemon.subscriber(address)
    ended = [e["stage"] for e in shown["enrollments"]] == ["ended"]
    return shown if ended and all(d["status"] == "sent" for d in shown["deliveries"]) else None


def _history(daemon: LiveDaemon, address: str) -> str:
    """Each delivery's step, when it was decided and sent (simulated time), and the last reply."""
    return "\n".join(f"{d['step']}: decided {d['created_at']}, sent {d['sent_at']}, {d['status']}, "
                     f"{d['last_reply']}" for d in daemon.subscriber(address)["deliveries"])


def _typed_text(message: EmailMessage, address: str) -> list[str]:
    """Where the message holds text typed into the form (decoded headers, text, HTML): none allowed."""
    places = [f"header {k}: {v}" for k, v in message.items()]
    places += [f"text part: {text_of(message)}", f"HTML part: {html_of(message)}"]
    places = [re.sub(r"https?://\S+", " ", p) for p in places]  # link tokens are random letters
    found = [p[:300] for p in places if any(t in p for t in TYPED)]
    if str(message["To"]).strip() != address:
        found.append(f"To is {str(message['To'])!r}, not the bare address")
    return found


def _assert_four_to_one(roles: list[Role]) -> None:
    """Nurture keeps to 4:1: four education emails before each sale."""
    sales = [i for i, role in enumerate(roles) if role is Role.SALE]
    assert sales, roles
    for i in sales:
        assert roles[max(0, i - 4):i] == [Role.EDUCATION] * 4, roles


async def _scan(links: list[str]) -> list[tuple[str, str, int]]:
    """GET and HEAD every link at once, as a mail security scanner does; (method, url, status)."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=60,
                                 headers={"User-Agent": "LinkScanner/1.0"}) as client:
        async def fetch(method: str, url: str) -> tuple[str, str, int]:
            return method, url, (await client.request(method, url)).status_code

        return list(await asyncio.gather(*(fetch(m, u) for u in links for m in ("GET", "HEAD"))))
