"""bench/broadcast.py on a small generated list, SQLite and PostgreSQL: every part runs end to end on
a copy, the figures add up, and the list it was given is left as it was.

No figure here is a speed: the benchmark itself is `python -m bench.broadcast` (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.broadcast import COPY_PREFIX
from bench.postgres import ADMIN_URL, create_database, drop_database
from bench.scale import generate
from bench.workspace import ROOT
from engine.store.db import make_engine

COUNT = 600


@pytest.fixture(params=["sqlite", "postgresql"])
def generated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """A generated list of COUNT subscribers: the arguments that hand it to bench.broadcast."""
    if request.param == "sqlite":
        path = tmp_path / "list.db"
        generate(f"sqlite:///{path}", COUNT)
        yield ["--sqlite", str(path)]
        return
    url = create_database("funnel_bench_broadcast_test_")
    try:
        generate(url, COUNT)
        yield ["--database-url", url]
    finally:
        drop_database(url)


def _fingerprint(args: list[str]) -> str:
    """What the given list holds: the file's bytes, or its broadcast rows, deliveries and wake times."""
    if args[0] == "--sqlite":
        return hashlib.sha256(Path(args[1]).read_bytes()).hexdigest()
    db_engine = make_engine(args[1])
    try:
        with db_engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT (SELECT count(*) FROM broadcast), (SELECT count(*) FROM broadcast_recipient), "
                "(SELECT count(*) FROM delivery), (SELECT string_agg(next_run_at::text, ',' ORDER BY id) "
                "FROM enrollment)")).one()
        return repr(tuple(rows))
    finally:
        db_engine.dispose()


def _copies() -> set[str]:
    """The benchmark's PostgreSQL copies there are."""
    admin = make_engine(ADMIN_URL)
    try:
        with admin.connect() as conn:
            return set(conn.execute(sa.text(
                f"SELECT datname FROM pg_database WHERE datname LIKE '{COPY_PREFIX}%'")).scalars())
    finally:
        admin.dispose()


def test_every_part_runs_on_a_copy_and_its_figures_add_up(generated: list[str]) -> None:
    before = _fingerprint(generated)
    copies = _copies() if generated[0] != "--sqlite" else set()
    done = subprocess.run(
        [sys.executable, "-m", "bench.broadcast", *generated, "--runs", "1", "--send", "60",
         "--sequence-emails", "40", "--connections", "4"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.splitlines()[-1])
    assert figures["enrollments"] == COUNT
    counts = figures["count"]
    assert counts["everyone"]["matching"] == COUNT
    shipped = counts["winter-sale (segments, stages)"]
    assert 0 < shipped["taken"] <= shipped["matching"] < COUNT
    for each in counts.values():
        assert each["wall_s"] > 0 and each["taken"] <= each["matching"] <= COUNT
    # Taking the shipped broadcast took exactly whom its count said it would, and cancelling stopped them all.
    take = figures["take"]
    assert take["recipients"] == shipped["taken"] == take["cancelled"]
    assert take["batches"] == 1 and take["batch_max_s"] >= take["batch_p50_s"] > 0
    send = figures["send"]
    assert 50 <= send["recipients"] <= 70  # the audience was cut at the 60th latest signup in nurture
    assert send["sent"] == send["by_status"]["sent"] > 0  # smtp-sink counted each one (checked in the bench)
    assert sum(send["by_status"].values()) == send["recipients"]
    assert set(send["by_status"]) <= {"sent", "pending", "skipped"}
    assert len(send["sequence_emails_per_s"]) == 2 and send["emails_per_s"] > 0
    same = send["same_list"]  # the recipients' next sequence email, a week later: one each
    assert same["people"] == send["recipients"] and 0 < same["sent"] <= same["people"]
    assert "1. audience.count()" in done.stdout and "3. sending" in done.stdout
    # The list handed in is as it was, and the copies are gone.
    assert _fingerprint(generated) == before
    if generated[0] == "--sqlite":
        assert [p.name for p in Path(generated[1]).parent.iterdir()] == ["list.db"]
    else:  # only here: the other parametrization may be making a copy on another worker meanwhile
        assert _copies() == copies
