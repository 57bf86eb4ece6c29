"""engine/scheduler/experiments.py: an experiment's counts are read again after 10 s of the daemon's clock."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from engine.scheduler import experiments
from engine.sequences.plan import ExperimentPlan
from engine.store.db import DbConnection

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_counts_are_kept_ten_seconds_of_the_daemons_clock_per_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test of the cache: the counts' read is a stub that says how many reads came before."""
    reads: list[str] = []

    def counts_for(
        conn: DbConnection, funnel: str, wanted: list[tuple[str, str, timedelta]]
    ) -> dict[str, object]:
        reads.append(funnel)
        return {step: (("a", len(reads), 0),) for step, _, _ in wanted}

    monkeypatch.setattr(experiments.trials, "counts_for", counts_for)
    monkeypatch.setattr(experiments, "_read", {})
    clicks = ExperimentPlan(metric="clicks")
    with sa.create_engine("sqlite://").connect() as conn:
        first = experiments._counts(conn, "f", "s", clicks, T0)
        assert experiments._counts(conn, "f", "s", clicks, T0 + timedelta(seconds=9)) == first
        # An edit that counts purchases instead does not get the clicks' counts.
        bought = experiments._counts(conn, "f", "s", dataclasses.replace(clicks, metric="purchases"),
                                     T0 + timedelta(seconds=9))
        assert bought != first
        assert experiments._counts(conn, "f", "s", clicks, T0 + timedelta(seconds=10)) != first
        assert len(reads) == 3
        # A clock set back (the daemon's wall clock corrected) reads afresh, not never again.
        experiments._counts(conn, "f", "s", clicks, T0 - timedelta(hours=1))
        assert len(reads) == 4
