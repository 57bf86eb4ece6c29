"""An experiment in a real project: the release counts a variant's edit as a changed email, and
`simulate` and `preview` show any variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine.cli import main
from engine.project.folder import Project
from engine.project.release import changes
from engine.scheduler.funnels import load_funnels
from tests.support.project import shipped_project

START = "2026-03-02T09:00:00+00:00"
SIMULATE = ("simulate", "first-marathon", "--answer", "experience=new", "--start", START,
            "--days", "40")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return shipped_project(tmp_path / "project")


def funnel(project: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.chdir(project)
    return CliRunner().invoke(main, list(args))


def test_editing_a_variant_changes_its_email_and_no_other(project: Path) -> None:
    def changed_after(name: str, old: str, new: str) -> list[str]:
        before = load_funnels(Project(project)).release
        file = project / name
        text = file.read_text(encoding="utf-8")
        assert old in text
        file.write_text(text.replace(old, new), encoding="utf-8")
        return changes(before, load_funnels(Project(project)).release)["emails_changed"]

    story = ["first-marathon/b-story"]
    assert changed_after("sequences/first-marathon.yaml", "a ridiculous idea?", "a silly idea?") == story
    assert changed_after("templates/marathon/b-story-short.html", "Eighteen months", "Two years") == story
    assert changed_after("sequences/first-marathon.yaml", "- {id: short, template: "
                         "marathon/b-story-short.html}", "") == story  # a variant removed
    assert changed_after("sequences/first-marathon.yaml", "min_sends: 100 ", "min_sends: 50 ") == []


def test_simulate_shows_the_variant_on_the_lines_of_an_email_that_has_variants(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = funnel(project, monkeypatch, *SIMULATE, "--json")
    assert chosen.exit_code == 0, chosen.output
    rows = json.loads(chosen.stdout)
    (story,) = [r for r in rows if r["step"] == "b-story"]
    assert story["variant"] in ("story", "question", "short")  # the rule's pick for this person
    assert {r["variant"] for r in rows if r["step"] != "b-story"} == {None}
    shown = funnel(project, monkeypatch, *SIMULATE, "--variant", "question")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[1].split() == ["when", "segment", "path", "step", "variant", "role", "subject"]
    (line,) = [x for x in lines if " b-story " in x]
    assert line.split()[5:] == ["b-story", "question", "sale", '"Is', "a", "marathon", "a",
                                "ridiculous", "idea?\""]
    (shoes,) = [x for x in lines if " b-shoes " in x]
    assert shoes.split()[5:8] == ["b-shoes", "-", "education"]


def test_simulate_refuses_a_variant_no_email_has(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = funnel(project, monkeypatch, *SIMULATE, "--variant", "shrot")
    assert result.exit_code == 2
    assert ("no email of funnel 'first-marathon' has a variant 'shrot'; did you mean 'short'?"
            in result.output)


def test_preview_renders_the_variant_asked_for(project: Path, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    short = funnel(project, monkeypatch, "preview", "first-marathon", "b-story", "--variant", "short")
    assert short.exit_code == 0, short.output
    assert "Variant: short\nSubject: From \"I can't run 5K\" to a marathon medal\n" in short.stdout
    assert "Eighteen months later" in short.stdout
    question = funnel(project, monkeypatch, "preview", "first-marathon", "b-story", "--variant",
                      "question")
    assert 'Subject: "Is a marathon a ridiculous idea?"' in question.stdout
    assert "Eighteen months later" not in question.stdout
    out = funnel(project, monkeypatch, "preview", "first-marathon", "b-story", "--variant", "short",
                 "--out", str(tmp_path / "out"))
    assert out.exit_code == 0, out.output
    assert "Eighteen months later" in (tmp_path / "out" / "b-story-short.txt").read_text(encoding="utf-8")
    wrong = funnel(project, monkeypatch, "preview", "first-marathon", "b-story", "--variant", "qestion")
    assert wrong.exit_code == 2
    assert "email 'b-story' has no variant 'qestion'; did you mean 'question'?" in wrong.output


def test_simulate_shows_a_broadcast_s_variant(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "broadcasts").mkdir()
    (project / "broadcasts" / "news.yaml").write_text(
        "broadcast: news\nfunnel: first-marathon\nemail:\n  subject: News\n"
        "  template: marathon/b-shoes.html\n  role: education\n  variants:\n    - {id: plain}\n"
        "    - {id: urgent, subject: \"News, now\"}\n  experiment:\n    metric: clicks\n"
        "    sample: 20%\nsend:\n  at: 2026-03-20T08:00:00Z\n", encoding="utf-8")
    args = ("simulate", "first-marathon", "--answer", "experience=racer", "--start", START,
            "--days", "30")
    default = funnel(project, monkeypatch, *args)
    assert default.exit_code == 0, default.output
    (line,) = [x for x in default.stdout.splitlines() if " news " in x]
    assert line.split()[4:8] in (["broadcast", "news", "plain", "education"],
                                 ["broadcast", "news", "urgent", "education"])
    urgent = funnel(project, monkeypatch, *args, "--variant", "urgent")
    (line,) = [x for x in urgent.stdout.splitlines() if " news " in x]
    assert line.split()[4:] == ["broadcast", "news", "urgent", "education", "News,", "now"]
