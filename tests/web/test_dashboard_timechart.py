"""The dashboard's charts over time (SVG): axes and scaling, empty ranges, one day, escaping, pauses."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from engine.web.dashboard.timechart import (
    HEIGHT,
    LABEL_GAP,
    LEFT,
    PLOT_HEIGHT,
    PLOT_WIDTH,
    TOP,
    Bucket,
    Line,
    Pause,
    describe,
    nice_ceiling,
    time_chart,
)

SVG = "{http://www.w3.org/2000/svg}"
BOTTOM_Y = TOP + PLOT_HEIGHT


def days(n: int) -> list[Bucket]:
    return [Bucket(f"Mar {i + 1}", f"2026-03-{i + 1:02d}") for i in range(n)]


def parsed(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # well-formed XML, or this raises


def points(svg: ET.Element, series: str) -> list[tuple[float, float, str, str]]:
    """(x, y, value, tooltip) of each point of a series."""
    found = []
    for group in svg.iter(f"{SVG}g"):
        if group.attrib.get("data-series") != series:
            continue
        for point in group.iter(f"{SVG}g"):
            if point.attrib.get("class") != "point":
                continue
            hit = point.find(f"{SVG}circle")
            title = point.find(f"{SVG}title")
            assert hit is not None and title is not None
            found.append(
                (
                    float(hit.attrib["cx"]),
                    float(hit.attrib["cy"]),
                    point.attrib["data-value"],
                    title.text or "",
                )
            )
    return found


def texts(svg: ET.Element, kind: str) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text") if kind in t.attrib.get("class", "").split()]


def test_the_axis_ends_on_a_round_number_above_the_largest_value() -> None:
    assert nice_ceiling(0) == (1.0, 1.0)
    assert nice_ceiling(3) == (3.0, 1.0)
    assert nice_ceiling(7) == (8.0, 2.0)
    assert nice_ceiling(95) == (100.0, 25.0)
    assert nice_ceiling(1234) == (1500.0, 500.0)
    assert nice_ceiling(0.3, integers=False) == (0.3, 0.1)  # money may step below 1
    assert nice_ceiling(0.3) == (1.0, 1.0)  # counts never do


def test_points_stand_at_their_day_and_scale_to_the_axis_top() -> None:
    svg = parsed(time_chart("f", "Emails", days(4), [Line("sent", "Sent", [0, 4, 2, 8])]))
    found = points(svg, "sent")
    xs = [x for x, _, _, _ in found]
    assert xs == [round(LEFT + PLOT_WIDTH * (i + 0.5) / 4, 2) for i in range(4)]
    top, _ = nice_ceiling(8)
    assert [y for _, y, _, _ in found] == [round(TOP + PLOT_HEIGHT * (1 - v / top), 2) for v in (0, 4, 2, 8)]
    assert [v for _, _, v, _ in found] == ["0", "4", "2", "8"]
    assert found[1][3] == "2026-03-02: Sent 4"
    assert texts(svg, "tick")[:5] == ["0", "2", "4", "6", "8"]  # the y axis, then the dates
    assert texts(svg, "date") == ["Mar 1", "Mar 2", "Mar 3", "Mar 4"]


def test_long_ranges_name_at_most_seven_dates_and_thousands_get_separators() -> None:
    svg = parsed(time_chart("f", "t", days(30), [Line("sent", "Sent", [1234] * 30)]))
    assert len(texts(svg, "date")) <= 7
    assert points(svg, "sent")[0][2] == "1,234"


def test_an_empty_range_and_a_range_with_nothing_in_it_say_so() -> None:
    empty = parsed(time_chart("f", "t", [], [Line("sent", "Sent", [])]))
    assert texts(empty, "empty") == ["No days chosen"]
    assert points(empty, "sent") == []
    quiet = parsed(time_chart("f", "t", days(3), [Line("sent", "Sent", [0, 0, 0])]))
    assert texts(quiet, "empty") == ["Nothing in these days"]
    assert [y for _, y, _, _ in points(quiet, "sent")] == [BOTTOM_Y] * 3  # drawn on the floor, not above it


def test_one_day_is_one_point_in_the_middle_and_no_line() -> None:
    svg = parsed(time_chart("f", "t", days(1), [Line("sent", "Sent", [4])]))  # 4: the top of its axis
    [(x, y, value, _)] = points(svg, "sent")
    assert (x, y, value) == (LEFT + PLOT_WIDTH / 2, TOP, "4")
    assert not [p for p in svg.iter(f"{SVG}path") if p.attrib.get("class") == "line"]


def test_lines_differ_by_dash_class_and_marker_shape_and_are_named_at_their_end() -> None:
    lines = [Line(k, k.title(), [1, 2]) for k in ("a", "b", "c", "d", "e")]
    svg = parsed(time_chart("f", "t", days(2), lines))
    series = [g.attrib["class"] for g in svg.iter(f"{SVG}g") if g.attrib.get("data-series")]
    assert series == ["series s0", "series s1", "series s2", "series s3", "series s0"]
    shapes = []
    for g in svg.iter(f"{SVG}g"):
        if g.attrib.get("data-series") in ("a", "b", "c", "d"):
            marker = next(e for e in g.iter() if e.attrib.get("class") == "marker")
            shapes.append((marker.tag.removeprefix(SVG), marker.attrib.get("d", "").count("L")))
    assert len(set(shapes)) == 4  # circle, square, triangle, diamond
    assert texts(svg, "line-label") == ["A", "B", "C", "D", "E"]
    heights = sorted(
        float(t.attrib["y"]) for t in svg.iter(f"{SVG}text") if t.attrib.get("class") == "line-label"
    )
    assert all(b - a >= LABEL_GAP - 0.01 for a, b in itertools.pairwise(heights))


def test_every_text_is_escaped_and_nothing_is_styled_inline() -> None:
    hostile = '<script>alert(1)</script>"&'
    markup = time_chart(
        hostile,
        hostile,
        [Bucket(hostile, hostile)],
        [Line(hostile, hostile, [1])],
        [Pause(0, 1, hostile, hostile)],
    )
    svg = parsed(markup)
    assert "<script" not in markup and "style=" not in markup
    assert not list(svg.iter(f"{SVG}script"))
    assert svg.find(f"{SVG}title") is not None and svg.find(f"{SVG}title").text == hostile  # type: ignore[union-attr]
    assert hostile in texts(svg, "line-label")
    assert f"paused {hostile}" in texts(svg, "pause-label")
    ids = [e.attrib["id"] for e in svg.iter() if "id" in e.attrib]
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for i in ids)


def test_pauses_are_shaded_where_they_held_clipped_to_the_range_and_explained_on_hover() -> None:
    pauses = [
        Pause(-2.0, 1.5, "e1", "e1 paused 2026-02-27, resumed 2026-03-02 12:00"),
        Pause(3.25, 9.0, "e2", "e2 paused 2026-03-04 06:00, still paused"),
    ]
    svg = parsed(time_chart("f", "t", days(5), [Line("sent", "Sent", [1] * 5)], pauses))
    groups = [g for g in svg.iter(f"{SVG}g") if g.attrib.get("class") == "pause"]
    assert [g.attrib["data-step"] for g in groups] == ["e1", "e2"]
    spans = [next(r for r in g.iter(f"{SVG}rect")) for g in groups]
    x = [float(r.attrib["x"]) for r in spans]
    widths = [float(r.attrib["width"]) for r in spans]
    assert x == [LEFT, round(LEFT + PLOT_WIDTH * 3.25 / 5, 2)]
    assert widths[0] == round(PLOT_WIDTH * 1.5 / 5, 2)
    assert round(x[1] + widths[1], 2) == LEFT + PLOT_WIDTH  # still paused: to the range's end
    assert [g.find(f"{SVG}title").text for g in groups] == [p.detail for p in pauses]  # type: ignore[union-attr]
    assert texts(svg, "pause-label") == ["paused e1", "paused e2"]
    assert "e2 paused 2026-03-04 06:00, still paused" in (svg.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]


def test_money_is_written_with_cents() -> None:
    svg = parsed(time_chart("f", "Revenue", days(2), [Line("EUR", "EUR", [149.0, 1234.5])], money=True))
    assert [v for _, _, v, _ in points(svg, "EUR")] == ["149.00", "1,234.50"]


def test_the_description_says_each_line_in_words() -> None:
    said = describe(days(3), [Line("sent", "Sent", [1, 5, 2]), Line("opened", "Opened", [0, 0, 0])])
    assert said == "From 2026-03-01 to 2026-03-03; Sent: 8 in all, most 5 on 2026-03-02; Opened: none"
    assert describe([], []) == "no days"


@given(
    st.lists(st.lists(st.integers(0, 10**7), min_size=0, max_size=40), min_size=1, max_size=5),
    st.integers(0, 40),
)
def test_any_values_stay_inside_the_plot(values: list[list[int]], count: int) -> None:
    lines = [Line(f"l{i}", f"Line {i}", v) for i, v in enumerate(values)]
    svg = parsed(time_chart("f", "t", days(count), lines))
    for i in range(len(values)):
        for x, y, _, _ in points(svg, f"l{i}"):
            assert LEFT <= x <= LEFT + PLOT_WIDTH and TOP <= y <= BOTTOM_Y <= HEIGHT
