"""Charts over time on the dashboard: a few lines over days (or weeks), drawn as inline SVG.

Pure: buckets, lines and pauses in, markup out. Each line is told apart without colour:
its own dash pattern and marker shape (classes the style sheet draws), and its name
written at its end. Every point carries its exact number in a <title> (a tooltip on
hover), the chart a title and a description for screen readers, and the page puts the
same numbers in a table beside it. Guardrail pauses are shaded spans with a dashed edge
and the word "paused". Nothing is styled inline (the page's CSP allows no inline style)
and every piece of text is escaped, as in chart.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 220  # the viewBox: the SVG scales to the width of its box
LEFT, RIGHT, TOP, BOTTOM = 52, 118, 26, 30  # room for the y labels, the line names, the pause words, dates
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
STYLES = 4  # dash patterns and marker shapes (s0..s3); more lines reuse them
X_LABELS = 7  # at most this many dates under the axis
Y_TICKS = 4  # about this many steps up the axis
LABEL_GAP = 13  # the least distance between two line names at the right end
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Bucket:
    """A day or a week on the x axis: `short` under the axis, `full` in tooltips and the description."""

    short: str
    full: str


@dataclass(frozen=True)
class Line:
    """One series: its name, and one value per bucket."""

    key: str
    label: str
    values: Sequence[float]


@dataclass(frozen=True)
class Pause:
    """A span when a step was paused, in bucket units: bucket i spans [i, i + 1)."""

    start: float
    end: float
    label: str  # written on the chart: the step
    detail: str  # the tooltip: why, when, until when


def nice_ceiling(largest: float, integers: bool = True) -> tuple[float, float]:
    """(top of the axis, step between ticks) for values up to `largest`: steps of 1, 2, 2.5 or 5 x 10^k."""
    if largest <= 0:
        return 1.0, 1.0
    raw = largest / Y_TICKS
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if integers:
        step = max(1.0, float(math.ceil(step)))
    # Rounded: 0.1 * 3 is 0.30000000000000004 in floats, and 0.3 / 0.1 is 2.9999999999999996.
    return round(step * math.ceil(round(largest / step, 9)), 9), step


def number(value: float, money: bool = False) -> str:
    """A count as '1,234'; money as '1,234.50'."""
    if money:
        return f"{value:,.2f}"
    return f"{round(value):,}"


def _x(position: float, buckets: int) -> float:
    """Where a position in bucket units stands on the x axis."""
    return round(LEFT + PLOT_WIDTH * position / max(buckets, 1), 2)


def _y(value: float, top: float) -> float:
    return round(TOP + PLOT_HEIGHT * (1 - value / top), 2)


def _marker(style: int, x: float, y: float) -> str:
    """The point's shape: circle, square, triangle, diamond (the shape, not the colour, tells lines apart)."""
    if style == 0:
        return f'<circle class="marker" cx="{x}" cy="{y}" r="3.2"/>'
    if style == 1:
        return f'<rect class="marker" x="{x - 3}" y="{y - 3}" width="6" height="6"/>'
    if style == 2:
        return f'<path class="marker" d="M{x} {y - 4}L{x + 3.8} {y + 3}L{x - 3.8} {y + 3}Z"/>'
    return f'<path class="marker" d="M{x} {y - 4.2}L{x + 4.2} {y}L{x} {y + 4.2}L{x - 4.2} {y}Z"/>'


def _spread(wanted: list[float], low: float, high: float) -> list[float]:
    """Label heights as near `wanted` as they can be, at least LABEL_GAP apart (in input order)."""
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    placed: dict[int, float] = {}
    last = low - LABEL_GAP
    for i in order:
        last = max(wanted[i], last + LABEL_GAP)
        placed[i] = last
    overflow = (last - high) if order else 0.0
    if overflow > 0:  # pushed past the bottom: move them all up together
        placed = {i: y - overflow for i, y in placed.items()}
    return [placed[i] for i in range(len(wanted))]


