"""Broadcasts through the daemon's ticks on a real database (SQLite and PostgreSQL): the audience taken,
each recipient's local time, exactly once, skips with their reasons, cancelling."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.stats import broadcasts as numbers
from engine.store import broadcasts as calendar
from engine.store import queries
from engine.store.tables import BROADCAST_RECIPIENT
from tests.scheduler.harness import Harness
from tests.support.project import minimal_project

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the minimal funnel's window: weekdays 08:00-11:00
WEDNESDAY_0930 = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)


def _broadcast(
    project: Path,
    broadcast_id: str,
    at: str,
    role: str = "education",
    audience: str = "  segments: [one]\n",
    extra: str = "",
) -> None:
    folder = project / "broadcasts"
    folder.mkdir(exist_ok=True)
    (folder / f"{broadcast_id}.yaml").write_text(
        f"broadcast: {broadcast_id}\nfunnel: minimal\nemail:\n"
        "  subject: News for {{ subscriber.first_name }}\n"
        f'  template: t/news.html\n  role: {role}\naudience:\n{audience}send:\n  at: "{at}"\n{extra}'
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = minimal_project(tmp_path / "project")
    funnel = project / "sequences" / "minimal.yaml"  # room for a broadcast beside a nurture email a day
    funnel.write_text(
        funnel.read_text().replace("  spacing: 2d\n", "  spacing: 2d\n  frequency_cap: 2/day\n")
    )
    (project / "templates" / "t" / "news.html").write_text(
        (project / "templates" / "t" / "e1.html").read_text().replace("this is e1", "here is the news")
    )
    return project


@pytest.fixture
def harness(db_url: str, project: Path) -> Iterator[Harness]:
    _broadcast(project, "news", WEDNESDAY_0930.strftime("%Y-%m-%dT%H:%M:%SZ"))
    h = Harness(db_url, project, MONDAY)
    yield h
    h.close()


def _join(h: Harness, email: str, level: str, timezone: str = "UTC") -> None:
    h.add(email, first_name=email.split("@")[0].title(), timezone=timezone)
    h.tick()
    h.event(email, "confirmed")
    h.event(email, "answer", funnel="minimal", question="level", answer=level)


def _schedule(h: Harness, broadcast_id: str) -> None:
    plan = h.daemon.live.current.plans["minimal"].broadcast(broadcast_id)
    assert plan is not None
    with h.db_engine.begin() as conn:
        assert calendar.schedule(conn, plan, h.daemon.live.current.release.id, h.clock.now(), "test")


def _recipients(h: Harness, broadcast_id: str) -> dict[int, tuple[str, str | None]]:
    with h.db_engine.connect() as conn:
        rows = conn.execute(
            sa.select(BROADCAST_RECIPIENT).where(BROADCAST_RECIPIENT.c.broadcast == broadcast_id)
        )
        return {r.enrollment_id: (r.status, r.reason) for r in rows}


def test_a_scheduled_broadcast_reaches_its_audience_once_at_its_time(harness: Harness) -> None:
    h = harness
    _join(h, "ana@example.com", "new")
    _join(h, "bob@example.com", "pro")  # segment two: not in the audience
    _join(h, "cy@example.com", "new")
    h.event("cy@example.com", "unsubscribe", funnel="minimal")  # gone: never taken
    h.run_until(MONDAY + timedelta(hours=20))
    assert "news" not in h.sent_steps()  # a draft never goes
    _schedule(h, "news")
    h.run_until(WEDNESDAY_0930 + timedelta(days=2), every=timedelta(minutes=30))
    news = [d for d in h.deliveries() if d["step"] == "news"]
    assert [(d["status"], d["funnel"]) for d in news] == [("sent", "minimal")]
    assert WEDNESDAY_0930 <= news[0]["sent_at"] < WEDNESDAY_0930 + timedelta(minutes=30)
    assert h.sent_steps("ana@example.com").count("news") == 1
    assert list(_recipients(h, "news").values()) == [("sent", None)]
    with h.db_engine.connect() as conn:
        state = calendar.row(conn, "news")
        assert state is not None and (state["state"], state["recipients"]) == ("sending", 1)
        assert calendar.progress(conn, "news").by_status == {"sent": 1}
    # Ana's path went on around it: the broadcast took none of her sequence's emails.
    steps = h.sent_steps("ana@example.com")
    assert [s for s in steps if s != "news"][:4] == ["confirm", "magnet", "e1", "e2"]


def _two_zones(db_url: str, project: Path) -> Harness:
    """A broadcast at 09:30 local to nurture, scheduled; one reader in Tokyo, one in New York, in nurture."""
    _broadcast(project, "local", "2026-03-04 09:30", audience="  stages: [nurture]\n")
    h = Harness(db_url, project, MONDAY - timedelta(hours=9))
    _join(h, "tokyo@example.com", "new", timezone="Asia/Tokyo")
    _join(h, "york@example.com", "pro", timezone="America/New_York")
    h.run_until(MONDAY + timedelta(days=1))
    _schedule(h, "local")
    return h


def test_local_time_each_recipient_gets_it_at_their_own_0930(db_url: str, project: Path) -> None:
    h = _two_zones(db_url, project)
    try:
        h.run_until(datetime(2026, 3, 5, 12, 0, tzinfo=UTC), every=timedelta(minutes=15))
        for rcpt in ("tokyo@example.com", "york@example.com"):
            assert h.sent_steps(rcpt).count("local") == 1
        times = sorted(d["sent_at"] for d in h.deliveries() if d["step"] == "local")
        # 09:30 in Tokyo is 00:30 UTC; in New York (EST) 14:30 UTC: each within a tick of it.
        assert datetime(2026, 3, 4, 0, 30, tzinfo=UTC) <= times[0] < datetime(2026, 3, 4, 0, 45, tzinfo=UTC)
        assert datetime(2026, 3, 4, 14, 30, tzinfo=UTC) <= times[1] < datetime(2026, 3, 4, 14, 45, tzinfo=UTC)
    finally:
        h.close()


def test_cancelling_stops_whoever_has_not_had_it(db_url: str, project: Path) -> None:
    h = _two_zones(db_url, project)
    try:
        h.run_until(datetime(2026, 3, 4, 6, 0, tzinfo=UTC), every=timedelta(minutes=15))
        assert h.sent_steps("tokyo@example.com").count("local") == 1  # Tokyo's 09:30 came
        with h.db_engine.begin() as conn:
            stopped = calendar.cancel(conn, "local", h.clock.now(), "test")
        assert stopped == calendar.Cancelled(recipients=1, deliveries=0)
        h.run_until(datetime(2026, 3, 6, 12, 0, tzinfo=UTC), every=timedelta(hours=1))
        assert "local" not in h.sent_steps("york@example.com")
        assert Counter(status for status, _ in _recipients(h, "local").values()) == {
            "sent": 1,
            "cancelled": 1,
        }
        with h.db_engine.begin() as conn, pytest.raises(calendar.CalendarError, match="new `broadcast:` id"):
            plan = h.daemon.live.current.plans["minimal"].broadcast("local")
            assert plan is not None
            calendar.schedule(conn, plan, None, h.clock.now(), "test")
    finally:
        h.close()


def test_a_sale_broadcast_skips_whoever_it_would_break_the_ratio_for_and_says_why(
    db_url: str, project: Path
) -> None:
    _broadcast(
        project,
        "sale",
        WEDNESDAY_0930.strftime("%Y-%m-%dT%H:%M:%SZ"),
        role="sale",
        audience="  signed_up_after: 2026-01-01\n",
        extra="  when_ratio_breaks: defer\n",
    )
    h = Harness(db_url, project, MONDAY)
    try:
        _join(h, "early@example.com", "new")  # will have had e1, e2 by Wednesday
        h.run_until(MONDAY + timedelta(days=1, hours=23))
        h.add("fresh@example.com", first_name="Fresh")  # signs up Tuesday: no education yet, unconfirmed
        _schedule(h, "sale")
        h.run_until(WEDNESDAY_0930 + timedelta(days=1), every=timedelta(minutes=30))
        reasons = sorted(reason or status for status, reason in _recipients(h, "sale").values())
        assert reasons == ["sent", "they have not confirmed their address"]
        assert h.sent_steps("early@example.com").count("sale") == 1
        # Her own sale (s1) came after e4, too close behind the broadcast's: it waited (deferred)
        # behind e5 until four education emails had followed the broadcast's sale.
        h.run_until(WEDNESDAY_0930 + timedelta(days=14), every=timedelta(hours=6))
        steps = h.sent_steps("early@example.com")
        at = steps.index("sale")
        assert steps[at : at + 6] == ["sale", "e2", "e3", "e4", "e5", "s1"]
    finally:
        h.close()


def test_subscribers_show_names_the_broadcast_a_recipient_waits_for(db_url: str, project: Path) -> None:
    from engine.subscribers.profile import load_profile

    _broadcast(
        project, "early", "2026-03-04 06:00", audience="  stages: [nurture]\n", extra="  window: ignore\n"
    )
    h = Harness(db_url, project, MONDAY)
    try:
        _join(h, "york@example.com", "pro", timezone="America/New_York")
        h.tick()  # confirmed and answered: in nurture
        _schedule(h, "early")
        h.clock.advance(datetime(2026, 3, 4, 6, 0, tzinfo=UTC) - h.clock.now())  # taken, not due in New York
        h.tick()
        plans = h.daemon.live.current.plans
        profile = load_profile(h.db_engine, "york@example.com", plans, set(), h.clock.now())
        assert profile is not None
        nxt = profile.enrollments[0].next
        assert nxt.step is not None and nxt.step.id == "early"
        assert nxt.at == datetime(2026, 3, 4, 11, 0, tzinfo=UTC)
        assert "broadcast 'early' goes to them at Wed 2026-03-04 06:00 America/New_York" in nxt.reason
    finally:
        h.close()


def test_a_broadcast_whose_complaints_cross_the_line_pauses_itself_and_resume_sends_the_rest(
    db_url: str, project: Path
) -> None:
    from engine.scheduler.guard import check_guardrails
    from engine.store import pauses
    from engine.subscribers import inbound

    funnel = project / "sequences" / "minimal.yaml"
    funnel.write_text(funnel.read_text() + "guardrails:\n  min_sends: 10\n  complaint_rate: 5%\n")
    _broadcast(project, "local", "2026-03-04 09:30", audience="  stages: [nurture]\n")
    h = Harness(db_url, project, MONDAY - timedelta(hours=9))
    try:
        east = [f"east{i}@example.com" for i in range(10)]
        west = [f"west{i}@example.com" for i in range(3)]
        for email in east:
            _join(h, email, "new", timezone="Asia/Tokyo")
        for email in west:
            _join(h, email, "new", timezone="America/New_York")
        h.run_until(MONDAY + timedelta(days=1))
        _schedule(h, "local")
        h.run_until(datetime(2026, 3, 4, 6, 0, tzinfo=UTC), every=timedelta(minutes=15))
        assert all(h.sent_steps(e).count("local") == 1 for e in east)  # Tokyo's morning came
        with h.db_engine.begin() as conn:
            sid = queries.find_subscriber(conn, east[0])
            assert sid is not None
            inbound.complain(conn, sid["id"], h.clock.now(), "report-1")  # blames the latest: the broadcast
        paused = check_guardrails(h.db_engine, h.daemon.live.current.plans, h.clock.now())
        assert [(p.step, p.breach.metric) for p in paused] == [("local", "complaints")]
        h.run_until(datetime(2026, 3, 5, 12, 0, tzinfo=UTC), every=timedelta(minutes=30))
        assert not any("local" in h.sent_steps(e) for e in west)  # held, not skipped
        assert Counter(s for s, _ in _recipients(h, "local").values()) == {"sent": 10, "pending": 3}
        with h.db_engine.begin() as conn:
            assert pauses.resume(conn, "minimal", "local", "test", h.clock.now()) == 3
        h.run_until(datetime(2026, 3, 6, 16, 0, tzinfo=UTC), every=timedelta(minutes=30))
        assert all(h.sent_steps(e).count("local") == 1 for e in west)
    finally:
        h.close()


def _tried_by_half(h: Harness) -> list[str]:
    """24 people in minimal; 'news' as an experiment of two subjects that half of them try, an
    hour to decide, sent to the first of them at Wednesday 09:30. The people's addresses."""
    from engine.sequences.plan import ExperimentPlan, Variant

    # The variants as the files will give them: two subjects, half the audience tries them.
    current = h.daemon.live.current
    plan = current.plans["minimal"]
    news = plan.broadcasts[0]
    trial = ExperimentPlan(metric="clicks", min_sends=1, sample=0.5, decide_after=timedelta(hours=1))
    email = dataclasses.replace(
        news.email,
        experiment=trial,
        variants=(Variant("a", "News A", "t/news.html"), Variant("b", "News B", "t/news.html")),
    )
    plan = dataclasses.replace(plan, broadcasts=(dataclasses.replace(news, email=email),))
    h.daemon.live.current = dataclasses.replace(current, plans={**current.plans, "minimal": plan})
    people = [f"p{i}@example.com" for i in range(24)]
    for person in people:
        _join(h, person, "new")
    h.run_until(MONDAY + timedelta(hours=20))
    _schedule(h, "news")
    h.run_until(WEDNESDAY_0930 + timedelta(minutes=30), every=timedelta(minutes=30))
    return people


