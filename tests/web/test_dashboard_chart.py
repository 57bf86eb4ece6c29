"""The dashboard's SVG funnel chart: bar widths, labels, accessibility and escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.web.dashboard.chart import BAR_WIDTH, bar_width, describe, funnel_chart, percent

SVG = "{http://www.w3.org/2000/svg}"


def stages(*counts: int) -> list[dict[str, Any]]:
    """Stage rows as the report gives them, conversions from the stage before."""
    rows: list[dict[str, Any]] = []
    before: int | None = None
    for i, count in enumerate(counts):
        conversion = None if not before else count / before
        rows.append({"stage": f"s{i}", "label": f"Stage {i}", "count": count, "conversion": conversion})
        before = count
    return rows


def parsed(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # well-formed XML, or this raises


def bars(svg: ET.Element) -> list[float]:
    return [float(r.attrib["width"]) for r in svg.iter(f"{SVG}rect") if r.attrib["class"] == "bar"]


def texts(svg: ET.Element, kind: str) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text") if t.attrib["class"] == kind]


def test_one_bar_per_stage_as_wide_as_its_share_of_the_largest() -> None:
    svg = parsed(funnel_chart("minimal", "Funnel Minimal", stages(200, 150, 60, 0)))
    assert bars(svg) == [BAR_WIDTH, BAR_WIDTH * 0.75, BAR_WIDTH * 0.3, 0.0]
    assert texts(svg, "label") == ["Stage 0", "Stage 1", "Stage 2", "Stage 3"]
    assert texts(svg, "value") == ["200", "150 · 75.0%", "60 · 40.0%", "0 · 0.0%"]
    groups = [(g.attrib["data-stage"], g.attrib["data-count"]) for g in svg.iter(f"{SVG}g")]
    assert groups == [("s0", "200"), ("s1", "150"), ("s2", "60"), ("s3", "0")]


def test_a_later_stage_larger_than_the_first_sets_the_scale() -> None:
    svg = parsed(funnel_chart("x", "t", stages(10, 40)))
    assert bars(svg) == [BAR_WIDTH / 4, BAR_WIDTH]


def test_an_empty_funnel_draws_empty_bars_and_no_conversions() -> None:
    svg = parsed(funnel_chart("x", "t", stages(0, 0, 0)))
    assert bars(svg) == [0.0, 0.0, 0.0]
    assert texts(svg, "value") == ["0", "0", "0"]  # nobody before: no conversion, not 0%


def test_the_chart_has_a_title_and_a_description_for_screen_readers() -> None:
    svg = parsed(funnel_chart("minimal", "Funnel Minimal", stages(200, 150)))
    assert svg.attrib["role"] == "img"
    title = svg.find(f"{SVG}title")
    desc = svg.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert svg.attrib["aria-labelledby"] == f"{title.attrib['id']} {desc.attrib['id']}"
    assert title.text == "Funnel Minimal"
    assert desc.text == "Stage 0 200; Stage 1 150 (75.0% of the stage before)"


def test_two_charts_on_one_page_have_different_ids() -> None:
    one = parsed(funnel_chart("first-marathon", "a", stages(1)))
    two = parsed(funnel_chart("camping-gear", "b", stages(1)))
    assert one.find(f"{SVG}title").attrib["id"] != two.find(f"{SVG}title").attrib["id"]  # type: ignore[union-attr]


def test_every_text_is_escaped() -> None:
    hostile = [{"stage": '"><script>x</script>', "label": "<script>alert(1)</script>", "count": 3,
                "conversion": None}]
    markup = funnel_chart('"><svg onload=alert(1)>', "<img src=x onerror=alert(2)>", hostile)
    assert "<script" not in markup and "<img" not in markup and "<svg onload" not in markup
    svg = parsed(markup)
    assert set(svg.attrib) == {"class", "viewBox", "role", "aria-labelledby"}  # no attribute smuggled in
    assert svg.find(f"{SVG}title").text == "<img src=x onerror=alert(2)>"  # type: ignore[union-attr]
    assert texts(svg, "label") == ["<script>alert(1)</script>"]
    assert [g.attrib["data-stage"] for g in svg.iter(f"{SVG}g")] == ['"><script>x</script>']
    assert all(e.tag.startswith(SVG) for e in svg.iter())  # no element but the chart's own


def test_no_inline_style_for_the_strict_content_security_policy() -> None:
    markup = funnel_chart("x", "t", stages(5, 4))
    assert "style=" not in markup and "<style" not in markup


def test_percent_and_bar_width_edges() -> None:
    assert percent(None) == ""
    assert percent(0.0) == "0.0%"
    assert percent(1 / 3) == "33.3%"
    assert bar_width(0, 0) == 0.0
    assert bar_width(-1, 10) == 0.0
    assert describe([]) == "no stages"


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=10))
def test_bars_keep_the_order_of_their_counts_and_never_overflow(counts: list[int]) -> None:
    widths = bars(parsed(funnel_chart("p", "t", stages(*counts))))
    assert all(0 <= w <= BAR_WIDTH for w in widths)
    for i in range(len(counts) - 1):
        a, b, wa, wb = counts[i], counts[i + 1], widths[i], widths[i + 1]
        assert (a <= b) == (wa <= wb) or abs(wa - wb) < 0.01  # rounded to hundredths
    if max(counts):
        assert max(widths) == BAR_WIDTH
