"""GET /metrics over real HTTP, on SQLite and PostgreSQL: the numbers match what happened."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

import httpx

from engine.mail.transport import Outcome, Outgoing, Result
from engine.stats.metrics import CONTENT_TYPE, Counter, Metrics, escape_label
from engine.store.db import make_engine
from engine.store.pauses import Breach, pause
from engine.web.app import Health, create_app
from engine.web.signup_form import HONEYPOT
from tests.scheduler.harness import Harness
from tests.support.outage import database_down
from tests.support.project import minimal_project
from tests.web.conftest import START, Site
from tests.web.served import serve

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    """The samples of a text exposition; fails on any line the format does not allow."""
    assert text.endswith("\n")
    series: Series = {}
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram") and name not in typed
            typed[name] = kind
            continue
        match = _SAMPLE.fullmatch(line)
        assert match, f"not a sample line: {line!r}"
        name, inner, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in typed else name
        assert family in typed, f"{name} has no TYPE line before it"
        labels: list[tuple[str, str]] = []
        rest = inner or ""
        while rest:
            label = _LABEL.match(rest)
            assert label, f"bad labels in {line!r}"
            raw = re.sub(r'\\["\\n]', lambda m: _UNESCAPE[m.group(0)], label.group(2))
            labels.append((label.group(1), raw))
            rest = rest[label.end():]
        key = (name, frozenset(labels))
        assert key not in series, f"{line!r} twice"
        series[key] = float(value)
    return series


def value(series: Series, name: str, **labels: str) -> float | None:
    """One sample's value, or None when it is not there."""
    return series.get((name, frozenset(labels.items())))


def scrape(http: httpx.Client) -> Series:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    return parse(response.text)


def test_the_numbers_follow_signups_sends_pauses_and_the_clock(site: Site) -> None:
    metrics = site.harness.daemon.metrics
    assert metrics is not None
    read_at = [0.0]  # the cache's clock, moved by hand
    metrics.monotonic = lambda: read_at[0]
    refused = {"slow@example.com"}

    def reply(message: Outgoing) -> Result:
        if message.rcpt_to in refused:
            return Result(Outcome.RETRY, 451, "4.3.0 try later")
        return Result(Outcome.SENT, 250, "ok")

    site.harness.transport.script = reply
    before = scrape(site.http)
    assert value(before, "funnel_up") == 1 and value(before, "funnel_database_up") == 1
    assert value(before, "funnel_signups_total", result="new") == 0  # shown from the start
    assert value(before, "funnel_last_tick_timestamp_seconds") is None  # no tick yet

    for address in ("a@example.com", "b@example.com", "c@example.com", "d@example.com", *refused):
        assert site.http.post("/subscribe", json={"email": address, "funnel": "minimal"}).status_code == 201
    again = site.http.post("/subscribe", json={"email": "a@example.com", "funnel": "minimal"})
    assert again.status_code == 200
    assert site.http.post("/subscribe", json={"email": "nope", "funnel": "minimal"}).status_code == 422
    trap = {"email": "bot@example.com", "funnel": "minimal", HONEYPOT: "http://spam.example"}
    assert site.http.post("/subscribe", data=trap).status_code == 303
    cached = scrape(site.http)
    assert value(cached, "funnel_enrollments_due") == 0  # the database was read less than 5 s ago
    assert value(cached, "funnel_signups_total", result="new") == 5  # counters are never cached

    read_at[0] += 5.0
    site.harness.clock.advance(timedelta(minutes=6))  # the daemon fell six minutes behind
    late = site.http.post("/subscribe", json={"email": "late@example.com", "funnel": "minimal"})
    assert late.status_code == 201  # due now, not overdue
    behind = scrape(site.http)
    assert value(behind, "funnel_enrollments_due") == 6
    assert value(behind, "funnel_enrollments_overdue") == 5
    kinds = ("new", "known", "invalid", "trapped")
    results = {kind: value(behind, "funnel_signups_total", result=kind) for kind in kinds}
    assert results == {"new": 6, "known": 1, "invalid": 1, "trapped": 1}

    site.harness.tick()  # six confirmations: five accepted, one answered 451
    with site.harness.db_engine.begin() as conn:
        pause(conn, "minimal", "e1", Breach("manual", "paused by a test"), site.harness.clock.now())
    read_at[0] += 5.0
    after = scrape(site.http)
    assert value(after, "funnel_sends_total", outcome="sent") == 5
    assert value(after, "funnel_sends_total", outcome="deferred") == 1
    assert value(after, "funnel_sends_total", outcome="bounced") == 0
    assert value(after, "funnel_deliveries_pending", status="deferred") == 1
    assert value(after, "funnel_deliveries_pending", status="queued") == 0
    assert (value(after, "funnel_enrollments_due"), value(after, "funnel_enrollments_overdue")) == (0, 0)
    assert value(after, "funnel_paused_steps") == 1
    assert value(after, "funnel_tick_duration_seconds_count") == 1
    assert value(after, "funnel_tick_duration_seconds_bucket", le="+Inf") == 1
    assert value(after, "funnel_last_tick_timestamp_seconds") is not None