def test_a_broadcast_experiment_sends_its_winner_to_the_rest(db_url: str, project: Path) -> None:
    _broadcast(project, "news", WEDNESDAY_0930.strftime("%Y-%m-%dT%H:%M:%SZ"))
    h = Harness(db_url, project, MONDAY)
    try:
        people = _tried_by_half(h)
        tried = {d["subscriber_id"]: d["variant"] for d in h.deliveries() if d["step"] == "news"}
        assert set(tried.values()) == {"a", "b"} and 4 <= len(tried) <= 20  # about half, both variants
        with h.db_engine.begin() as conn:  # the B readers click; the A readers do not
            for subscriber, variant in tried.items():
                if variant == "b":
                    queries.record_event(
                        conn, subscriber, "click", h.clock.now(), funnel="minimal", step="news"
                    )
        h.run_until(WEDNESDAY_0930 + timedelta(hours=3), every=timedelta(minutes=30))
        with h.db_engine.connect() as conn:
            row = calendar.row(conn, "news")
        assert row is not None and row["winner"] == "b", row
        everyone = {d["subscriber_id"]: d["variant"] for d in h.deliveries() if d["step"] == "news"}
        assert len(everyone) == len(people)  # each once
        rest = {s: v for s, v in everyone.items() if s not in tried}
        assert rest and set(rest.values()) == {"b"}
        later = [d["sent_at"] for d in h.deliveries() if d["step"] == "news" and d["subscriber_id"] in rest]
        assert min(later) >= WEDNESDAY_0930 + timedelta(hours=1)  # the winner, an hour on, in the window
        # Each message is its variant's: its own subject.
        from email import message_from_bytes, policy

        variant_of = {d["message_id"]: d["variant"] for d in h.deliveries() if d["step"] == "news"}
        subjects = {
            variant_of[m.message_id]: message_from_bytes(m.data, policy=policy.default)["Subject"]
            for m in h.transport.sent
            if m.message_id in variant_of
        }
        assert subjects == {"a": "News A", "b": "News B"}
        # The variant each person got is in their timeline.
        from engine.cli.profile_text import profile_lines
        from engine.subscribers.profile import load_profile

        profile = load_profile(h.db_engine, people[0], h.daemon.live.current.plans, set(), h.clock.now())
        assert profile is not None
        got = everyone[profile.subscriber["id"]]
        assert any(f"news ({got})" in line for line in profile_lines(profile, h.clock.now()))
        # `funnel experiments` shows the winner the daemon kept, and each variant's numbers.
        from engine.stats.experiments import experiment_reports, report_lines

        with h.db_engine.connect() as conn:
            [report] = experiment_reports(conn, h.daemon.live.current.plans)
        assert (report.step, report.kept, report.decision.winner) == ("news", "b", "b")
        sent_b = sum(1 for v in tried.values() if v == "b")
        assert [(a.variant, a.successes) for a in report.decision.arms] == [("a", 0), ("b", sent_b)]
        assert report_lines([report])[0].startswith("minimal broadcast 'news' (clicks): ")
    finally:
        h.close()


