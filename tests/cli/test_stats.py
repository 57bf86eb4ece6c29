"""`funnel stats`: tables, --json (the very body of GET /api/stats), --csv, --since, unknown funnels."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

import engine.cli.stats as stats_cli
from engine.cli.stats_text import CSV_COLUMNS
from engine.flow.state import Stage, State
from engine.store import signups, subscribers
from engine.store.pauses import Breach, pause
from engine.store.tables import DELIVERY
from tests.cli.conftest import MONDAY, Cli
from tests.scheduler.harness import Harness
from tests.web.served import serve

API_KEY = "stats-test-key"


@dataclass
class Known:
    """A small history on the CLI's database, and the daemon's web app on it."""

    cli: Cli
    harness: Harness
    http: httpx.Client


@pytest.fixture
def known(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Known]:
    """Three signups on Monday (two confirm; Ann of form-a buys for 20 EUR), one on Wednesday; e2 paused."""
    harness = Harness(cli.db_url, cli.project, MONDAY, api_key=API_KEY)
    monkeypatch.setattr(stats_cli, "clock", harness.clock)
    try:
        harness.add("ann@example.com", source="form-a")
        harness.add("bob@example.com", source="form-a")
        harness.add("cy@example.com")
        harness.tick()
        harness.event("ann@example.com", "confirmed", funnel="minimal")
        harness.event("bob@example.com", "confirmed", funnel="minimal")
        harness.run_until(MONDAY + timedelta(days=2))
        harness.add("dan@example.com", source="form-b", utm={"utm_source": "news"})
        harness.event("ann@example.com", "purchase", amount=20.0, currency="EUR")
        with harness.db_engine.begin() as conn:
            pause(conn, "minimal", "e2", Breach("manual", "held by hand"), harness.clock.now())
        harness.run_until(MONDAY + timedelta(days=6))
        with serve(harness) as http:
            yield Known(cli, harness, http)
    finally:
        harness.close()


def _line(text: str, start: str) -> list[str]:
    """The cells of the first line that starts with `start` (after the indent), split on 2+ spaces."""
    for line in text.splitlines():
        if line.strip().startswith(start):
            return [cell for cell in line.strip().split("  ") if cell]
    raise AssertionError(f"no line starting with {start!r} in:\n{text}")


def test_the_tables_show_every_part_of_the_report(known: Known) -> None:
    result = known.cli("stats")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Minimal funnel (minimal): everything in the database\n")
    assert [c.strip() for c in _line(out, "Signed up")] == ["Signed up", "4"]
    assert [c.strip() for c in _line(out, "Confirmed")] == ["Confirmed", "2", "50.0%"]
    # Purchases count from nurture (a purchase can come before sales): 1 of 1.
    assert [c.strip() for c in _line(out, "Purchased")] == ["Purchased", "1", "100.0%"]
    assert [c.strip() for c in _line(out, "level")] == ["level", "New", "0"]
    segments = next(line for line in out.splitlines() if "Segment one" in line)
    assert segments.split() == ["stage", "Segment", "one", "Segment", "two", "no", "segment", "yet"]
    assert [c.strip() for c in _line(out, "form-a")] == ["form-a", "-", "2", "2", "1", "1", "EUR 20.00"]
    assert [c.strip() for c in _line(out, "form-b")] == ["form-b", "news", "1", "0", "0", "0", "0"]
    assert "Revenue: EUR 20.00 from 1 purchase; per subscriber who signed up: EUR 5.00" in out
    assert [c.strip() for c in _line(out, "confirm ")] == ["confirm", "confirm", "-", "4", "4 (100.0%)",
                                                          "0", "0", "0", "0", "0", "0", "0"]
    assert _line(out, "e2")[-1] == "PAUSED"
    assert _line(out, "e1")[-1] != "PAUSED"
    assert "* opened is a weak signal" in out
    assert f"PAUSED e2 since {(MONDAY + timedelta(days=2)).isoformat()} (manual): held by hand" in out
    assert "resume with: funnel resume minimal STEP" in out


def test_json_is_the_body_of_api_stats(known: Known) -> None:
    for args, query in (((), {}), (("minimal", "--since", "2026-03-04"), {"funnel": "minimal",
                                                                          "since": "2026-03-04"})):
        printed = known.cli("stats", *args, "--json")
        assert printed.exit_code == 0, printed.output
        served = known.http.get("/api/stats", params=query, headers={"Authorization": f"Bearer {API_KEY}"})
        assert served.status_code == 200
        assert json.loads(printed.stdout) == served.json()
    report = json.loads(printed.stdout)
    assert report["since"] == "2026-03-04T00:00:00+00:00"
    assert [s["count"] for s in report["funnels"][0]["stages"]][:2] == [1, 0]  # dan, on Wednesday


def test_csv_is_one_row_per_step_with_a_header(known: Known) -> None:
    result = known.cli("stats", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    report = json.loads(known.cli("stats", "--json").stdout)
    steps = report["funnels"][0]["steps"]
    assert [r[:2] for r in rows[1:]] == [["minimal", s["step"]] for s in steps]
    by_step = {r[1]: dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]}
    assert by_step["confirm"]["sent"] == "4" and by_step["confirm"]["delivered_rate"] == "1.0"
    assert (by_step["e2"]["paused"], by_step["e2"]["paused_detail"]) == ("yes", "held by hand")
    e1 = by_step["e1"]
    assert (e1["paused"], e1["paused_detail"], e1["segment"]) == ("no", "", "one")


def test_since_takes_a_date_or_a_time_and_explains_a_bad_one(known: Known) -> None:
    bad = known.cli("stats", "--since", "last week")
    assert bad.exit_code == 2
    assert "'last week' is not a date; write a date like 2026-03-01 (midnight UTC)" in bad.stderr
    timed = json.loads(known.cli("stats", "--since", "2026-03-02T10:00+01:00", "--json").stdout)
    assert timed["since"] == "2026-03-02T09:00:00+00:00"
    assert timed["funnels"][0]["stages"][0]["count"] == 1  # the three of Monday 08:00 signed up before


def test_an_unknown_funnel_exits_1_naming_the_known_ones(sqlite_cli: Cli) -> None:
    result = sqlite_cli("stats", "minimall")
    assert (result.exit_code, result.stderr) == (1, "no funnel named 'minimall'; did you mean 'minimal'?\n")
    result = sqlite_cli("stats", "zzz")
    assert (result.exit_code, result.stderr) == (1, "no funnel named 'zzz'; known funnels: minimal\n")


def test_json_and_csv_together_is_a_usage_error(sqlite_cli: Cli) -> None:
    result = sqlite_cli("stats", "--json", "--csv")
    assert result.exit_code == 2
    assert "choose one of --json and --csv" in result.stderr


def test_a_new_project_shows_its_funnel_with_zeros(sqlite_cli: Cli) -> None:
    result = sqlite_cli("stats")
    assert result.exit_code == 0, result.output
    assert [c.strip() for c in _line(result.stdout, "Signed up")] == ["Signed up", "0"]
    assert [c.strip() for c in _line(result.stdout, "Confirmed")] == ["Confirmed", "0"]
    assert "Revenue: 0 from 0 purchases" in result.stdout


def test_a_funnel_whose_file_is_gone_shows_from_the_database(cli: Cli) -> None:
    harness = Harness(cli.db_url, cli.project, MONDAY)
    try:
        with harness.db_engine.begin() as conn:
            subscriber = subscribers.upsert_subscriber(conn, {"email": "old@example.com"}, MONDAY)[0]
            enrollment = signups.enroll(conn, subscriber, "retired", State(Stage.NURTURE, MONDAY), MONDAY)[0]
            conn.execute(sa.insert(DELIVERY).values(
                enrollment_id=enrollment, subscriber_id=subscriber, funnel="retired", step="old-step",
                message_id="m1@example.com", status="sent", created_at=MONDAY, updated_at=MONDAY))
    finally:
        harness.close()
    result = cli("stats", "retired", "--json")
    assert result.exit_code == 0, result.output
    [funnel] = json.loads(result.stdout)["funnels"]
    assert (funnel["name"], funnel["stages"][0]["count"], funnel["segments"][0]["name"]) == (
        "retired", 1, "no segment yet")
    assert [(s["step"], s["path"], s["sent"]) for s in funnel["steps"]] == [("old-step", None, 1)]
    text = cli("stats", "retired").stdout
    assert _line(text, "old-step")[:2] == ["old-step", "(no longer in the file)"]


def test_a_funnel_whose_file_has_errors_is_named_on_stderr(sqlite_cli: Cli) -> None:
    text = (sqlite_cli.project / "sequences" / "minimal.yaml").read_text(encoding="utf-8")
    broken = text.replace("funnel: minimal", "funnel: broken", 1).replace("spacing: 2d", "spacing: soon", 1)
    (sqlite_cli.project / "sequences" / "broken.yaml").write_text(broken, encoding="utf-8")
    result = sqlite_cli("stats", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ("project/sequences/broken.yaml has errors (run funnel validate); its funnel "
                             "shows only what the database holds\n")
    assert [f["funnel"] for f in json.loads(result.stdout)["funnels"]] == ["minimal"]
