"""`funnel broadcast list|audience|preview|schedule|cancel|stats` and the broadcasts in `funnel stats`,
on a small known list through the daemon's ticks (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import engine.cli.broadcasts as broadcasts_cli
import engine.cli.stats as stats_cli
from engine.cli.broadcasts_text import audience_lines
from engine.stats import broadcasts as numbers
from engine.store import broadcasts as calendar
from engine.store import queries
from engine.store.tables import DELIVERY
from tests.cli.conftest import MONDAY, Cli
from tests.scheduler.harness import Harness

SALE_AT = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)  # Wednesday, inside the window (weekdays 08:00-11:00)


def write_broadcast(project: Path, broadcast_id: str, at: str, role: str = "education",
                    audience: str = "  signed_up_after: 2026-01-01\n", extra: str = "") -> None:
    """broadcasts/ID.yaml of the minimal funnel, with the news template."""
    folder = project / "broadcasts"
    folder.mkdir(exist_ok=True)
    (folder / f"{broadcast_id}.yaml").write_text(
        f"broadcast: {broadcast_id}\nname: The {broadcast_id}\nfunnel: minimal\nemail:\n"
        "  subject: News for {{ subscriber.first_name }}\n"
        f'  template: t/news.html\n  role: {role}\naudience:\n{audience}send:\n  at: "{at}"\n{extra}'
    )


@dataclass
class Story:
    """The CLI and a daemon on one database, with the list below."""

    cli: Cli
    harness: Harness


@pytest.fixture
def story(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Story]:
    """Monday 08:00: Ana (new) and Bob (pro, Tokyo) confirmed and answered; Cy confirmed, then
    unsubscribed; Dan signed up and never confirmed. Broadcasts: 'flash' (a sale, Wednesday 09:30
    UTC) and 'digest' (education, Friday 09:00 each recipient's local time), both drafts."""
    project = cli.project
    funnel = project / "sequences" / "minimal.yaml"  # room for a broadcast beside a nurture email a day
    funnel.write_text(funnel.read_text().replace("  spacing: 2d\n", "  spacing: 2d\n  frequency_cap: 2/day\n",
                                                 1))
    (project / "templates" / "t" / "news.html").write_text(
        (project / "templates" / "t" / "e1.html").read_text().replace("this is e1", "here is the news")
    )
    write_broadcast(project, "flash", "2026-03-04T09:30:00Z", role="sale")
    write_broadcast(project, "digest", "2026-03-06 09:00")
    h = Harness(cli.db_url, project, MONDAY)
    monkeypatch.setattr(broadcasts_cli, "clock", h.clock)
    monkeypatch.setattr(stats_cli, "clock", h.clock)
    try:
        people = (("ana@example.com", "new", "UTC"), ("bob@example.com", "pro", "Asia/Tokyo"),
                  ("cy@example.com", "new", "UTC"))
        for email, level, zone in people:
            h.add(email, first_name=email.split("@")[0].title(), timezone=zone)
            h.tick()
            h.event(email, "confirmed")
            h.event(email, "answer", funnel="minimal", question="level", answer=level)
        h.event("cy@example.com", "unsubscribe", funnel="minimal")
        h.add("dan@example.com", first_name="Dan")
        h.tick()
        yield Story(cli, h)
    finally:
        h.close()


def run(story: Story, *args: str) -> str:
    result = story.cli("broadcast", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_list_and_audience_before_anything_goes(story: Story) -> None:
    assert run(story, "list").splitlines() == [
        "  broadcast  funnel   role       when                                          state"
        "  recipients  sent",
        "  digest     minimal  education  2026-03-06 09:00 each recipient's local time  draft"
        "           0     0",
        "  flash      minimal  sale       2026-03-04 09:30 UTC                          draft"
        "           0     0",
    ]
    assert run(story, "audience", "flash").splitlines() == [
        "flash (sale) to funnel 'minimal', at 2026-03-04 09:30 UTC: draft",
        "  4 match its audience",
        "  1 of 4 left out for good: 1 unsubscribed",
        "  1 of 4 left out at their time unless they move on first: they have not confirmed their address",
        "  2 of 4 skipped: they have had no education email yet",
        "  0 would get it",
        "  goes at 2026-03-04 09:30 UTC",
        "  time zones: UTC 2, Asia/Tokyo 1",
    ]
    # Education never breaks the ratio; a local time goes first in Tokyo (09:00 there is 00:00 UTC).
    assert run(story, "audience", "digest").splitlines() == [
        "digest (education) to funnel 'minimal', at 2026-03-06 09:00 each recipient's local time: draft",
        "  4 match its audience",
        "  1 of 4 left out for good: 1 unsubscribed",
        "  1 of 4 left out at their time unless they move on first: they have not confirmed their address",
        "  2 would get it",
        "  goes from 2026-03-06 00:00 UTC to 2026-03-06 09:00 UTC",
        "  time zones: UTC 2, Asia/Tokyo 1",
    ]
    found = json.loads(run(story, "audience", "flash", "--json"))
    assert {k: found[k] for k in ("matching", "gone", "taken", "left_out", "ratio_skipped", "sample",
                                  "recipients")} == {
        "matching": 4, "gone": {"unsubscribed": 1}, "taken": 3, "left_out": {"confirming": 1},
        "ratio_skipped": {"they have had no education email yet": 2}, "sample": None, "recipients": 0}
    assert json.loads(run(story, "list", "--json"))[1]["state"] == "draft"


def test_a_big_audience_is_estimated_from_a_sample(story: Story) -> None:
    plans = story.harness.daemon.live.current.plans
    plan, flash = numbers.find(plans, "flash")
    with story.harness.db_engine.connect() as conn:
        whole = numbers.audience(conn, plan, flash, story.harness.clock.now())
        sampled = numbers.audience(conn, plan, flash, story.harness.clock.now(), sample=2)
    assert whole["sample"] is None
    # Every 2nd enrollment by id: Bob (2; Dan, 4, is left out by his stage), scaled up to Ana and Bob.
    assert sampled["sample"] == 1
    assert sampled["ratio_skipped"] == {"they have had no education email yet": 2}
    assert "  0 would get it (estimated from a sample of 1)" in list(audience_lines(sampled))


def test_schedule_twice_cancel_and_never_again(story: Story) -> None:
    h = story.harness
    out = run(story, "schedule", "digest", "--by", "maya").splitlines()
    local = "at 2026-03-06 09:00 each recipient's local time"
    assert out[0] == f"digest (education) to funnel 'minimal', {local}: draft"
    assert out[-1].startswith("scheduled 'digest' (release ")
    assert out[-1].endswith(f"it goes {local}; a running daemon takes its audience from "
                            "2026-03-05 19:00 UTC. Cancel with: funnel broadcast cancel digest")
    again = run(story, "schedule", "digest").splitlines()
    assert again[-1] == ("broadcast 'digest' is already scheduled (since 2026-03-02 08:00 UTC, by maya); "
                         "nothing to do")
    assert [r["state"] for r in json.loads(run(story, "list", "--json"))] == ["scheduled", "draft"]
    # Friday 01:00 UTC: Tokyo's 09:00 came (Bob has it); Ana's and Dan's have not.
    h.run_until(datetime(2026, 3, 6, 1, 0, tzinfo=UTC), every=timedelta(minutes=30))
    assert h.sent_steps("bob@example.com").count("digest") == 1
    assert run(story, "list").splitlines()[1].split()[-3:] == ["sending", "3", "1"]
    assert run(story, "cancel", "digest").splitlines() == [
        "cancelled 'digest': 2 recipient(s) who had not had it will not get it; 0 queued email(s) stopped; "
        "what was sent stays sent"]
    h.run_until(datetime(2026, 3, 7, 12, 0, tzinfo=UTC), every=timedelta(hours=1))
    assert "digest" not in h.sent_steps("ana@example.com")
    stats = run(story, "stats", "digest").splitlines()
    assert stats[0] == f"digest (education) to funnel 'minimal', {local}: cancelled"
    assert stats[1:4] == ["  scheduled 2026-03-02 08:00 UTC by maya", "  cancelled 2026-03-06 01:00 UTC",
                          "  recipients: 3 (2 cancelled, 1 sent)"]
    assert run(story, "cancel", "digest").splitlines() == [
        "broadcast 'digest' was already cancelled (2026-03-06 01:00 UTC); nothing to do"]
    refused = story.cli("broadcast", "schedule", "digest")
    assert refused.exit_code == 1
    assert "a cancelled broadcast does not go again: copy its file under a new `broadcast:` id" \
        in refused.stderr


def test_cancel_of_a_draft_or_an_unknown_id_says_so(story: Story) -> None:
    refused = story.cli("broadcast", "cancel", "flash")
    assert (refused.exit_code, refused.stderr) == (1, (
        "broadcast 'flash' is not scheduled: there is nothing to cancel (a draft never goes; delete its "
        "file if you no longer want it)\n"))
    unknown = story.cli("broadcast", "audience", "flsh")
    assert (unknown.exit_code, unknown.stderr) == (
        1, "no broadcast 'flsh' in broadcasts/; did you mean 'flash'?\n")


def test_a_past_broadcast_or_a_broken_project_cannot_be_scheduled(story: Story) -> None:
    write_broadcast(story.cli.project, "old", "2026-03-01T09:00:00Z")
    past = story.cli("broadcast", "schedule", "old")
    assert past.exit_code == 1
    assert past.stderr == ("broadcast 'old' cannot be scheduled: its time has passed (2026-03-01 09:00 UTC); "
                           "set `send.at` in project/broadcasts/old.yaml to a later time\n")
    (story.cli.project / "broadcasts" / "broken.yaml").write_text(
        "broadcast: broken\nfunnel: minimal\nemail:\n  subject: Hi\n  template: t/nope.html\n"
        '  role: education\nsend:\n  at: "2026-04-01 09:00"\n')
    broken = story.cli("broadcast", "schedule", "digest")
    assert broken.exit_code == 1
    assert "broken.yaml:5:13: template 't/nope.html' not found in project/templates/" in broken.stderr
    assert broken.stderr.endswith("the project has errors, and a broken project cannot schedule: fix them "
                                  "(funnel validate) and run this again\n")
    with story.harness.db_engine.connect() as conn:
        assert calendar.rows(conn) == {}


def test_purchases_count_only_by_recipients_inside_the_window(story: Story) -> None:
    h = story.harness
    run(story, "schedule", "digest")
    h.run_until(datetime(2026, 3, 7, 0, 0, tzinfo=UTC), every=timedelta(minutes=30))
    with h.db_engine.begin() as conn:
        sent = {r.subscriber_id: r.sent_at for r in conn.execute(
            sa.select(DELIVERY.c.subscriber_id, DELIVERY.c.sent_at).where(DELIVERY.c.step == "digest"))}
        ids = {email: queries.find_subscriber(conn, email)["id"]  # type: ignore[index]
               for email in ("ana@example.com", "bob@example.com", "dan@example.com")}
        ana, bob, dan = ids["ana@example.com"], ids["bob@example.com"], ids["dan@example.com"]
        assert set(sent) == {ana, bob}
        for who, after, amount, currency, funnel in (
            (ana, timedelta(days=1), 20.0, "EUR", None),  # counted
            (ana, timedelta(days=7, seconds=1), 30.0, "EUR", "minimal"),  # after the 7 days
            (ana, -timedelta(hours=1), 40.0, "EUR", None),  # before it reached her
            (bob, timedelta(days=2), 10.0, "USD", "minimal"),  # counted
            (bob, timedelta(days=2), 99.0, "USD", "other"),  # in another funnel
            (dan, timedelta(days=1), 50.0, "EUR", None),  # not a recipient
        ):
            at = sent[who if who != dan else ana] + after
            queries.record_event(conn, who, "purchase", at, funnel=funnel, amount=amount, currency=currency,
                                 wake=False)
    stats = run(story, "stats", "digest").splitlines()
    assert stats[2:] == [
        "  recipients: 3 (2 sent, 1 skipped)",
        "    skipped 1: they have not confirmed their address",
        "  sent 2  delivered 2 (100.0%)  opened* 0  clicked 0  unsubscribed 0  complained 0  bounced 0  "
        "failed 0  pending 0",
        "  purchases within 7d of it: 2 by 2 recipients; revenue EUR 20.00, USD 10.00",
    ]
    found = json.loads(run(story, "stats", "digest", "--json"))
    assert (found["purchases"], found["buyers"], found["revenue"]) == (2, 2, {"EUR": 20.0, "USD": 10.0})
    # The same numbers in funnel stats: a section of the text, a list in --json.
    report = story.cli("stats", "minimal")
    lines = report.stdout.splitlines()
    at = lines.index("Broadcasts (rates over sent; purchases: by recipients within its attribution window)")
    assert lines[at + 1:at + 4] == [
        "  broadcast  state  recipients  sent   delivered  opened*  clicked  unsubscribed  complained"
        "  purchases" + "  " + "revenue".rjust(20),
        "  digest     sent            3     2  2 (100.0%)        0        0             0           0"
        "          2  EUR 20.00, USD 10.00",
        "  flash      draft           0     0           0        0        0             0           0"
        "          0" + "  " + "0".rjust(20),
    ]
    as_json = json.loads(story.cli("stats", "minimal", "--json").stdout)
    assert [b["broadcast"] for b in as_json["funnels"][0]["broadcasts"]] == ["digest", "flash"]
    assert as_json["funnels"][0]["broadcasts"][0] == found


def test_preview_renders_for_a_recipient_an_address_or_the_sample(story: Story) -> None:
    first = story.cli("broadcast", "preview", "digest")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[:3] == ["From: Team <team@example.com>", "To: ana@example.com",
                                             "Subject: News for Ana"]
    assert "here is the news" in first.stdout
    assert first.stderr == "rendered for ana@example.com, the first of its audience\n"
    bob = story.cli("broadcast", "preview", "digest", "--to", "bob@example.com", "--text")
    assert bob.stdout.startswith("") and "here is the news" in bob.stdout and "Subject:" not in bob.stdout
    assert bob.stderr == "rendered for bob@example.com, a subscriber\n"
    html = story.cli("broadcast", "preview", "digest", "--to", "nobody@example.com", "--html")
    assert html.stdout.lstrip().startswith("<") and "here is the news" in html.stdout
    assert html.stderr == "rendered for the sample person\n"