def test_a_broadcast_whose_file_names_the_winner_sends_it_to_everyone_at_their_time(
    db_url: str, project: Path
) -> None:
    """`winner:` in the file: nobody tries the others, nobody waits `decide_after` (docs/experiments.md)."""
    from engine.sequences.plan import ExperimentPlan, Variant

    _broadcast(project, "news", WEDNESDAY_0930.strftime("%Y-%m-%dT%H:%M:%SZ"))
    h = Harness(db_url, project, MONDAY)
    try:
        current = h.daemon.live.current
        plan = current.plans["minimal"]
        news = plan.broadcasts[0]
        trial = ExperimentPlan(metric="clicks", min_sends=1, sample=0.5, decide_after=timedelta(hours=4),
                               winner="b")
        email = dataclasses.replace(
            news.email, experiment=trial,
            variants=(Variant("a", "News A", "t/news.html"), Variant("b", "News B", "t/news.html")),
        )
        plan = dataclasses.replace(plan, broadcasts=(dataclasses.replace(news, email=email),))
        h.daemon.live.current = dataclasses.replace(current, plans={**current.plans, "minimal": plan})
        for i in range(12):
            _join(h, f"p{i}@example.com", "new")
        h.run_until(MONDAY + timedelta(hours=20))
        _schedule(h, "news")
        h.run_until(WEDNESDAY_0930 + timedelta(minutes=30), every=timedelta(minutes=30))
        sent = [d for d in h.deliveries() if d["step"] == "news"]
        assert len(sent) == 12 and {d["variant"] for d in sent} == {"b"}
        assert all(d["sent_at"] < WEDNESDAY_0930 + timedelta(minutes=30) for d in sent)
        with h.db_engine.connect() as conn:
            row = calendar.row(conn, "news")
        assert row is not None and row["winner"] is None  # the file decided; the daemon chose nothing
    finally:
        h.close()


