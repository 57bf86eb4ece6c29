"""`funnel simulate` says what a survey answer after the deadline did, on the shipped marathon funnel."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
START = "2026-03-02T09:00:00+00:00"  # a Monday: survey at 10:02, deadline Thursday 10:02


def _simulate(offset: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["simulate", "first-marathon", "--answer",
                                       f"experience=racer@{offset}", "--start", START, "--days", "10"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_late_answer_before_the_first_nurture_email_moves_the_subscriber(
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = _simulate("3d12h", monkeypatch)
    assert ("Thu 2026-03-05 21:00  -> segment 'advanced': late survey answer, before any nurture "
            "email of segment 'beginner'") in out
    assert "a-pacing-problem" in out and "b-within-reach" not in out
    assert "Mon 2026-03-09 07:00  advanced  nurture  a-pacing-problem" in out


def test_a_late_answer_after_the_first_nurture_email_is_shown_and_ignored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = _simulate("8d", monkeypatch)
    assert ("Tue 2026-03-10 09:00  -> late answer experience=racer (after the segment was chosen): "
            "kept segment 'beginner' (not 'advanced') because its nurture emails had begun "
            "('b-within-reach'); a late answer changes the segment only before the first nurture "
            "email") in out
    assert "a-pacing-problem" not in out