def test_a_database_that_is_down_leaves_out_its_gauges_and_still_answers_200(
    db_url: str, tmp_path: Path
) -> None:
    harness = Harness(db_url, minimal_project(tmp_path / "project"), START, busy_timeout_ms=200)
    metrics = harness.daemon.metrics
    assert metrics is not None
    read_at = [0.0]
    metrics.monotonic = lambda: read_at[0]
    try:
        with serve(harness) as http:
            signup = http.post("/subscribe", json={"email": "a@example.com", "funnel": "minimal"})
            assert signup.status_code == 201
            harness.db_engine.dispose()  # the pooled connections reconnect: on SQLite, to a locked file
            with database_down(db_url):
                down = scrape(http)
            assert value(down, "funnel_up") == 1 and value(down, "funnel_database_up") == 0
            assert value(down, "funnel_enrollments_due") is None
            assert not any(name == "funnel_deliveries_pending" for name, _ in down)
            assert value(down, "funnel_signups_total", result="new") == 1  # this process's counters stay
            assert scrape(http) == down  # within 5 s the failed read is not tried again
            read_at[0] += 5.0
            back = scrape(http)
            assert value(back, "funnel_database_up") == 1 and value(back, "funnel_enrollments_due") == 1
    finally:
        harness.close()


def test_without_the_daemons_parts_the_page_still_shows_the_database(db_url: str) -> None:
    db_engine = make_engine(db_url)
    try:
        app = create_app(Health(db_engine, lambda: None, lambda: START, 60.0))

        async def get() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
                return await client.get("/metrics")

        response = asyncio.run(get())
        assert response.status_code == 200
        series = parse(response.text)
        assert value(series, "funnel_database_up") == 1 and value(series, "funnel_paused_steps") == 0
    finally:
        db_engine.dispose()


def test_label_values_are_escaped_so_the_text_stays_parseable() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    counter = Counter("odd_total", "Help with a \\ and a\nnewline", "why", ())
    counter.inc('say "hi"\\\n', 2)
    text = "\n".join(counter.lines()) + "\n"
    assert text.splitlines()[0] == "# HELP odd_total Help with a \\\\ and a\\nnewline"
    assert parse(text) == {("odd_total", frozenset({("why", 'say "hi"\\\n')})): 2.0}


def test_the_histogram_buckets_are_cumulative() -> None:
    metrics = Metrics(make_engine("sqlite://"), lambda: START)
    for seconds in (0.003, 0.2, 0.2, 7.0, 120.0):
        metrics.tick_finished(seconds)
    series = parse("\n".join(metrics.tick_seconds.lines()) + "\n")
    bounds = ("0.005", "0.25", "10", "+Inf")
    buckets = {le: value(series, "funnel_tick_duration_seconds_bucket", le=le) for le in bounds}
    assert buckets == {"0.005": 1, "0.25": 3, "10": 4, "+Inf": 5}
    assert value(series, "funnel_tick_duration_seconds_sum") == 127.403
    assert value(series, "funnel_tick_duration_seconds_count") == 5
