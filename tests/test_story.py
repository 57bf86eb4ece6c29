"""The "done when" of the stats, guardrails and dashboard issue, on the shipped funnels.

About 320 simulated subscribers (tests/story.py) sign up, confirm, answer, click, buy,
ignore everything, or unsubscribe in a storm from one email, while a real daemon ticks
every simulated hour for 45 days. Then: `funnel stats` shows the stage counts the parts
imply, the stormed step is paused with the late subscribers waiting at it, the idle ones
got the win-back emails and were sunset; and the dashboard, in a real chromium, shows
all of it and resumes the stormed step.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import engine.cli.stats as stats_cli
from engine.cli import main
from engine.mail.memory import MemoryTransport
from engine.store import pauses
from engine.store.tables import ENROLLMENT, SUBSCRIBER
from tests.scheduler.harness import Harness
from tests.story import DAY, MARATHON, PRICE, STORMED, Story, cast, run, sent_counts, sign_up
from tests.support.browser import chromium
from tests.support.project import shipped_project
from tests.web.served import serve

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday, before the 07:00 window opens
PASSWORD = "the marketer's password"


@pytest.fixture
def story_run(db_url: str, tmp_path: Path) -> Iterator[tuple[Harness, Story, Path]]:
    project = shipped_project(tmp_path / "project")
    transport = MemoryTransport()
    h = Harness(db_url, project, START, transport=transport, guardrail_seconds=0.001, admin_password=PASSWORD)
    story = cast()
    sign_up(h, story)
    run(h, story, transport, until=START + 45 * DAY, late_at=START + 10 * DAY)
    yield h, story, project
    h.close()


def _stats(h: Harness, project: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setattr(stats_cli, "clock", h.clock)
    result = CliRunner().invoke(main, ["--project", str(project), "stats", *args],
                                env={"FUNNEL_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    return result.output


def _people_at(h: Harness, emails: list[str]) -> list[tuple[str, str | None]]:
    with h.db_engine.connect() as conn:
        rows = conn.execute(sa.select(ENROLLMENT.c.stage, ENROLLMENT.c.step).join_from(ENROLLMENT, SUBSCRIBER)
                            .where(SUBSCRIBER.c.email.in_(emails)))
        return sorted((stage, step) for stage, step in rows)


@pytest.mark.browser  # the dashboard part drives chromium
def test_the_story_shows_in_stats_pauses_the_storm_and_wins_back_the_idle(
    story_run: tuple[Harness, Story, Path], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, story, project = story_run
    sent = sent_counts(h)

    # The storm paused the stormed step, once, for its unsubscribes.
    with h.db_engine.connect() as conn:
        assert pauses.paused_steps(conn) == {"first-marathon": frozenset({STORMED})}
        history = pauses.guardrail_events(conn)
    assert [(e["step"], e["action"], e["metric"]) for e in history] == [(STORMED, "paused", "unsubscribes")]
    assert history[0]["count"] == MARATHON["storm"]
    # The late ones got the two emails before it and wait at it: not skipped, not sent.
    late = [p.email for p in story.cast("late", "first-marathon")]
    assert _people_at(h, late) == [("nurture", STORMED)] * MARATHON["late"]

    # Every idle person got the win-back emails, then was sunset.
    idle_marathon = len(story.cast("idle", "first-marathon"))
    idle_camping = len(story.cast("idle", "camping-gear"))
    assert sent["wb-still-running"] == sent["wb-last-email"] == idle_marathon
    assert sent["wb-still-out-there"] == idle_camping
    idle = [p.email for p in story.cast("idle", "first-marathon") + story.cast("idle", "camping-gear")]
    assert {stage for stage, _ in _people_at(h, idle)} == {"sunset"}
    # Nobody who reads was sent one.
    engaged = [p.email for part in ("engaged", "buyer") for funnel in ("first-marathon", "camping-gear")
               for p in story.cast(part, funnel)]
    assert not {s for s, _ in _people_at(h, engaged)} & {"winback", "sunset"}

    report = json.loads(_stats(h, project, db_url, monkeypatch, "--json"))
    funnels = {f["funnel"]: f for f in report["funnels"]}
    marathon = funnels["first-marathon"]
    stages = {s["stage"]: s["count"] for s in marathon["stages"]}
    everyone = sum(MARATHON.values())
    beginners_who_answer = MARATHON["engaged"] + MARATHON["buyer"] + MARATHON["storm"] + MARATHON["late"]
    assert stages == {
        "signed_up": everyone,
        "confirmed": everyone - MARATHON["unconfirmed"],
        "answered": beginners_who_answer + MARATHON["advanced"],
        "nurture": everyone - MARATHON["unconfirmed"],
        # Those who read on: the storm left, the idle were sunset in nurture, the late wait.
        "sales": MARATHON["engaged"] + MARATHON["buyer"] + MARATHON["advanced"],
        "purchased": MARATHON["buyer"],
        "customers": MARATHON["buyer"],
    }
    assert (marathon["winback"], marathon["sunset"], marathon["unsubscribed"]) == (
        idle_marathon, idle_marathon, MARATHON["storm"])
    assert marathon["revenue"] == {"USD": PRICE * MARATHON["buyer"]}
    steps = {s["step"]: s for s in marathon["steps"]}
    shoes = steps[STORMED]
    assert shoes["paused"] is True and "unsubscribes" in (shoes["paused_detail"] or "")
    assert (shoes["sent"], shoes["unsubscribed"], shoes["clicked"]) == (
        MARATHON["engaged"] + MARATHON["buyer"] + MARATHON["storm"] + MARATHON["idle"],
        MARATHON["storm"], story.clicks[STORMED])
    for step_id, row in steps.items():  # every step's sends equal the table's own count
        assert row["sent"] == sent[step_id], step_id
        assert row["clicked"] == story.clicks[step_id], step_id
    camping = funnels["camping-gear"]
    assert (camping["winback"], camping["sunset"]) == (idle_camping, idle_camping)

    table = _stats(h, project, db_url, monkeypatch, "first-marathon")
    assert STORMED in table and "paused" in table.lower()

    _dashboard_shows_it(h, story, stages, marathon)
    # The resume woke the late ones: they get the step they waited at (in the next send window).
    h.run_until(h.clock.now() + DAY)
    late_sent = {m.rcpt_to for m in h.transport.sent if m.rcpt_to in late}
    assert sent_counts(h)[STORMED] == sent[STORMED] + len(late) and late_sent == set(late)


def _dashboard_shows_it(h: Harness, story: Story, stages: dict[str, int], marathon: dict[str, Any]) -> None:
    """Log in, read the chart and the figures, see the paused step, find an idle person, resume."""
    idle_one = story.cast("idle", "first-marathon")[0].email
    with serve(h) as http, chromium() as browser:
        base = str(http.base_url).rstrip("/")
        context = browser.new_context()
        tab = context.new_page()
        dialogs: list[str] = []
        tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        try:
            tab.goto(base + "/dashboard/funnels/first-marathon")
            tab.fill("#password", PASSWORD)
            tab.get_by_role("button", name="Log in").click()
            tab.wait_for_url(base + "/dashboard/funnels/first-marathon")
            chart = tab.locator("svg.funnel-chart")
            values = [v.split(" ")[0] for v in chart.locator("text.value").all_text_contents()]
            assert values == [str(count) for count in stages.values()]
            figures = tab.locator("dl.figures").first.inner_text()
            for label, value in (("Win-back", marathon["winback"]), ("Sunset", marathon["sunset"]),
                                 ("Unsubscribed", marathon["unsubscribed"])):
                assert f"{label}\n{value}".upper() in figures.upper(), figures  # CSS shows capitals
            row = tab.locator(f"tr#step-{STORMED}")
            assert row.get_attribute("class") == "paused" and "unsubscribes" in row.inner_text()

            tab.get_by_role("link", name="Subscribers").click()
            tab.fill("#q", idle_one)
            tab.get_by_role("button", name="Search").click()
            tab.get_by_role("link", name=idle_one).click()
            timeline = tab.locator("main").inner_text()
            assert "sunset" in timeline and "wb-last-email" in timeline, timeline

            tab.goto(base + "/dashboard/guardrails")
            assert STORMED in tab.locator("table.history").inner_text()

            tab.goto(base + "/dashboard/funnels/first-marathon")
            tab.locator(f"tr#step-{STORMED}").get_by_role("button", name=f"Resume step {STORMED}").click()
            tab.wait_for_url(f"{base}/dashboard/funnels/first-marathon?resumed={STORMED}")
            assert tab.locator(f"tr#step-{STORMED}").get_attribute("class") == ""
            assert dialogs == []
        finally:
            context.close()
