"""Golden tests: each file in tests/data/sequences/bad/ holds one mistake; its .expected
file pins the exact lines `funnel validate` prints. Regenerate after a deliberate wording
change with `UPDATE_GOLDENS=1 pytest tests/sequences/test_golden.py` and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main

DATA = Path(__file__).resolve().parent.parent / "data"
BAD = sorted((DATA / "sequences" / "bad").glob("*.yaml"))


def validate(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.chdir(DATA)
    result = CliRunner().invoke(main, ["validate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_there_are_at_least_twenty_distinct_mistakes() -> None:
    messages = set()
    for path in BAD:
        for line in path.with_suffix(".expected").read_text(encoding="utf-8").splitlines():
            messages.add(line.split(": ", 1)[1].split(" '")[0])
    assert len(BAD) >= 20 and len(messages) >= 20


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file_reports_the_pinned_errors(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = validate(monkeypatch, str(path.relative_to(DATA)))
    expected = path.with_suffix(".expected")
    if os.environ.get("UPDATE_GOLDENS"):
        expected.write_text(out, encoding="utf-8")
    assert code == 1
    assert out == expected.read_text(encoding="utf-8")
    count = len(out.splitlines())
    assert err.strip() == f"{count} error{'s' if count != 1 else ''} in 1 file"


def test_every_error_names_file_line_and_column_and_says_what_to_write(
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = validate(monkeypatch, "sequences/bad")
    assert code == 1
    for line in out.splitlines():
        where, _, rest = line.partition(": ")
        path, row, column = where.rsplit(":", 2)
        assert (DATA / path).is_file() and int(row) >= 1 and int(column) >= 1, line
        assert "; " in rest, f"no fix given: {line}"


def test_all_errors_of_all_files_are_reported_in_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = validate(monkeypatch, "sequences/bad")
    pinned = "".join(p.with_suffix(".expected").read_text(encoding="utf-8") for p in BAD)
    assert code == 1
    assert sorted(out.splitlines()) == sorted(set(pinned.splitlines()))
    assert err.strip().endswith(f"in {len(BAD)} files")


def test_good_files_pass_with_a_summary_per_funnel(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = validate(monkeypatch, "sequences/good")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "sequences/good/minimal.yaml: ok, funnel 'minimal': 1 magnet, 2 segments; "
        "one: nurture 6 (5 education : 1 sale), sales 2 (0 education : 2 sale), "
        "customer 2 (2 education : 0 sale); "
        "two: nurture 5 (4 education : 1 sale), sales 1 (0 education : 1 sale), "
        "customer 1 (1 education : 0 sale)"]


def test_a_template_shared_by_two_funnels_is_checked_against_each_funnels_vars(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from engine.project.folder import Project

    shutil.copytree(DATA / "templates", tmp_path / "templates")
    (tmp_path / "templates" / "t" / "e1.html").write_text(
        '{% extends "layout.html" %}{% block body %}<p>{{ vars.brand }}</p>{% endblock %}')
    (tmp_path / "sequences").mkdir()
    minimal = (DATA / "sequences" / "good" / "minimal.yaml").read_text()
    with_brand = minimal.replace("funnel: minimal", "funnel: branded\nvars:\n  brand: Acme")
    (tmp_path / "sequences" / "a-branded.yaml").write_text(with_brand)
    (tmp_path / "sequences" / "b-plain.yaml").write_text(minimal)
    monkeypatch.chdir(tmp_path)
    result = Project(tmp_path).check()
    assert [f.plan.funnel for f in result.funnels] == ["branded"]
    assert [str(e) for e in result.errors] == [
        "templates/t/e1.html:1:55: template uses undefined variable 'vars.brand'; "
        "add 'brand:' under 'vars:' in the sequence file"]
