"""Golden tests for broadcast files: each file in tests/data/broadcasts/bad/ holds one mistake,
checked with the funnel it goes to (tests/data/sequences/good/minimal.yaml); its .expected file
pins the lines `funnel validate` prints about it. Regenerate after a deliberate wording change
with `UPDATE_GOLDENS=1 pytest tests/sequences/test_broadcast_golden.py` and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main

DATA = Path(__file__).resolve().parent.parent / "data"
FUNNEL = "sequences/good/minimal.yaml"
BAD = sorted((DATA / "broadcasts" / "bad").glob("*.yaml"))
WARN = sorted((DATA / "broadcasts" / "warn").glob("*.yaml"))
GOOD = DATA / "broadcasts" / "good" / "sale.yaml"


def validate(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.chdir(DATA)
    result = CliRunner().invoke(main, ["validate", *args])
    return result.exit_code, result.stdout, result.stderr


def _about_broadcast(out: str) -> str:
    """The lines of `out` other than the funnel's own summary."""
    return "".join(f"{line}\n" for line in out.splitlines() if not line.startswith(f"{FUNNEL}: ok"))


def test_there_is_a_file_for_every_kind_of_mistake() -> None:
    assert {p.stem for p in BAD} >= {
        "unknown-funnel", "unknown-segment", "unknown-stage", "left-out-stage", "unknown-question",
        "unknown-answer", "transactional", "unknown-role", "bad-at", "at-without-time",
        "ratio-on-education", "step-id", "template-missing", "template-syntax", "footer-missing",
        "undefined-variable", "unknown-key", "missing-key"}


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_broadcast_reports_the_pinned_errors(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = validate(monkeypatch, FUNNEL, str(path.relative_to(DATA)))
    expected = path.with_suffix(".expected")
    if os.environ.get("UPDATE_GOLDENS"):
        expected.write_text(_about_broadcast(out), encoding="utf-8")
    assert code == 1
    assert _about_broadcast(out) == expected.read_text(encoding="utf-8")
    count = len(_about_broadcast(out).splitlines())
    assert err.strip() == f"{count} error{'s' if count != 1 else ''} in 1 file"
    assert f"{FUNNEL}: ok, funnel 'minimal'" in out  # a broken broadcast does not break its funnel


def test_every_error_names_file_line_and_column_and_says_what_to_write(
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = validate(monkeypatch, FUNNEL, "broadcasts/bad")
    assert code == 1
    lines = _about_broadcast(out).splitlines()
    assert len(lines) >= len(BAD)
    for line in lines:
        where, _, rest = line.partition(": ")
        path, row, column = where.rsplit(":", 2)
        assert (DATA / path).is_file() and int(row) >= 1 and int(column) >= 1, line
        assert "; " in rest, f"no fix given: {line}"


@pytest.mark.parametrize("path", WARN, ids=[p.stem for p in WARN])
def test_warning_broadcast_prints_the_pinned_warning_and_exits_0(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = validate(monkeypatch, FUNNEL, str(path.relative_to(DATA)))
    warnings = "".join(f"{line}\n" for line in out.splitlines() if ": warning: " in line)
    expected = path.with_suffix(".expected")
    if os.environ.get("UPDATE_GOLDENS"):
        expected.write_text(warnings, encoding="utf-8")
    assert (code, err) == (0, "")
    assert warnings and warnings == expected.read_text(encoding="utf-8")


def test_a_good_broadcast_is_summarized_after_its_funnel(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = validate(monkeypatch, FUNNEL, str(GOOD.relative_to(DATA)))
    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [
        "broadcasts/good/sale.yaml: ok, broadcast 'spring-sale' (sale) to funnel 'minimal': "
        "segments one, two; stages nurture, sales_done, customer; tags vip; without tags staff; "
        "1 answer condition; bought anything; not bought pro-kit; engaged within 30d; "
        "signed up from 2026-01-01 00:00 UTC; signed up before 2026-11-30 23:00 UTC; "
        "at 2026-04-01 09:00 UTC, whatever the send window; where 4:1 would break: defer"]
