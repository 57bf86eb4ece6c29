"""Golden tests for warnings: each file in tests/data/sequences/warn/ holds one setting that can
never take effect; its .expected file pins what `funnel validate` prints, and validate exits 0.
Regenerate with `UPDATE_GOLDENS=1 pytest tests/sequences/test_warnings.py` and review the diff."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.flow.simulate import Script, simulate
from engine.project.folder import Project
from engine.sequences.plan import PathKind
from engine.sequences.values import parse_window
from engine.sequences.warnings import _longest_closed

DATA = Path(__file__).resolve().parent.parent / "data"
ROOT = DATA.parent.parent
WARN = sorted((DATA / "sequences" / "warn").glob("*.yaml"))


def validate(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.chdir(DATA)
    result = CliRunner().invoke(main, ["validate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("path", WARN, ids=[p.stem for p in WARN])
def test_warning_file_prints_the_pinned_warning_and_exits_0(path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = validate(monkeypatch, str(path.relative_to(DATA)))
    warnings = "".join(f"{line}\n" for line in out.splitlines() if ": warning: " in line)
    expected = path.with_suffix(".expected")
    if os.environ.get("UPDATE_GOLDENS"):
        expected.write_text(warnings, encoding="utf-8")
    assert (code, err) == (0, "")
    assert warnings == expected.read_text(encoding="utf-8") and warnings.count("\n") == 1
    where, _, rest = warnings.partition(": warning: ")
    assert where.startswith(str(path.relative_to(DATA)) + ":") and "; " in rest
    assert out.splitlines()[-1].endswith(")")  # the file's summary still follows: it is valid


def test_warnings_print_after_the_errors_and_errors_still_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = validate(monkeypatch, "sequences/warn", "sequences/bad/ratio-broken.yaml")
    lines = out.splitlines()
    kinds = ["warning" if ": warning: " in line else "error" for line in lines if ": ok, funnel" not in line]
    first = kinds.index("warning")
    assert code == 1 and first > 0 and kinds[first:] == ["warning"] * len(WARN)


def test_the_shipped_examples_and_the_good_files_have_no_warnings() -> None:
    assert Project(ROOT).check().warnings == []
    assert Project(DATA).check([DATA / "sequences" / "good"]).warnings == []


def test_the_longest_closed_stretch_of_a_send_window() -> None:
    assert _longest_closed(parse_window("weekdays 08:00-11:00")) == timedelta(hours=69)  # Fri 11 -> Mon 8
    assert _longest_closed(parse_window("daily 18:00-21:00")) == timedelta(hours=21)
    assert _longest_closed(parse_window("mon 09:00-10:00")) == timedelta(days=7, hours=-1)
    assert _longest_closed(None) == timedelta(0)


def test_the_interpreter_agrees_an_idle_subscriber_never_gets_that_win_back() -> None:
    plan = Project(DATA).plan(str(DATA / "sequences" / "warn" / "winback-never-fires.yaml"))
    timeline = simulate(plan, Script(datetime(2026, 3, 6, 10, 59, tzinfo=UTC), reader=False, days=200))
    sent = [e.action.email.path for e in timeline.sends()]
    assert PathKind.SALES in sent and PathKind.WINBACK not in sent
