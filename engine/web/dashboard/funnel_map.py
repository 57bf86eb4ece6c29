"""The funnel map of the dashboard: each funnel drawn from its sequence file as inline SVG, with
how many people stand at each place now and each email's rates.

Pure: a FunnelMap (engine/stats/mapdata.py) in, markup out; map_layout.py places the
nodes. As in chart.py, every piece of text is escaped and nothing is styled inline (the
dashboard's CSP allows no inline style): colours come from the style sheet through classes.
Education and sale emails differ in more than colour: a round badge with an E against a
diamond with a $, and a sale's box has a heavy dashed border (transactional emails have a
square badge with a T). Each email is a link to its page (numbers and a preview); its exact
numbers are in its <title> (shown on hover) and in the table the page puts beside the map.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

from engine.sequences.plan import Role
from engine.stats.mapdata import FunnelMap, Kind, Place
from engine.web.dashboard.chart import figures
from engine.web.dashboard.emails import email_href
from engine.web.dashboard.map_layout import MARGIN, NODE_HEIGHT, NODE_WIDTH, Box, layout

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
NAME_CHARS = 26  # what fits the node's first line at its font size; the whole name is in the title
ROLE_WORDS = {Role.EDUCATION: "education", Role.SALE: "sale", Role.TRANSACTIONAL: "transactional"}
# The badge of each role: its letter and its shape, so that the role reads without colour.
BADGES = {Role.EDUCATION: "E", Role.SALE: "$", Role.TRANSACTIONAL: "T"}


def short(text: str, limit: int = NAME_CHARS) -> str:
    """`text` cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rate(value: Any) -> str:
    """A rate as the map's small print has room for: '41%', '5.2%', '0%'."""
    if value is None:
        return "-"
    share = float(value) * 100
    return f"{share:.0f}%" if share >= 10 or share == 0 else f"{share:.1f}%"


def funnel_map(found: FunnelMap) -> Markup:
    """The SVG map of one funnel."""
    ident = "map-" + _ID_UNSAFE.sub("_", found.funnel)[:80]
    drawn = layout(found)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="funnel-map" viewBox="0 0 {drawn.width:g} '
        f'{drawn.height:g}" aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(f"Map of the funnel {found.name}")}</title>',
        f'<desc id="{ident}-desc">{escape(describe(found))}</desc>',
        "<defs>",
        f'<marker id="{ident}-arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path class="m-arrow" d="M0 0 L8 4 L0 8 z"/></marker>',
        "</defs>",
    ]
    for line in drawn.lines:
        kind = "m-edge purchase" if line.purchase else "m-edge"
        title = f"<title>{escape('on a purchase')}</title>" if line.purchase else ""
        parts.append(
            f'<path class="{kind}" d="{line.path}" marker-end="url(#{ident}-arrow)" '
            f'data-from="{escape(line.source)}" data-to="{escape(line.target)}">{title}</path>'
        )
    # After the lines: a heading's halo (the style sheet's paint-order) hides the lines behind it.
    for heading in drawn.headings:
        parts.append(f'<text class="m-heading" x="{MARGIN}" y="{heading.y:g}">{escape(heading.text)}</text>')
    for box in drawn.boxes:
        parts.append(node(found.funnel, box))
    parts.append("</svg>")
    return Markup("".join(parts))


