"""The `funnel` command on the shipped examples and the test data, through the real CLI."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from engine.cli import main
from engine.project.folder import Project
from engine.sequences.loader import load_text
from engine.sequences.plan import Plan

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SHIPPED = Project(ROOT).check()
START = "2026-03-02T09:00:00+00:00"


def funnel(*args: str, cwd: Path = ROOT, monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(main, list(args))


def simulate_json(monkeypatch: pytest.MonkeyPatch, *args: str, cwd: Path = ROOT) -> list[dict[str, Any]]:
    result = funnel("simulate", *args, "--start", START, "--json", cwd=cwd, monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_the_shipped_examples_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    result = funnel("validate", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    ok = [line for line in result.stdout.splitlines() if ": ok, funnel '" in line]
    assert len(ok) == 2 and SHIPPED.errors == []


def _answers(plan: Plan) -> list[tuple[str, str]]:
    assert plan.survey is not None
    return [(q.id, a) for q in plan.survey.questions for a, _ in q.answers]


CASES = [(f.plan, q, a) for f in SHIPPED.funnels for q, a in _answers(f.plan)]


def test_shipped_examples_are_complete_funnels() -> None:
    for loaded in SHIPPED.funnels:
        plan = loaded.plan
        assert plan.survey is not None and len(plan.segments) >= 2
        assert len({plan.survey.decide({q: a}) for q, a in _answers(plan)}) >= 2
        for segment in plan.segments:
            assert len(segment.nurture.steps) >= 10
            assert len(segment.sales.steps) >= 3 and segment.sales.steps[-1].last_chance
            assert segment.customer.steps


@pytest.mark.parametrize(("plan", "question", "answer"), CASES,
                         ids=[f"{p.funnel}-{q}={a}" for p, q, a in CASES])
def test_simulate_every_answer_without_a_purchase(plan: Plan, question: str, answer: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert plan.survey is not None
    rows = simulate_json(monkeypatch, plan.funnel, "--answer", f"{question}={answer}",
                         "--days", "365")
    segment = plan.segment(plan.survey.decide({question: answer}))
    assert segment is not None
    head = [r["path"] for r in rows[:3]]
    assert head == ["confirm", "magnet", "survey"]
    by_path = {kind: [r["step"] for r in rows if r["path"] == kind]
               for kind in ("nurture", "sales", "customer")}
    assert by_path["nurture"] == [e.id for e in segment.nurture.steps]
    assert by_path["sales"] == [e.id for e in segment.sales.steps]
    assert by_path["customer"] == []
    assert {r["segment"] for r in rows[3:]} == {segment.id}
    for row in rows:
        assert row["subject"] and "{{" not in row["subject"] and "}}" not in row["subject"]
        assert set(row) >= {"at", "segment", "path", "step", "role", "subject"}
    times = [datetime.fromisoformat(r["at"]) for r in rows]
    assert times == sorted(times)


@pytest.mark.parametrize(("plan", "question", "answer"), CASES,
                         ids=[f"{p.funnel}-{q}={a}" for p, q, a in CASES])
def test_simulate_every_answer_with_a_purchase_in_the_sales_path(
        plan: Plan, question: str, answer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert plan.survey is not None
    quiet = simulate_json(monkeypatch, plan.funnel, "--answer", f"{question}={answer}",
                          "--days", "365")
    first_sale = next(datetime.fromisoformat(r["at"]) for r in quiet if r["path"] == "sales")
    offset = first_sale - datetime.fromisoformat(START) + timedelta(hours=1)
    segment = plan.segment(plan.survey.decide({question: answer}))
    assert segment is not None
    bought_product = sorted(segment.exit_products)[0] if segment.exit_products else None
    product = f":{bought_product}" if bought_product else ""
    rows = simulate_json(monkeypatch, plan.funnel, "--answer", f"{question}={answer}",
                         "--event", f"purchase{product}@{int(offset.total_seconds() // 60)}m",
                         "--days", "365")
    bought = first_sale + timedelta(hours=1)
    sales = [r for r in rows if r["path"] == "sales"]
    assert len(sales) == 1 and datetime.fromisoformat(sales[0]["at"]) < bought
    customer = [r["step"] for r in rows if r["path"] == "customer"]
    # The product's customer path (`products:`), else the segment's own.
    assert customer == [e.id for e in plan.customer_segment(segment, bought_product)[0].customer.steps]


def test_a_pinned_timeline_for_the_minimal_funnel(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = simulate_json(monkeypatch, "sequences/good/minimal.yaml", "--answer", "level=pro",
                         "--event", "purchase:pro-kit@20d", "--days", "40", cwd=DATA)
    assert [(r["at"][5:16], r["path"], r["step"], r["role"], r["subject"]) for r in rows] == [
        ("03-02T09:00", "confirm", "confirm", "transactional", "Please confirm"),
        ("03-02T09:02", "magnet", "magnet", "transactional", "Your guide, Alex"),
        ("03-02T09:02", "survey", "survey", "transactional", "One question"),
        ("03-04T10:02", "nurture", "e6", "education", "E6"),  # answered 10:02, +2d, in window
        ("03-06T10:02", "nurture", "c3", "education", "C3"),
        ("03-09T08:00", "nurture", "c4", "education", "C4"),  # Sunday 10:02 -> Monday 08:00
        ("03-11T08:00", "nurture", "c5", "education", "C5"),
        ("03-13T08:00", "nurture", "s2", "sale", "S2"),  # interleaved 4 education, 1 offer
        ("03-16T08:00", "sales", "o3", "sale", "O3 for Segment two"),
        ("03-24T09:00", "customer", "c6", "education", "C6"),  # bought 03-22 09:00, +2d
    ]
    assert {r["segment"] for r in rows[3:]} == {"two"}


def test_simulate_text_output_and_local_times(monkeypatch: pytest.MonkeyPatch) -> None:
    result = funnel("simulate", "sequences/good/minimal.yaml", "--start", START, "--days", "30",
                    "--timezone", "Europe/Budapest", cwd=DATA, monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Minimal funnel (minimal); times in Europe/Budapest"
    assert lines[2].startswith("Mon 2026-03-02 10:00  -")  # 09:00 UTC is 10:00 in Budapest
    assert "-> segment 'one': no answer within 3d" in result.stdout
    assert "Mon 2026-03-09 08:00  one" in result.stdout  # 08:00 local, not UTC


def test_the_readme_purchase_example_welcomes_the_buyer_to_the_course_they_bought(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A first-timer buys the sub-3 course: 'products:' starts the advanced customer path,
    # and its welcome is 'anytime': it goes on a Sunday, outside the weekday window.
    result = funnel("simulate", "first-marathon", "--answer", "experience=new", "--event",
                    "purchase:sub-3-marathon@20d", "--start", START, monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "enters the customer path: bought 'sub-3-marathon' (products: segment 'advanced')" in out
    assert "Sun 2026-03-22 11:00  beginner  customer  a-welcome-course" in out
    assert "b-welcome-course" not in out


@pytest.mark.parametrize(("args", "message"), [
    (["simulate", "nope"], "no funnel named 'nope'; known funnels:"),
    (["simulate", "sequences/good/minimal.yaml", "--answer", "level=expert"],
     "question 'level' has no answer 'expert'; answers: new, pro"),
    (["simulate", "sequences/good/minimal.yaml", "--event", "buy@2d"], "does not parse"),
    (["simulate", "sequences/good/minimal.yaml", "--timezone", "Mars/Olympus"],
     "unknown time zone 'Mars/Olympus'"),
    (["simulate", "sequences/bad/ratio-broken.yaml"], "breaks the 4:1 rule"),
    (["preview", "sequences/good/minimal.yaml", "e99"], "has no step 'e99'"),
    (["preview", "sequences/good/minimal.yaml", "e1", "--data", '{"fields": [1, 2]}'],
     "'fields' must be an object of field names and values"),
    (["preview", "sequences/good/minimal.yaml", "e1", "--data", '{"nmae": "Ann"}'],
     "unknown key 'nmae'; did you mean 'name'?"),
    (["preview", "sequences/good/minimal.yaml", "e1", "--data", '{"name": 5}'],
     "'name' must be text"),
])
def test_bad_arguments_say_what_is_wrong(args: list[str], message: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    result = funnel(*args, cwd=DATA, monkeypatch=monkeypatch)
    assert result.exit_code != 0
    assert message in result.output


def test_preview_writes_html_and_text_with_escaped_subscriber_data(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = json.dumps({"name": "<b>Eve</b> Smith", "first_name": "<b>Eve</b>"})
    result = funnel("preview", "sequences/good/minimal.yaml", "e1", "--data", data,
                    "--out", str(tmp_path), cwd=DATA, monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    html = (tmp_path / "e1.html").read_text()
    assert "&lt;b&gt;Eve&lt;/b&gt;" in html and "<b>Eve</b>" not in html
    assert "1 Example Street, Springfield" in html and "/u/preview-e1" in html
    text = (tmp_path / "e1.txt").read_text()
    assert "Hi <b>Eve</b>, this is e1." in text
    shown = funnel("preview", "sequences/good/minimal.yaml", "magnet", cwd=DATA,
                   monkeypatch=monkeypatch)
    assert "Subject: Your guide, Alex" in shown.stdout


def test_the_json_schema_accepts_the_shipped_files_and_rejects_typos(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = funnel("schema", monkeypatch=monkeypatch)
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = [*(ROOT / "sequences").glob("*.yaml"), DATA / "sequences/good/minimal.yaml"]
    for path in files:
        doc, _ = load_text(path.read_text(), str(path))
        assert doc is not None
        assert list(validator.iter_errors(doc.data)) == [], path
    doc, _ = load_text((DATA / "sequences/bad/unknown-key.yaml").read_text(), "x")
    assert doc is not None and list(validator.iter_errors(doc.data))


def test_an_empty_project_says_where_it_looked(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    result = funnel("--project", str(tmp_path), "validate", monkeypatch=monkeypatch)
    assert result.exit_code == 1
    assert f"no sequence files in {tmp_path / 'sequences'}" in result.stderr


def test_help_lists_the_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    result = funnel("--help", monkeypatch=monkeypatch)
    for command in ("validate", "simulate", "preview", "schema"):
        assert f"  {command} " in result.stdout


def test_previewing_the_survey_shows_one_link_per_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = next(f.plan for f in SHIPPED.funnels if f.plan.funnel == "camping-gear")
    assert plan.survey is not None
    result = funnel("preview", "camping-gear", plan.survey.email.id, monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    for question in plan.survey.questions:
        for answer, _label in question.answers:
            assert f"/a/preview-{question.id}-{answer}" in result.stdout


def test_two_files_with_one_funnel_id_are_an_error(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    (tmp_path / "sequences").mkdir()
    text = (DATA / "sequences/good/minimal.yaml").read_text()
    (tmp_path / "sequences" / "a.yaml").write_text(text)
    (tmp_path / "sequences" / "b.yaml").write_text(text)
    (tmp_path / "templates").symlink_to(DATA / "templates")
    result = funnel("validate", cwd=tmp_path, monkeypatch=monkeypatch)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == ("sequences/b.yaml:1:1: funnel id 'minimal' is also "
                                             "used by sequences/a.yaml; give each funnel its own id")


@pytest.mark.parametrize(("args", "message"), [
    (["simulate", "first-marathn"], "no funnel named 'first-marathn'; did you mean 'first-marathon'?"),
    (["preview", "first-marathon", "b-shoe"],
     "funnel 'first-marathon' has no step 'b-shoe'; did you mean 'b-shoes'?"),
])
def test_a_misspelt_funnel_or_step_gets_a_suggestion(args: list[str], message: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    result = funnel(*args, monkeypatch=monkeypatch)
    assert result.exit_code != 0
    assert message in result.output
