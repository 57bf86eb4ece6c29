"""A render the files break is logged once per template and release a batch, with how many it held."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.scheduler.harness import Harness
from tests.support.project import magnet_with_a_part_per_locale, minimal_project

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the minimal funnel's window: weekdays 08:00-11:00


def test_emails_held_for_their_files_are_logged_once_a_batch_with_their_count(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = minimal_project(tmp_path / "project")
    magnet_with_a_part_per_locale(project)
    h = Harness(db_url, project, MONDAY)
    try:
        people = [f"p{i}@example.com" for i in range(3)]
        for address in people:
            h.add(address, locale="hu")
            h.event(address, "confirmed", funnel="minimal")
        release = h.daemon.live.current.release.id
        for _ in range(2):  # the first try, then the retry 10 minutes later: one line each
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="funnel"):
                h.tick()
            held = [r for r in caplog.records if r.getMessage() == "render_held"]
            assert len(held) == 1 and held[0].levelno == logging.WARNING
            fields = held[0].fields  # type: ignore[attr-defined]
            assert (fields["template"], fields["release"], fields["held"], fields["steps"]) == (
                "t/magnet.html", release, 3, ["minimal/magnet"])
            assert "template 't/part-hu.html' not found" in fields["error"]
            assert "held emails go once a release that renders them is live" in fields["fix"]
            replies = [d["last_reply"] for d in h.deliveries() if d["step"] == "magnet"]
            reason = "held: t/magnet.html: template 't/part-hu.html' not found"
            assert len(replies) == 3 and all(str(r).startswith(reason) for r in replies)
            h.clock.advance(timedelta(minutes=10))
    finally:
        h.close()