def test_a_sequence_experiment_sends_more_and_more_of_the_variant_that_gets_clicks(
    db_url: str, project: Path
) -> None:
    import dataclasses
    import random

    from engine.sequences.plan import ExperimentPlan, PathKind, Variant

    # No need to make the counts' cache shorter: it keeps them 10 s of the daemon's clock, and
    # the harness's clock moves on by days.
    h = Harness(db_url, project, MONDAY)
    try:
        current = h.daemon.live.current
        plan = current.plans["minimal"]
        segment = plan.segments[0]
        first = segment.nurture.steps[0]
        trial = ExperimentPlan(metric="clicks", min_sends=15, confidence=0.999)
        tested = dataclasses.replace(
            first,
            experiment=trial,
            variants=(Variant("a", "E1 A", first.template), Variant("b", "E1 B", first.template)),
        )
        nurture = dataclasses.replace(segment.nurture, steps=(tested, *segment.nurture.steps[1:]))
        plan = dataclasses.replace(
            plan, segments=(dataclasses.replace(segment, nurture=nurture), *plan.segments[1:])
        )
        assert plan.email(first.id) is not None and plan.email(first.id).path is PathKind.NURTURE  # type: ignore[union-attr]
        h.daemon.live.current = dataclasses.replace(current, plans={**current.plans, "minimal": plan})
        rng = random.Random(7)
        rates = {"a": 0.05, "b": 0.5}
        clicked: set[int] = set()
        for wave in range(6):
            for i in range(20):
                _join(h, f"w{wave}-{i}@example.com", "new")
            h.run_until(h.clock.now() + timedelta(days=3))
            with h.db_engine.begin() as conn:
                for d in h.deliveries():
                    if d["step"] == first.id and d["id"] not in clicked:
                        clicked.add(d["id"])
                        if rng.random() < rates[d["variant"]]:
                            queries.record_event(
                                conn,
                                d["subscriber_id"],
                                "click",
                                h.clock.now(),
                                funnel="minimal",
                                step=first.id,
                            )
        got = [d["variant"] for d in sorted(h.deliveries(), key=lambda d: d["id"]) if d["step"] == first.id]
        # The first wave is decided before any count exists: split evenly by each person's seed.
        assert len(got) == 120 and min(Counter(got[:20]).values()) >= 6, Counter(got[:20])
        assert min(Counter(got).values()) >= 15  # each variant its minimum
        assert Counter(got[-40:])["b"] >= 32, Counter(got[-40:])  # then mostly the better one
    finally:
        h.close()


