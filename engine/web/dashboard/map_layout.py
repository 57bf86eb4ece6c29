"""Where each place of the funnel map stands: a small deterministic top-down layout.

One column (lane) per segment, rows in the sequence file's order. The entry (magnets,
confirmation, the magnets' emails, the survey) and the win-back stand across the lanes,
centred; within a segment's band (nurture, sales, customer) each lane stacks its own
emails, and every band starts on the same row in every lane so that "Sales" reads as one
line across the map. Top-down rather than left to right: a funnel of 25 emails per
segment is long, and a phone scrolls down, not sideways; two lanes fit its width.

Pure: a FunnelMap in, boxes and lines in viewBox units out. Same input, same picture.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.sequences.plan import PathKind
from engine.stats.mapdata import Band, FunnelMap, Kind, Place

NODE_WIDTH = 232
NODE_HEIGHT = 54
LANE = 256  # a lane's width: the node and a gutter on its right for purchase lines
ROW = 76  # a node and the gap under it, where the arrow runs
HEADING = 34  # a band's heading line
MARGIN = 12


@dataclass(frozen=True)
class Box:
    """A place and the top-left corner of its node."""

    place: Place
    x: float
    y: float

    @property
    def centre(self) -> float:
        """The horizontal middle of the node."""
        return self.x + NODE_WIDTH / 2


@dataclass(frozen=True)
class Line:
    """An edge as an SVG path, and whether it is taken on a purchase only."""

    path: str
    purchase: bool
    source: str
    target: str


@dataclass(frozen=True)
class Heading:
    """A band's heading, at its baseline."""

    text: str
    y: float


@dataclass(frozen=True)
class Layout:
    """The whole map in viewBox units."""

    width: float
    height: float
    boxes: tuple[Box, ...]
    lines: tuple[Line, ...]
    headings: tuple[Heading, ...]


# Bands whose places stand one under the other in their segment's lane.
_LANED = (Band.NURTURE, Band.SALES, Band.CUSTOMER)


def layout(found: FunnelMap) -> Layout:
    """Every place of `found` with its position, the edges between them and the band headings."""
    rows = _shared_rows(found)
    lanes = [lane for lane, _ in found.lanes] or [""]
    columns = max([len(lanes), *(len(r) for r in rows)])
    width = columns * LANE + 2 * MARGIN
    lane_x = {lane: _start(width, len(lanes)) + i * LANE for i, lane in enumerate(lanes)}
    headings = dict(found.headings)
    boxes: list[Box] = []
    y = float(MARGIN)
    for row in rows:  # the entry's rows, centred; then one row of segment heads, one in each lane
        boxes += _centred(row, width, y)
        y += ROW
    heads = [p for p in found.places if p.band is Band.SEGMENTS]
    boxes += [Box(p, lane_x.get(p.lane or "", _start(width, 1)), y) for p in heads]
    y += ROW if heads else 0
    heading_rows: list[Heading] = []
    for band in _LANED:
        placed = [p for p in found.places if p.band is band]
        if not placed:
            continue
        if band in headings:
            heading_rows.append(Heading(headings[band], y + HEADING - 12))
            y += HEADING
        depth = 0
        for lane in lanes:
            column = [p for p in placed if (p.lane or "") == lane]
            boxes += [Box(p, lane_x[lane], y + i * ROW) for i, p in enumerate(column)]
            depth = max(depth, len(column))
        y += depth * ROW
    for band in (Band.WINBACK, Band.ENDED):
        placed = [p for p in found.places if p.band is band]
        if placed and band in headings:
            heading_rows.append(Heading(headings[band], y + HEADING - 12))
            y += HEADING
        for place in placed:
            boxes += _centred([place], width, y)
            y += ROW
    where = {b.place.key: b for b in boxes}
    lines = tuple(
        _line(where[e.source], where[e.target], e.purchase)
        for e in found.edges
        if e.source in where and e.target in where
    )
    return Layout(width, y - ROW + NODE_HEIGHT + MARGIN, tuple(boxes), lines, tuple(heading_rows))


def _shared_rows(found: FunnelMap) -> list[list[Place]]:
    """The entry band's rows: the magnets' forms share one row, their emails another; every
    other place of the entry has a row of its own."""
    rows: list[list[Place]] = []
    last = ""
    for place in (p for p in found.places if p.band is Band.ENTRY):
        sort = _sort(place)
        if rows and sort and sort == last:
            rows[-1].append(place)
        else:
            rows.append([place])
        last = sort
    return rows


def _sort(place: Place) -> str:
    """What makes places share a row: '' for a place that stands alone."""
    if place.kind is Kind.SIGNUP:
        return "signup"
    if place.email is not None and place.email.path in (PathKind.MAGNET, PathKind.CONFIRM):
        return place.email.path.value  # the confirmation and its resend side by side
    return ""


def _start(width: float, count: int) -> float:
    """The x of the first of `count` lanes centred in `width`."""
    return (width - count * LANE) / 2 + (LANE - NODE_WIDTH) / 2


def _centred(row: list[Place], width: float, y: float) -> list[Box]:
    left = _start(width, len(row))
    return [Box(place, left + i * LANE, y) for i, place in enumerate(row)]


def _line(source: Box, target: Box, purchase: bool) -> Line:
    """From the bottom of `source` to the top of `target`; a purchase runs down the lane's gutter."""
    if purchase:
        gutter = source.x + NODE_WIDTH + (LANE - NODE_WIDTH) / 2 - 2
        mid_s, mid_t = source.y + NODE_HEIGHT / 2, target.y + NODE_HEIGHT / 2
        path = f"M{source.x + NODE_WIDTH:g} {mid_s:g} H{gutter:g} V{mid_t:g} H{target.x + NODE_WIDTH + 4:g}"
        return Line(path, True, source.place.key, target.place.key)
    x1, y1, x2, y2 = source.centre, source.y + NODE_HEIGHT, target.centre, target.y - 4
    if x1 == x2:
        path = f"M{x1:g} {y1:g} V{y2:g}"
    else:
        bend = (y1 + y2) / 2
        path = f"M{x1:g} {y1:g} C{x1:g} {bend:g} {x2:g} {bend:g} {x2:g} {y2:g}"
    return Line(path, False, source.place.key, target.place.key)
