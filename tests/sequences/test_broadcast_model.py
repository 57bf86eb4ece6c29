"""A broadcast file's model and compile: the plan the interpreter gets, and the schema editors get."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from engine.flow.state import Stage
from engine.sequences.broadcast_check import parse_broadcast
from engine.sequences.broadcast_compile import compile_broadcast
from engine.sequences.broadcast_model import STAGES, json_schema
from engine.sequences.loader import load_text
from engine.sequences.plan import Audience, BroadcastPlan, PathKind, RatioBreak, Role

GOOD = Path(__file__).resolve().parent.parent / "data" / "broadcasts" / "good" / "sale.yaml"
SMALL = """broadcast: news
funnel: shop
email: {subject: News, template: news.html, role: education}
send: {at: %s}
"""


def _compile(text: str) -> BroadcastPlan:
    doc, errors = load_text(text, "b.yaml")
    assert doc is not None and errors == []
    broadcast, errors = parse_broadcast(doc)
    assert broadcast is not None, [str(e) for e in errors]
    return compile_broadcast(broadcast, "b.yaml")


def test_the_stages_the_language_knows_are_the_interpreters() -> None:
    assert tuple(stage.value for stage in Stage) == STAGES


def test_a_time_without_a_zone_is_each_subscribers_own_wall_clock() -> None:
    plan = _compile(SMALL % "2026-12-10 09:00")
    assert plan.local and plan.at == datetime(2026, 12, 10, 9, 0) and plan.at.tzinfo is None
    assert plan.due_at("Europe/Budapest") == datetime(2026, 12, 10, 8, 0, tzinfo=UTC)
    assert plan.due_at("America/New_York") == datetime(2026, 12, 10, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize("written", ["2026-12-10T09:00:00Z", "'2026-12-10T10:00:00+01:00'",
                                     "2026-12-10 04:00-05:00"])
def test_a_time_with_a_zone_is_one_instant_in_utc(written: str) -> None:
    plan = _compile(SMALL % written)
    assert not plan.local and plan.at == datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    assert plan.due_at("Asia/Tokyo") == plan.due_at("America/Los_Angeles") == plan.at


def test_the_defaults_of_a_small_file() -> None:
    plan = _compile(SMALL % "2026-12-10 09:00")
    assert plan.id == plan.name == plan.email.id == "news" and plan.funnel == "shop"
    assert plan.source == "b.yaml"
    assert (plan.email.path, plan.email.segment, plan.email.role) == (PathKind.BROADCAST, None,
                                                                      Role.EDUCATION)
    assert (plan.email.subject, plan.email.template) == ("News", "news.html")
    assert plan.audience == Audience()  # everyone in the funnel
    assert plan.use_window and plan.when_ratio_breaks is RatioBreak.SKIP
    assert plan.attribution == timedelta(days=7)


def test_every_key_of_the_full_example_reaches_the_plan() -> None:
    plan = _compile(GOOD.read_text(encoding="utf-8"))
    assert (plan.id, plan.name, plan.funnel) == ("spring-sale", "Spring sale", "minimal")
    assert plan.email.role is Role.SALE
    assert plan.audience == Audience(
        segments=frozenset({"one", "two"}), stages=frozenset({"nurture", "sales_done", "customer"}),
        answers=(("level", frozenset({"new", "pro"})),), tags=frozenset({"vip"}),
        without_tags=frozenset({"staff"}), bought=frozenset(), not_bought=frozenset({"pro-kit"}),
        engaged_within=timedelta(days=30),
        signed_up_after=datetime(2026, 1, 1, tzinfo=UTC),
        signed_up_before=datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    assert not plan.local and plan.at == datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    assert not plan.use_window and plan.when_ratio_breaks is RatioBreak.DEFER
    assert plan.attribution == timedelta(days=3)


@pytest.mark.parametrize(("written", "bought"), [
    ("any", frozenset()), ("[a, b]", frozenset({"a", "b"})), ("a", frozenset({"a"}))])
def test_bought_any_is_the_empty_set_and_a_single_product_a_set_of_one(written: str,
                                                                       bought: frozenset[str]) -> None:
    text = SMALL % "2026-12-10 09:00" + f"audience:\n  bought: {written}\n  not_bought: {written}\n"
    audience = _compile(text).audience
    assert audience.bought == audience.not_bought == bought


def test_the_schema_passes_the_full_example_and_flags_a_misspelt_key() -> None:
    schema = json_schema()
    doc, _ = load_text(GOOD.read_text(encoding="utf-8"), "sale.yaml")  # YAML 1.2, as editors read it
    assert doc is not None
    data = doc.data
    jsonschema.validate(data, schema)
    data["email"]["tempalte"] = data["email"].pop("template")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_funnel_schema_broadcast_prints_the_broadcast_schema_and_plain_schema_the_sequence_one() -> None:
    import json

    from click.testing import CliRunner

    from engine.cli import main
    from engine.sequences.model import json_schema as sequence_schema

    broadcast = CliRunner().invoke(main, ["schema", "--broadcast"])
    assert broadcast.exit_code == 0 and json.loads(broadcast.output) == json_schema()
    assert json.loads(broadcast.output)["title"] == "funnel-engine broadcast file"
    plain = CliRunner().invoke(main, ["schema"])
    assert json.loads(plain.output) == sequence_schema()