def node(funnel: str, box: Box) -> str:
    """One place: an email as a link to its step, the others as a plain group."""
    place, x, y = box.place, box.x, box.y
    classes = f"m-node {place.kind.value}"
    data = f'data-key="{escape(place.key)}" data-waiting="{place.waiting}"'
    if place.kind is Kind.EMAIL and place.email is not None:
        role = place.email.role
        numbers = place.numbers
        sent = int(numbers.get("sent", 0))
        data += f' data-role="{role.value}" data-sent="{sent}"'
        first = f"{place.waiting:,} waiting · {sent:,} sent"
        if numbers.get("paused"):  # a guardrail (or a person) holds it: say so in words, not colour
            classes, first = classes + " paused", f"PAUSED · {first}"
        second = (
            (
                f"open {rate(numbers.get('opened_rate'))} · click {rate(numbers.get('clicked_rate'))} · "
                f"unsub {int(numbers.get('unsubscribed', 0)):,}"
            )
            if sent
            else "nothing sent yet"
        )
        return (
            f'<a class="{classes} {role.value}" href="{escape(email_href(funnel, place.key))}" {data}>'
            f"<title>{escape(hover(place))}</title>"
            f'<rect class="m-box" x="{x:g}" y="{y:g}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/>'
            f"{badge(role, x, y)}"
            f'<text class="m-name" x="{x + 34:g}" y="{y + 18:g}">{escape(short(place.label))}</text>'
            f'<text class="m-count" x="{x + 34:g}" y="{y + 34:g}">{escape(first)}</text>'
            f'<text class="m-rates" x="{x + 34:g}" y="{y + 48:g}">{escape(second)}</text>'
            "</a>"
        )
    radius = NODE_HEIGHT / 2 if place.kind in (Kind.SIGNUP, Kind.END, Kind.WAIT) else 6
    words = {Kind.SIGNUP: "signed up", Kind.SEGMENT: "in it now"}.get(place.kind, "here now")
    return (
        f'<g class="{classes}" {data}>'
        f"<title>{escape(hover(place))}</title>"
        f'<rect class="m-box" x="{x:g}" y="{y:g}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" '
        f'rx="{radius:g}"/><text class="m-name" x="{box.centre:g}" y="{y + 22:g}" text-anchor="middle">'
        f"{escape(short(place.label, NAME_CHARS + 4))}</text>"
        f'<text class="m-count" x="{box.centre:g}" y="{y + 40:g}" text-anchor="middle">'
        f"{escape(f'{place.waiting:,} {words}')}</text>"
        "</g>"
    )


def badge(role: Role, x: float, y: float) -> str:
    """The role's mark at the node's left: a circle (education), a diamond (sale), a square."""
    cx, cy = x + 17, y + NODE_HEIGHT / 2
    if role is Role.SALE:
        shape = (
            f'<path class="m-badge" d="M{cx:g} {cy - 12:g} L{cx + 12:g} {cy:g} L{cx:g} {cy + 12:g} '
            f'L{cx - 12:g} {cy:g} z"/>'
        )
    elif role is Role.EDUCATION:
        shape = f'<circle class="m-badge" cx="{cx:g}" cy="{cy:g}" r="10"/>'
    else:
        shape = f'<rect class="m-badge" x="{cx - 9:g}" y="{cy - 9:g}" width="18" height="18"/>'
    return (
        f'<g class="m-mark" aria-hidden="true">{shape}<text class="m-letter" x="{cx:g}" y="{cy + 4:g}" '
        f'text-anchor="middle">{BADGES[role]}</text></g>'
    )


def hover(place: Place) -> str:
    """The exact numbers of a place, for its <title>: one fact a line."""
    lines = []
    if place.email is not None:
        lines.append(f"{place.key} ({ROLE_WORDS[place.email.role]} email): {place.email.subject}")
        if place.numbers.get("paused"):
            lines.append(f"Paused: {place.numbers.get('paused_detail') or 'by a person'}")
    else:
        lines.append(place.label)
    lines.append(
        f"Here now: {place.waiting:,} ({place.waiting_means})"
        if place.waiting_means
        else f"Here now: {place.waiting:,}"
    )
    if place.email is not None:
        lines += [
            f"{label}: {count}" + (f" ({rate})" if rate else "")
            for label, count, rate in figures(place.numbers)
        ]
        lines.append("Click to open its page: its numbers and a preview")
    return "\n".join(lines)


def describe(found: FunnelMap) -> str:
    """The map in words, for screen readers: each place and who is there."""
    said = []
    for place in found.places:
        what = f"{ROLE_WORDS[place.email.role]} email {place.key}" if place.email else place.label
        said.append(f"{what}: {place.waiting:,}")
    return f"{found.name}, top to bottom. " + "; ".join(said)