def test_window_ignore_goes_at_its_time_outside_the_funnel_window(db_url: str, project: Path) -> None:
    evening = datetime(2026, 3, 4, 20, 0, tzinfo=UTC)  # the minimal funnel's window: weekdays 08:00-11:00
    _broadcast(
        project,
        "late",
        evening.strftime("%Y-%m-%dT%H:%M:%SZ"),
        audience="  stages: [nurture]\n",
        extra="  window: ignore\n",
    )
    h = Harness(db_url, project, MONDAY)
    try:
        _join(h, "ana@example.com", "new")
        h.run_until(MONDAY + timedelta(hours=20))
        _schedule(h, "late")
        h.run_until(evening + timedelta(hours=2), every=timedelta(minutes=15))
        late = [d for d in h.deliveries() if d["step"] == "late"]
        assert [d["status"] for d in late] == ["sent"]
        assert evening <= late[0]["sent_at"] < evening + timedelta(minutes=15)
    finally:
        h.close()


def test_a_broadcast_whose_file_moves_it_to_another_funnel_after_scheduling_is_held_and_says_why(
    db_url: str, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Scheduled for one funnel's people, then edited to name another: it takes nobody from either
    and says so (log, listing), until the file names its funnel again; a cancel stops it."""
    other = project / "sequences" / "other.yaml"
    other.write_text((project / "sequences" / "minimal.yaml").read_text().replace(
        "funnel: minimal\n", "funnel: other\n"))
    _broadcast(project, "news", WEDNESDAY_0930.strftime("%Y-%m-%dT%H:%M:%SZ"))
    h = Harness(db_url, project, MONDAY)
    try:
        _join(h, "ana@example.com", "new")
        h.run_until(MONDAY + timedelta(hours=20))
        _schedule(h, "news")
        path = project / "broadcasts" / "news.yaml"
        path.write_text(path.read_text().replace("funnel: minimal\n", "funnel: other\n"))
        h.add("bo@example.com", funnel="other", first_name="Bo")  # in the funnel the file names now
        with caplog.at_level(logging.INFO, logger="funnel"):
            h.run_until(WEDNESDAY_0930 + timedelta(hours=3), every=timedelta(minutes=30))
        held = [r for r in caplog.records if r.getMessage() == "broadcast_held"]
        assert len(held) == 1  # once for the release, not once a tick
        problem = held[0].fields["problem"]  # type: ignore[attr-defined]
        assert "scheduled for funnel 'minimal'" in problem and "write 'funnel: minimal' again" in problem
        assert "news" not in h.sent_steps()  # neither Ana (minimal) nor Bo (other)
        assert _recipients(h, "news") == {}
        with h.db_engine.connect() as conn:
            listed = {b["broadcast"]: b for b in numbers.listing(conn, h.daemon.live.current.plans)}
        assert (listed["news"]["state"], listed["news"]["held"]) == ("held", problem)
        moved = h.daemon.live.current.plans["other"].broadcast("news")
        assert moved is not None
        with h.db_engine.connect() as conn:
            shown = numbers.numbers(conn, moved)  # its page: the funnel its emails are in
        assert (shown["funnel"], shown["state"], listed["news"]["funnel"]) == ("minimal", "held", "minimal")
        path.write_text(path.read_text().replace("funnel: other\n", "funnel: minimal\n"))
        h.run_until(WEDNESDAY_0930 + timedelta(days=1), every=timedelta(minutes=30))
        # Back in its funnel, it goes: late, at the next morning's window (weekdays 08:00-11:00).
        assert h.sent_steps("ana@example.com").count("news") == 1
        assert "news" not in h.sent_steps("bo@example.com")
    finally:
        h.close()



def test_no_winner_is_chosen_for_an_experiment_held_because_its_file_names_another_funnel(
    db_url: str, project: Path
) -> None:
    """Its sample's counts are in the funnel it was scheduled for: counting the new funnel's (none)
    would keep the first variant for everyone. It waits, and is decided once the file is put back."""
    from engine.scheduler.broadcasts import choose_winners

    _broadcast(project, "news", WEDNESDAY_0930.strftime("%Y-%m-%dT%H:%M:%SZ"))
    h = Harness(db_url, project, MONDAY)
    try:
        _tried_by_half(h)
        current = h.daemon.live.current
        plan = current.plans["minimal"]
        moved = dataclasses.replace(plan.broadcasts[0], funnel="other")
        elsewhere = dataclasses.replace(current, plans={
            "minimal": dataclasses.replace(plan, broadcasts=()),
            "other": dataclasses.replace(plan, funnel="other", broadcasts=(moved,)),
        })
        due = WEDNESDAY_0930 + timedelta(hours=3)  # well after decide_after
        assert choose_winners(h.db_engine, elsewhere, due) == 0
        with h.db_engine.connect() as conn:
            row = calendar.row(conn, "news")
        assert row is not None and row["winner"] is None
        assert choose_winners(h.db_engine, current, due) == 1  # its file names its funnel again
    finally:
        h.close()


def test_a_failing_winner_choice_is_logged_as_such_and_the_tick_goes_on(
    harness: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.scheduler.tick as tick

    def locked(*_: object) -> int:
        raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(tick, "choose_winners", locked)
    _join(harness, "ana@example.com", "new")
    _schedule(harness, "news")
    with caplog.at_level(logging.INFO, logger="funnel"):
        harness.run_until(WEDNESDAY_0930 + timedelta(hours=1), every=timedelta(minutes=30))
    failed = {r.getMessage() for r in caplog.records if r.levelno == logging.ERROR}
    assert failed == {"experiment_decide_failed"}  # not the audience's: that was taken
    assert harness.sent_steps("ana@example.com").count("news") == 1


def test_scheduling_a_broadcast_again_under_another_funnel_is_refused_with_the_fix(harness: Harness) -> None:
    _schedule(harness, "news")
    plan = harness.daemon.live.current.plans["minimal"].broadcast("news")
    assert plan is not None
    elsewhere = dataclasses.replace(plan, funnel="other")
    with harness.db_engine.begin() as conn, pytest.raises(calendar.CalendarError) as refused:
        calendar.schedule(conn, elsewhere, None, harness.clock.now(), "test")
    assert str(refused.value).startswith("broadcast 'news' was scheduled for funnel 'minimal' but its file")
    assert "write 'funnel: minimal' again, or cancel it (funnel broadcast cancel news)" in str(refused.value)


def test_the_calendar_itself_refuses_a_broadcast_whose_time_has_passed(harness: Harness) -> None:
    """The one home of the rule: the CLI, the API and the dashboard all schedule through it."""
    plan = harness.daemon.live.current.plans["minimal"].broadcast("news")
    assert plan is not None
    past = dataclasses.replace(plan, at=MONDAY - timedelta(days=1))
    with harness.db_engine.begin() as conn, pytest.raises(calendar.TooLate) as refused:
        calendar.schedule(conn, past, None, harness.clock.now(), "test")
    assert str(refused.value) == ("broadcast 'news' cannot be scheduled: its time has passed "
                                  f"(2026-03-01 08:00 UTC); set `send.at` in {plan.source} to a later time")
    with harness.db_engine.connect() as conn:
        assert calendar.row(conn, "news") is None
