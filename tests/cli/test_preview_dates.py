"""`preview` and `simulate` show dated emails as the subscriber will read them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from tests.cli.conftest import Cli

DATED = ('{% extends "layout.html" %}{% block body %}<p>Hi {{ subscriber.first_name }}, the offer '
         "ends {{ deadline(days=3) | date('weekday') }}.</p>{% endblock %}")


def test_preview_writes_the_deadline_in_the_given_locale_zone_and_time(project: Path, tmp_path: Path) -> None:
    (project / "templates" / "t" / "o2.html").write_text(DATED)
    cli = Cli(project, f"sqlite:///{tmp_path / 'unused.db'}")
    data = {"locale": "de", "timezone": "Europe/Berlin", "sent_at": "2026-12-09 23:30"}
    result = cli("preview", "minimal", "o2", "--data", json.dumps(data))
    assert result.exit_code == 0, result.output
    assert "the offer ends Samstag, 12. Dezember." in result.stdout
    result = cli("preview", "minimal", "o2", "--data", json.dumps({"sent_at": "2026-12-09T23:30:00-05:00"}))
    assert "the offer ends Sunday, December 13." in result.stdout  # English in UTC by default
    bad = cli("preview", "minimal", "o2", "--data", '{"sent_at": "next friday"}')
    assert bad.exit_code != 0 and "'sent_at' is not a date and time: 'next friday'" in bad.output


def test_simulate_dates_each_subject_when_it_is_sent(project: Path, tmp_path: Path) -> None:
    yaml = project / "sequences" / "minimal.yaml"
    subject = "subject: \"Ends {{ deadline(days=1) | date('EEEE d MMMM') }}\","
    yaml.write_text(yaml.read_text().replace("subject: O1,", subject))
    cli = Cli(project, f"sqlite:///{tmp_path / 'unused.db'}")
    result = cli("simulate", "minimal", "--start", "2026-03-02T09:00:00+00:00", "--json")
    assert result.exit_code == 0, result.output
    (row,) = [r for r in json.loads(result.stdout) if r["step"] == "o1"]
    assert row["subject"].startswith("Ends ") and row["at"].startswith("2026-")
    sent = datetime.fromisoformat(row["at"])
    assert row["subject"] == f"Ends {(sent + timedelta(days=1)).strftime('%A %-d %B')}"