def time_chart(
    key: str,
    title: str,
    buckets: Sequence[Bucket],
    lines: Sequence[Line],
    pauses: Sequence[Pause] = (),
    money: bool = False,
) -> Markup:
    """An SVG line chart of `lines` over `buckets`, with `pauses` shaded.

    `key` makes the ids unique on a page with several charts; `money` writes values with
    cents and lets the axis step below 1.
    """
    ident = "time-" + _ID_UNSAFE.sub("_", key)[:80]
    count = len(buckets)
    largest = max((v for line in lines for v in line.values), default=0.0)
    top, step = nice_ceiling(largest, integers=not money)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="time-chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc" data-buckets="{count}">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(describe(buckets, lines, pauses, money))}</desc>',
        *_axes(buckets, top, step, money),
        *_pauses(pauses, count),
    ]
    if count == 0 or largest <= 0:
        words = "No days chosen" if count == 0 else "Nothing in these days"
        parts.append(
            f'<text class="empty" x="{LEFT + PLOT_WIDTH / 2}" y="{TOP + PLOT_HEIGHT / 2}" '
            f'text-anchor="middle">{words}</text>'
        )
    ends: list[tuple[int, float, str]] = []
    for index, line in enumerate(lines):
        style = index % STYLES
        points = [(_x(i + 0.5, count), _y(max(v, 0.0), top), v) for i, v in enumerate(line.values[:count])]
        parts.append(f'<g class="series s{style}" data-series="{escape(line.key)}">')
        if len(points) > 1:
            path = "M" + "L".join(f"{x} {y}" for x, y, _ in points)
            parts.append(f'<path class="line" d="{path}"/>')
        for i, (x, y, v) in enumerate(points):
            tip = f"{buckets[i].full}: {line.label} {number(v, money)}"
            parts.append(
                f'<g class="point" data-value="{number(v, money)}"><title>{escape(tip)}</title>'
                f'<circle class="hit" cx="{x}" cy="{y}" r="7"/>{_marker(style, x, y)}</g>'
            )
        parts.append("</g>")
        if points:
            ends.append((style, points[-1][1], line.label))
    heights = _spread([y for _, y, _ in ends], TOP + 4, TOP + PLOT_HEIGHT)
    for (style, _, label), y in zip(ends, heights, strict=True):
        x = LEFT + PLOT_WIDTH + 10
        parts.append(
            f'<g class="series s{style} name">{_marker(style, x, y)}'
            f'<text class="line-label" x="{x + 8}" y="{y + 4}">{escape(label)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _axes(buckets: Sequence[Bucket], top: float, step: float, money: bool) -> list[str]:
    """The y grid with its numbers, the x axis with at most X_LABELS dates."""
    parts = ['<g class="axes">']
    ticks = round(top / step)
    for i in range(ticks + 1):
        value = step * i
        y = _y(value, top)
        shown = number(value, money) if money and step < 1 else number(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{y}" x2="{LEFT + PLOT_WIDTH}" y2="{y}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{shown}</text>'
        )
    bottom = TOP + PLOT_HEIGHT
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{LEFT + PLOT_WIDTH}" y2="{bottom}"/>')
    every = max(1, math.ceil(len(buckets) / X_LABELS))
    for i in range(0, len(buckets), every):
        x = _x(i + 0.5, len(buckets))
        parts.append(
            f'<line class="axis" x1="{x}" y1="{bottom}" x2="{x}" y2="{bottom + 4}"/>'
            f'<text class="tick date" x="{x}" y="{bottom + 17}" text-anchor="middle">'
            f"{escape(buckets[i].short)}</text>"
        )
    parts.append("</g>")
    return parts


def _pauses(pauses: Sequence[Pause], count: int) -> list[str]:
    """Each pause as a shaded span with a dashed left edge, the step's name above it, and why on hover."""
    parts = []
    for index, pause in enumerate(pauses):
        start, end = max(pause.start, 0.0), min(pause.end, float(count))
        if count == 0 or end < start:
            continue
        x1, x2 = _x(start, count), _x(end, count)
        label_y = TOP - 6 - 10 * (index % 2)  # two pauses close together: their words on two rows
        parts.append(
            f'<g class="pause" data-step="{escape(pause.label)}"><title>{escape(pause.detail)}</title>'
            f'<rect class="pause-span" x="{x1}" y="{TOP}" width="{max(round(x2 - x1, 2), 1.5)}" '
            f'height="{PLOT_HEIGHT}"/>'
            f'<line class="pause-edge" x1="{x1}" y1="{TOP - 4}" x2="{x1}" y2="{TOP + PLOT_HEIGHT}"/>'
            f'<text class="pause-label" x="{x1 + 3}" y="{label_y}">paused {escape(pause.label)}</text></g>'
        )
    return parts


def describe(
    buckets: Sequence[Bucket], lines: Sequence[Line], pauses: Sequence[Pause] = (), money: bool = False
) -> str:
    """The chart in words: 'From Mar 2 to Mar 31 (30 days): Sent 1,234 in all, most 99 on Mar 3; ...'."""
    if not buckets:
        return "no days"
    said = [f"From {buckets[0].full} to {buckets[-1].full}"]
    for line in lines:
        values = list(line.values[: len(buckets)])
        if not any(values):
            said.append(f"{line.label}: none")
            continue
        most = max(range(len(values)), key=lambda i: values[i])
        said.append(
            f"{line.label}: {number(sum(values), money)} in all, most {number(values[most], money)} "
            f"on {buckets[most].full}"
        )
    said.extend(pause.detail for pause in pauses)
    return "; ".join(said)
