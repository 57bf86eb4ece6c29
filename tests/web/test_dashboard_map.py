"""The funnel map, pure: who stands where (engine/stats/mapdata.py), the layout and the SVG.

Both shipped funnels are drawn from their files with made-up positions and numbers: every
email is a node carrying its counts, education and sale differ by shape and letter, text is
escaped, and the drawing is the same for the same input.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.project.folder import Project
from engine.sequences.plan import EmailStep, Plan, Role
from engine.stats.mapdata import ANSWERING, ENDED, SALES_DONE, SEGMENT, SIGNUP, SUNSET, Kind, funnel_map
from engine.web.dashboard.emails import email_href
from engine.web.dashboard.funnel_map import funnel_map as draw
from engine.web.dashboard.map_layout import NODE_HEIGHT, NODE_WIDTH, layout
from tests.support.project import ROOT

SVG = "{http://www.w3.org/2000/svg}"
XLINK_FREE = "href"
SHIPPED = ("first-marathon", "camping-gear")


@pytest.fixture(scope="module", params=SHIPPED)
def plan(request: pytest.FixtureRequest) -> Plan:
    return Project(ROOT).plan(request.param)


def sequence_emails(plan: Plan) -> list[str]:
    """Every email a subscriber of the funnel can wait for (broadcasts are one-offs, not on the map)."""
    return [e.id for e in plan.emails() if e.path.value != "broadcast"]


def fake_numbers(plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Positions and step rows where every email has its own numbers: the i-th waits i+1, sent 100+i."""
    positions: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    paths = {"nurture", "sales", "customer", "winback"}
    for i, email in enumerate(plan.emails()):
        if email.path.value in paths:
            segment = email.segment
            positions.append(
                {
                    "stage": email.path.value,
                    "segment": segment,
                    "step": email.id,
                    "magnet": None,
                    "count": i + 1,
                }
            )
        steps.append(
            {
                "step": email.id,
                "sent": 100 + i,
                "opened": 40,
                "opened_rate": 0.4,
                "clicked": 7,
                "clicked_rate": 0.07,
                "unsubscribed": i,
                "unsubscribed_rate": i / (100 + i),
                "paused": False,
            }
        )
    positions += [
        {"stage": "confirming", "segment": None, "step": None, "magnet": None, "count": 11},
        {"stage": "magnet", "segment": None, "step": None, "magnet": plan.magnets[0].id, "count": 12},
        {"stage": "survey", "segment": None, "step": None, "magnet": None, "count": 13},
        {"stage": "answering", "segment": None, "step": None, "magnet": "no-such-magnet", "count": 14},
        {"stage": "sales_done", "segment": plan.segments[0].id, "step": None, "magnet": None, "count": 15},
        {"stage": "sunset", "segment": plan.segments[0].id, "step": None, "magnet": None, "count": 16},
        {"stage": "ended", "segment": None, "step": None, "magnet": None, "count": 17},
        {
            "stage": "nurture",
            "segment": plan.segments[0].id,
            "step": "removed-email",
            "magnet": None,
            "count": 18,
        },
        {"stage": "sales", "segment": plan.segments[0].id, "step": None, "magnet": None, "count": 19},
    ]
    return positions, steps


def nodes(svg: ET.Element) -> dict[str, ET.Element]:
    """The map's nodes by their key."""
    return {n.attrib["data-key"]: n for n in svg.iter() if "m-node" in n.attrib.get("class", "").split()}


def texts(node: ET.Element) -> list[str]:
    return [t.text or "" for t in node.iter(f"{SVG}text")]


