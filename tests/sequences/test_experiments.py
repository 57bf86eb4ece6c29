"""An email's variants and experiment in the files: compiled into the plan, in both JSON Schemas,
and documented with every key (the errors are pinned by the golden files)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import jsonschema
import yaml

from engine.project.folder import Project
from engine.sequences import model as m
from engine.sequences.broadcast_model import BroadcastEmail
from engine.sequences.broadcast_model import json_schema as broadcast_schema
from engine.sequences.experiment_check import check_experiment
from engine.sequences.loader import load_text
from engine.sequences.model import json_schema
from engine.sequences.plan import ExperimentPlan, Variant
from engine.sequences.structure import attach_positions
from tests.support.project import shipped_project

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
STORY = "From \"I can't run 5K\" to a marathon medal"
BROADCAST = """broadcast: spring-test
funnel: first-marathon
email:
  subject: "Spring plans"
  template: broadcasts/winter-sale.html
  role: sale
  variants:
    - {id: plain}
    - {id: deadline, subject: "72 hours: spring plans"}
  experiment:
    metric: clicks
    sample: 20%
    decide_after: 2h
    confidence: 95%
send:
  at: 2026-04-01 09:00
"""


def test_the_shipped_experiment_lands_in_the_plan_with_its_rule() -> None:
    plan = Project(ROOT).plan("first-marathon")
    email = plan.email("b-story")
    assert email is not None
    assert email.variants == (
        Variant("story", STORY, "marathon/b-story.html"),
        Variant("question", '"Is a marathon a ridiculous idea?"', "marathon/b-story.html"),
        Variant("short", STORY, "marathon/b-story-short.html"))
    assert email.experiment == ExperimentPlan(metric="purchases", min_sends=100, confidence=0.99,
                                              max_sends=6000, winner=None, sample=None,
                                              decide_after=timedelta(hours=4),
                                              attribution=timedelta(days=7))
    assert email.as_variant("short").template == "marathon/b-story-short.html"
    others = [e for e in plan.emails() if e.id != "b-story"]
    assert all(e.variants == () and e.experiment is None for e in others)


def test_a_broadcast_s_experiment_lands_in_its_plan_with_its_sample(tmp_path: Path) -> None:
    project = shipped_project(tmp_path)
    (project / "broadcasts").mkdir()
    (project / "broadcasts" / "spring.yaml").write_text(BROADCAST, encoding="utf-8")
    result = Project(project).check()
    assert result.errors == []
    (broadcast,) = [b.plan for b in result.broadcasts]
    assert [v.id for v in broadcast.email.variants] == ["plain", "deadline"]
    assert broadcast.email.variants[1] == Variant("deadline", "72 hours: spring plans",
                                                  "broadcasts/winter-sale.html")
    assert broadcast.email.experiment == ExperimentPlan(
        metric="clicks", confidence=0.95, sample=0.2, decide_after=timedelta(hours=2))


def test_a_broadcast_variant_s_template_is_checked_like_the_email_s(tmp_path: Path) -> None:
    project = shipped_project(tmp_path)
    (project / "broadcasts").mkdir()
    text = BROADCAST.replace('{id: plain}', '{id: plain, template: marathon/b-story.html}')
    text = text.replace('subject: "72 hours: spring plans"', 'subject: "{{ vars.discont }} off"')
    (project / "broadcasts" / "spring.yaml").write_text(text, encoding="utf-8")
    errors = [f"{e.line}:{e.column}: {e.problem}" for e in Project(project).check().errors]
    assert errors == ["9:31: subject uses undefined variable 'vars.discont'"]


def test_both_json_schemas_take_variants_and_an_experiment_and_refuse_a_misspelt_key() -> None:
    funnel = yaml.safe_load((ROOT / "sequences" / "first-marathon.yaml").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(json_schema())
    validator.validate(funnel)
    story = next(e for e in funnel["segments"][0]["nurture"]["emails"] if e["id"] == "b-story")
    story["variants"][1]["subjekt"] = story["variants"][1].pop("subject")
    assert not validator.is_valid(funnel)
    broadcast = yaml.safe_load(BROADCAST)
    broadcasts = jsonschema.Draft202012Validator(broadcast_schema())
    broadcasts.validate(broadcast)
    broadcast["email"]["experiment"]["metric"] = "opens"
    assert not broadcasts.is_valid(broadcast)


def test_every_key_is_documented_and_the_docs_examples_check() -> None:
    for model in (m.Variant, m.Experiment):
        for name in model.model_fields:
            assert f"`{name}`" in DOCS, name
    examples = dict(re.findall(r"<!-- example: (.*?) -->\n```yaml\n(.*?)```", DOCS, re.S))
    assert set(examples) == {"sequence email", "broadcast email"}
    for label, text, model, broadcast in (
            ("sequence email", examples["sequence email"], m.Email, False),
            ("broadcast email", examples["broadcast email"], BroadcastEmail, True)):
        doc, errors = load_text(text, "docs.yaml")
        assert doc is not None and not errors
        data = doc.data[0] if isinstance(doc.data, list) else doc.data["email"]
        email = model.model_validate(data)
        attach_positions(email, ())
        assert list(check_experiment(email, label, doc.marks, broadcast=broadcast)) == []


def test_there_is_a_golden_file_for_every_kind_of_experiment_mistake() -> None:
    data = ROOT / "tests" / "data"
    assert {p.stem for p in (data / "sequences" / "bad").glob("*.yaml")} >= {
        "variants-without-experiment", "experiment-without-variants", "one-variant",
        "duplicate-variant", "winner-unknown", "bad-metric", "confidence-range",
        "confidence-fraction", "sample-on-sequence", "variant-template-missing",
        "variant-template-syntax", "variant-footer-missing", "variant-subject-undefined",
        "variants-on-transactional"}
    assert {p.stem for p in (data / "broadcasts" / "bad").glob("*.yaml")} >= {
        "experiment-without-sample", "sample-out-of-range", "variant-template-missing",
        "variant-winner-unknown"}
    assert {p.stem for p in (data / "sequences" / "warn").glob("*.yaml")} >= {
        "variants-the-same", "max-sends-below-minimum", "attribution-with-clicks"}
