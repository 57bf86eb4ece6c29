"""Both shipped funnels served for real with people spread over their maps, and a recount of
where they stand straight from the tables: shared by the HTTP and browser tests of the map.

The story (two weeks of ticks from a Monday morning): in each funnel some sign up and never
confirm, some confirm and never answer, the others answer into each segment; the daemon
walks them through the nurture emails; some open and click, one unsubscribes, one buys.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.store.tables import DELIVERY, ENROLLMENT, EVENT
from tests.scheduler.harness import Harness
from tests.support.project import shipped_project
from tests.web.conftest import API_KEY, START
from tests.web.dashboard_site import PASSWORD, Dash
from tests.web.served import serve

FUNNELS = ("first-marathon", "camping-gear")
# Who answers what, per funnel: (address, answers); None: never confirms.
PEOPLE: dict[str, list[tuple[str, dict[str, str] | None]]] = {
    "first-marathon": [
        ("new1@example.com", {"experience": "new"}),
        ("new2@example.com", {"experience": "regular"}),
        ("racer1@example.com", {"experience": "racer"}),
        ("silent@example.com", {}),
        ("buyer@example.com", {"experience": "new"}),
        ("leaver@example.com", {"experience": "racer"}),
        ("unconfirmed@example.com", None),
    ],
    "camping-gear": [
        ("amateur@example.com", {"level": "amateur", "frequency": "monthly"}),
        ("pro@example.com", {"level": "pro", "frequency": "every-weekend"}),
        ("weekender@example.com", {"level": "amateur", "frequency": "every-weekend"}),
        ("quiet@example.com", {}),
        ("nobody@example.com", None),
        ("nobody2@example.com", None),
    ],
}
_PATH_STAGES = ("nurture", "sales", "customer", "winback")
_SENT = ("sent", "bounced", "unknown")


@contextmanager
def map_dashboard(db_url: str, folder: Path) -> Iterator[Dash]:
    """The shipped project served for real, with the dashboard's password set."""
    harness = Harness(
        db_url,
        shipped_project(folder / "project"),
        START,
        api_key=API_KEY,
        admin_password=PASSWORD,
        base_url="http://127.0.0.1:8000",
    )
    try:
        with serve(harness) as http:
            yield Dash(harness, http)
    finally:
        harness.close()


def tell_map_story(h: Harness) -> None:
    """Sign everyone up, confirm and answer, run two weeks; opens, clicks, an unsubscribe, a purchase."""
    for funnel, people in PEOPLE.items():
        for address, _ in people:
            h.add(address, funnel=funnel, name=address.split("@")[0])
    h.tick()  # the confirmation requests
    for funnel, people in PEOPLE.items():
        for address, answers in people:
            if answers is not None:
                h.event(address, "confirmed", funnel=funnel)
    h.run_until(START + timedelta(hours=3), every=timedelta(hours=1))  # magnets, then the surveys
    for funnel, people in PEOPLE.items():
        for address, answers in people:
            for question, answer in (answers or {}).items():
                h.event(address, "answer", funnel=funnel, question=question, answer=answer)
    h.run_until(START + timedelta(days=6), every=timedelta(hours=3))
    for delivery in h.deliveries():
        if delivery["status"] == "sent" and delivery["step"] not in ("confirm", "camp-confirm"):
            address = _address(h, delivery["subscriber_id"])
            if address.startswith(("new1", "racer1", "pro", "amateur")):
                h.event(address, "open", funnel=delivery["funnel"], step=delivery["step"])
            if address.startswith(("new1", "pro")):
                h.event(address, "click", funnel=delivery["funnel"], step=delivery["step"])
    h.event(
        "leaver@example.com", "unsubscribe", funnel="first-marathon", step=_last_step(h, "leaver@example.com")
    )
    h.event("buyer@example.com", "purchase", product="my-first-marathon", amount=149.0, currency="USD")
    h.run_until(START + timedelta(days=14), every=timedelta(hours=3))


def _address(h: Harness, subscriber_id: int) -> str:
    with h.db_engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT email FROM subscriber WHERE id = :id"), {"id": subscriber_id}
            ).scalar_one()
        )


def _last_step(h: Harness, address: str) -> str:
    sent = h.sent_steps(address)
    assert sent, f"{address} got no email"
    return sent[-1]


def recount(h: Harness, funnel: str) -> dict[str, dict[str, int]]:
    """Per email step, straight from the rows: who waits for it now, its sends and unique people."""
    found: dict[str, dict[str, int]] = {}
    with h.db_engine.connect() as conn:
        waiting = conn.execute(
            sa.select(ENROLLMENT.c.step, sa.func.count())
            .where(ENROLLMENT.c.funnel == funnel, ENROLLMENT.c.stage.in_(_PATH_STAGES))
            .group_by(ENROLLMENT.c.step)
        )
        for step, count in waiting:
            if step is not None:
                found.setdefault(step, _zero())["waiting"] = int(count)
        sent = conn.execute(
            sa.select(DELIVERY.c.step, sa.func.count())
            .where(DELIVERY.c.funnel == funnel, DELIVERY.c.status.in_(_SENT))
            .group_by(DELIVERY.c.step)
        )
        for step, count in sent:
            found.setdefault(step, _zero())["sent"] = int(count)
        people = conn.execute(
            sa.select(EVENT.c.step, EVENT.c.type, sa.func.count(sa.distinct(EVENT.c.subscriber_id)))
            .where(
                EVENT.c.funnel == funnel,
                EVENT.c.step.is_not(None),
                EVENT.c.type.in_(("open", "click", "unsubscribe")),
            )
            .group_by(EVENT.c.step, EVENT.c.type)
        )
        for step, kind, count in people:
            found.setdefault(step, _zero())[kind] = int(count)
        stages = conn.execute(
            sa.select(ENROLLMENT.c.stage, sa.func.count())
            .where(ENROLLMENT.c.funnel == funnel)
            .group_by(ENROLLMENT.c.stage)
        )
        found["stage:"] = {str(stage): int(count) for stage, count in stages}
    return found


def _zero() -> dict[str, int]:
    return {"waiting": 0, "sent": 0, "open": 0, "click": 0, "unsubscribe": 0}


def place_rows(html: str) -> dict[str, dict[str, Any]]:
    """The map page's table: key -> its cells' text, read with a plain HTML parser."""
    from html.parser import HTMLParser

    rows: dict[str, dict[str, Any]] = {}

    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.key: str | None = None
            self.cells: list[str] = []
            self.cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if tag == "tr" and "data-key" in values:
                self.key, self.cells = values["data-key"], []
                rows[str(self.key)] = {"waiting": int(values["data-waiting"] or 0), "cells": self.cells}
            elif tag in ("td", "th") and self.key is not None:
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag in ("td", "th") and self.cell is not None:
                self.cells.append(" ".join("".join(self.cell).split()))
                self.cell = None
            elif tag == "tr":
                self.key = None

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    Rows().feed(html)
    return rows
