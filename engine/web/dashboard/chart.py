"""The funnel chart of the dashboard: one horizontal bar per stage, drawn as inline SVG.

Pure: stage rows in, markup out. Bars are as wide as their count is to the largest
count; above each bar stand its label and, on the right, its count and its conversion
from the stage before (labels above rather than beside the bars keep the text readable
when a phone shrinks the chart); the chart has a title and a description for screen
readers. Every piece
of text is escaped, and nothing is styled inline (the page's CSP allows no inline
style): colours come from the dashboard's style sheet through classes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

WIDTH = 480  # the viewBox: the SVG itself scales to the width of its box
BAR_WIDTH = WIDTH  # the longest bar
ROW = 50  # a line of text, then the bar
TEXT_LINE = 17  # baseline of the label and the numbers, from the top of the row
BAR_TOP = 23
BAR_HEIGHT = 20
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def percent(fraction: float | None) -> str:
    """A conversion as '75.0%'; '' when there is none (the first stage, or nobody before)."""
    return "" if fraction is None else f"{fraction * 100:.1f}%"


# An email's numbers (StepCounts.as_dict's names) as the dashboard labels them; each but the
# first and the last with its rate over sent.
LABELS = {"sent": "Sent", "delivered": "Delivered", "opened": "Opened (a weak signal)",
          "clicked": "Clicked (unique people)", "unsubscribed": "Unsubscribed", "complained": "Complained",
          "bounced": "Bounced", "pending": "Waiting to be sent"}
_UNRATED = ("sent", "pending")


def figures(
    numbers: Mapping[str, Any], names: Sequence[str] = ("sent", "opened", "clicked", "unsubscribed")
) -> list[tuple[str, str, str]]:
    """An email's numbers `names` as (label, exact count, rate over sent or ''): the map's hover text
    and table, and the email page's table."""
    sent = int(numbers.get("sent", 0))
    return [
        (LABELS[name], f"{int(numbers.get(name, 0)):,}",
         "" if name in _UNRATED or not sent else percent(numbers.get(f"{name}_rate", 0.0)) or "0.0%")
        for name in names
    ]


def bar_width(count: int, largest: int) -> float:
    """How wide a bar of `count` is when the longest bar is of `largest`."""
    return 0.0 if largest <= 0 else round(BAR_WIDTH * max(count, 0) / largest, 2)


def funnel_chart(key: str, title: str, stages: Sequence[Mapping[str, Any]]) -> Markup:
    """An SVG funnel chart of `stages` ({"stage", "label", "count", "conversion"} rows).

    `key` makes the ids of the title and description unique on a page with several charts.
    """
    ident = "chart-" + _ID_UNSAFE.sub("_", key)[:80]
    largest = max((int(s["count"]) for s in stages), default=0)
    height = ROW * len(stages)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="funnel-chart" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(describe(stages))}</desc>',
    ]
    for index, stage in enumerate(stages):
        count = int(stage["count"])
        width = bar_width(count, largest)
        top = index * ROW
        value = f"{count}" + (f" · {percent(stage['conversion'])}" if stage["conversion"] is not None else "")
        parts.append(
            f'<g class="stage" data-stage="{escape(stage["stage"])}" data-count="{count}">'
            f'<text class="label" x="0" y="{top + TEXT_LINE}">{escape(stage["label"])}</text>'
            f'<text class="value" x="{WIDTH}" y="{top + TEXT_LINE}" text-anchor="end">{escape(value)}</text>'
            f'<rect class="track" x="0" y="{top + BAR_TOP}" width="{BAR_WIDTH}" height="{BAR_HEIGHT}"/>'
            f'<rect class="bar" x="0" y="{top + BAR_TOP}" width="{width:g}" height="{BAR_HEIGHT}"/>'
            "</g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def describe(stages: Sequence[Mapping[str, Any]]) -> str:
    """The chart in words: 'Signed up 120; Confirmed 90 (75.0% of the stage before); ...'."""
    said = []
    for stage in stages:
        text = f"{stage['label']} {int(stage['count'])}"
        if stage["conversion"] is not None:
            text += f" ({percent(stage['conversion'])} of the stage before)"
        said.append(text)
    return "; ".join(said) if said else "no stages"