def test_every_email_of_the_shipped_funnels_is_a_node_with_its_counts(plan: Plan) -> None:
    positions, steps = fake_numbers(plan)
    found = funnel_map(plan, positions, steps)
    svg = ET.fromstring(draw(found))  # well-formed XML, or this raises
    drawn = nodes(svg)
    by_step = {row["step"]: row for row in steps}
    waiting = {row["step"]: row["count"] for row in positions if row["step"]}
    for step in sequence_emails(plan):
        node = drawn[step]
        assert node.tag == f"{SVG}a"
        assert node.attrib["href"] == email_href(plan.funnel, step)
        assert node.attrib["data-sent"] == str(by_step[step]["sent"])
        shown = texts(node)
        expected_waiting = waiting.get(step, 0)
        if plan.confirmation and step == plan.confirmation.id:
            expected_waiting = 11
        if plan.survey and step == plan.survey.email.id:
            expected_waiting = 13
        if step == plan.magnets[0].email.id:
            expected_waiting = 12
        assert node.attrib["data-waiting"] == str(expected_waiting)
        assert f"{expected_waiting:,} waiting · {by_step[step]['sent']:,} sent" in shown
        assert f"open 40% · click 7.0% · unsub {by_step[step]['unsubscribed']:,}" in shown
        title = node.find(f"{SVG}title")
        assert title is not None and title.text is not None
        assert f"Sent: {by_step[step]['sent']:,}" in title.text
    assert drawn[ANSWERING].attrib["data-waiting"] == "14"
    assert drawn[SALES_DONE + plan.segments[0].id].attrib["data-waiting"] == "15"
    assert drawn[SUNSET].attrib["data-waiting"] == "16"
    assert drawn[ENDED].attrib["data-waiting"] == "17"
    # Every enrollment stands at one place or elsewhere: the places add up to the positions.
    assert found.total == sum(row["count"] for row in positions)
    assert dict(found.elsewhere) == {
        "at step 'removed-email', no longer in the file": 18,
        "moving on from the sales path": 19,
    }
    # The magnets' forms count everyone by the magnet they came through (unknown: the default's).
    assert sum(int(drawn[SIGNUP + m.id].attrib["data-waiting"]) for m in plan.magnets) == found.total
    first = plan.segments[0]
    in_first = sum(
        r["count"]
        for r in positions
        if r["segment"] == first.id and r["stage"] in ("nurture", "sales", "sales_done", "customer")
    )
    assert drawn[SEGMENT + first.id].attrib["data-waiting"] == str(in_first)


def test_education_and_sale_differ_by_shape_and_letter_not_colour_alone(plan: Plan) -> None:
    svg = ET.fromstring(draw(funnel_map(plan, [], [])))
    seen: dict[str, set[tuple[str, str]]] = {}
    for key, node in nodes(svg).items():
        email = plan.email(key)
        if email is None:
            continue
        mark = next(g for g in node.iter(f"{SVG}g") if g.attrib.get("class") == "m-mark")
        shape = mark[0].tag.removeprefix(SVG)
        letter = mark.find(f"{SVG}text")
        assert letter is not None
        seen.setdefault(email.role.value, set()).add((shape, letter.text or ""))
        assert email.role.value in node.attrib["class"].split()
    assert seen[Role.EDUCATION.value] == {("circle", "E")}
    assert seen[Role.SALE.value] == {("path", "$")}  # a diamond
    assert seen[Role.TRANSACTIONAL.value] == {("rect", "T")}


def test_the_layout_is_deterministic_and_nothing_overlaps(plan: Plan) -> None:
    found = funnel_map(plan, *fake_numbers(plan))
    first, again = layout(found), layout(found)
    assert first == again
    assert str(draw(found)) == str(draw(found))
    boxes = first.boxes
    assert {b.place.key for b in boxes} == {p.key for p in found.places}
    for i, a in enumerate(boxes):
        assert a.x >= 0 and a.x + NODE_WIDTH <= first.width
        assert a.y >= 0 and a.y + NODE_HEIGHT <= first.height
        for b in boxes[i + 1 :]:
            apart = (
                a.x + NODE_WIDTH <= b.x
                or b.x + NODE_WIDTH <= a.x
                or a.y + NODE_HEIGHT <= b.y
                or b.y + NODE_HEIGHT <= a.y
            )
            assert apart, (a.place.key, b.place.key)
    # Top-down: each segment's emails in file order, one under the other, in the segment's lane.
    where = {b.place.key: b for b in boxes}
    for segment in plan.segments:
        column = [*segment.nurture.steps, *segment.sales.steps, *segment.customer.steps]
        assert len({where[e.id].x for e in column}) == 1
        ys = [where[e.id].y for e in column]
        assert ys == sorted(ys)
    # A phone's width holds two lanes at a readable scale.
    assert first.width <= 560


def test_text_is_escaped_and_the_map_has_a_title_and_description() -> None:
    plan = Project(ROOT).plan("first-marathon")
    hostile = '<script>alert("x")</script>&'
    segment = replace(plan.segments[0], name=hostile)
    magnet = replace(plan.magnets[0], title=hostile)
    plan = replace(plan, name=hostile, segments=(segment, *plan.segments[1:]), magnets=(magnet,))
    markup = str(draw(funnel_map(plan, [], [])))
    assert "<script" not in markup
    svg = ET.fromstring(markup)
    title = svg.find(f"{SVG}title")
    desc = svg.find(f"{SVG}desc")
    assert title is not None and title.text == f"Map of the funnel {hostile}"
    assert desc is not None and desc.text is not None and desc.text.startswith(hostile)
    assert svg.attrib["aria-labelledby"] == f"{title.attrib['id']} {desc.attrib['id']}"
    assert "style" not in markup  # the CSP allows no inline style
    head = nodes(svg)[SEGMENT + segment.id]
    assert texts(head)[0].startswith("<script>")  # shown as text, cut to fit
    assert email_href("a b/c", "x#y") == "/dashboard/funnels/a%20b%2Fc/emails/x%23y"


