"""bench/scale.py on a small list: the database it makes holds what the engine would have
written (every stage, numbers `funnel stats` can stand behind), and `time` runs end to end.

No figure here is a speed: the benchmark itself is `python -m bench.scale` (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from bench.scale import generate, table_counts
from bench.scale_people import FUNNEL, first_marathon
from bench.workspace import ROOT
from engine.scheduler.guard import check_guardrails
from engine.store.db import make_engine
from engine.store.funnelstats import funnel_numbers
from engine.store.tables import ENROLLMENT, MILESTONE

COUNT = 600


def test_generated_list_walks_every_stage_with_numbers_that_add_up(db_url: str) -> None:
    generate(db_url, COUNT)
    counts = table_counts(db_url)
    assert counts["subscriber"] == counts["enrollment"] == COUNT
    assert counts["delivery"] > 3 * COUNT and counts["event"] > COUNT and counts["milestone"] > 2 * COUNT
    db_engine = make_engine(db_url)
    try:
        with db_engine.connect() as conn:
            stages: Counter[str] = Counter(dict(conn.execute(
                sa.select(ENROLLMENT.c.stage, sa.func.count()).group_by(ENROLLMENT.c.stage)).all()))
            reached = {row[0] for row in conn.execute(sa.select(MILESTONE.c.stage).distinct())}
            numbers = funnel_numbers(conn, FUNNEL)[FUNNEL]
            due = conn.execute(sa.text("SELECT count(*) FROM enrollment WHERE next_run_at <= :now"),
                               {"now": datetime.now(UTC).replace(tzinfo=None)}).scalar_one()
        assert {"confirming", "answering", "nurture", "sales", "sales_done", "customer", "winback", "sunset",
                "ended"} <= set(stages)
        assert {"confirming", "magnet", "survey", "answering", "nurture", "sales", "customer", "winback",
                "sunset", "ended"} <= reached
        totals = numbers.totals
        assert totals.signed_up == COUNT
        assert 0.6 * COUNT < totals.confirmed < 0.85 * COUNT
        assert totals.signed_up >= totals.confirmed >= totals.nurture >= totals.sales > 0
        assert totals.purchased >= totals.customers > 0 and numbers.revenue["USD"] > 0
        assert due == 0, "nothing is due right after generating: a daemon started on it is idle"
        # The made-up rates stay under the funnel's guardrails: a check pauses nothing.
        assert check_guardrails(db_engine, {FUNNEL: first_marathon(ROOT)}, datetime.now(UTC)) == []
    finally:
        db_engine.dispose()


def test_time_reads_every_figure_and_ends_with_json(tmp_path: Path) -> None:
    path = tmp_path / "scale.db"
    bench = [sys.executable, "-m", "bench.scale"]
    made = subprocess.run([*bench, "generate", "--subscribers", "200", "--out", str(path)],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout.splitlines()[-1])["tables"]["subscriber"] == 200
    timed = subprocess.run([*bench, "time", "--database", "sqlite", "--path", str(path), "--runs", "1"],
                           cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)
    assert timed.returncode == 0, timed.stderr
    figures = json.loads(timed.stdout.splitlines()[-1])
    for key in ("stats_funnel_json_s", "stats_all_s", "stats_since_s", "api_stats_s",
                "dashboard_overview_s", "dashboard_funnel_s", "dashboard_map_s", "dashboard_guardrails_s",
                "dashboard_subscriber_s", "dashboard_search_s", "subscriber_show_s",
                "subscriber_show_in_process_s", "export_s", "guardrail_check_s"):
        assert figures[key] > 0, key
    assert figures["export_peak_rss_mb"] > 0 and figures["daemon_idle_rss_mb"] > 0
    assert figures["daemon_errors"] == 0
    assert figures["subscribers"] == 200


def test_generate_refuses_to_write_over_a_file(tmp_path: Path) -> None:
    path = tmp_path / "taken.db"
    path.write_bytes(b"mine")
    done = subprocess.run([sys.executable, "-m", "bench.scale", "generate", "--subscribers", "10",
                           "--out", str(path)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "exists: give a new --out path" in done.stderr
    assert path.read_bytes() == b"mine"