def test_a_paused_email_says_so_in_words() -> None:
    plan = Project(ROOT).plan("first-marathon")
    steps = [
        {
            "step": "b-shoes",
            "sent": 300,
            "opened": 3,
            "opened_rate": 0.01,
            "clicked": 0,
            "clicked_rate": 0.0,
            "unsubscribed": 9,
            "unsubscribed_rate": 0.03,
            "paused": True,
            "paused_detail": "unsubscribes 3%",
        }
    ]
    svg = ET.fromstring(draw(funnel_map(plan, [], steps)))
    node = nodes(svg)["b-shoes"]
    assert "paused" in node.attrib["class"].split()
    assert "PAUSED · 0 waiting · 300 sent" in texts(node)
    title = node.find(f"{SVG}title")
    assert title is not None and "Paused: unsubscribes 3%" in (title.text or "")


def test_a_funnel_without_a_survey_or_confirmation_still_connects(tmp_path: Path) -> None:
    plan = Project(ROOT).plan("first-marathon")
    plan = replace(plan, confirmation=None, survey=None, winback=None)
    found = funnel_map(plan, [], [])
    keys = {p.key for p in found.places}
    assert plan.segments[0].nurture.steps[0].id in keys
    assert not any(p.kind is Kind.WAIT for p in found.places)
    drawn = layout(found)
    assert len(drawn.lines) == len(found.edges)
    magnet_email = plan.magnets[0].email.id
    assert (SIGNUP + plan.magnets[0].id, magnet_email) in {(e.source, e.target) for e in found.edges}


@settings(max_examples=40, deadline=None)
@given(
    lanes=st.integers(min_value=1, max_value=4),
    cuts=st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, 3), st.integers(0, 6)), min_size=4, max_size=4
    ),
    magnets=st.integers(min_value=1, max_value=3),
)
def test_any_number_of_segments_emails_and_magnets_lays_out_without_overlaps(
    lanes: int, cuts: list[tuple[int, int, int]], magnets: int
) -> None:
    base = Project(ROOT).plan("first-marathon")
    segments = []
    for i in range(lanes):
        model = base.segments[i % len(base.segments)]
        nurture, sales, customer = cuts[i]
        segments.append(
            replace(
                model,
                id=f"{model.id}-{i}",
                nurture=replace(model.nurture, steps=_renamed(model.nurture.steps[:nurture], i)),
                sales=replace(model.sales, steps=_renamed(model.sales.steps[:sales], i)),
                customer=replace(model.customer, steps=_renamed(model.customer.steps[:customer], i)),
            )
        )
    offered = tuple(
        replace(base.magnets[0], id=f"m{i}", email=replace(base.magnets[0].email, id=f"m{i}-email"))
        for i in range(magnets)
    )
    plan = replace(base, segments=tuple(segments), magnets=offered)
    found = funnel_map(plan, [], [])
    drawn = layout(found)
    assert {b.place.key for b in drawn.boxes} == {p.key for p in found.places}
    assert len(drawn.lines) == len(found.edges)
    for i, a in enumerate(drawn.boxes):
        assert a.x >= 0 and a.x + NODE_WIDTH <= drawn.width
        assert a.y >= 0 and a.y + NODE_HEIGHT <= drawn.height
        for b in drawn.boxes[i + 1 :]:
            assert (
                a.x + NODE_WIDTH <= b.x
                or b.x + NODE_WIDTH <= a.x
                or a.y + NODE_HEIGHT <= b.y
                or b.y + NODE_HEIGHT <= a.y
            ), (a.place.key, b.place.key)
    ET.fromstring(draw(found))  # well-formed whatever the shape


def _renamed(steps: tuple[EmailStep, ...], lane: int) -> tuple[EmailStep, ...]:
    """The emails under ids of their own lane: step ids are unique in a funnel."""
    return tuple(replace(step, id=f"{step.id}-{lane}") for step in steps)
