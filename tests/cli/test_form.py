"""`funnel form`: the printed form parses, hides its honeypot, and signs a person up on the real app."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from engine.store.tables import CONSENT, SUBSCRIBER
from engine.web.signup_form import HONEYPOT
from tests.cli.conftest import Cli, table_rows
from tests.scheduler.harness import Harness
from tests.support.databases import sqlite_database
from tests.web.served import serve

BASE_URL = "https://funnel.example"
CONSENT_TEXT = "Send me “The guide” and emails from Minimal funnel. Unsubscribe at any time."


@dataclass
class Input:
    """One <input>: its attributes, the label pointing at it, whether an ancestor hides it."""

    attrs: dict[str, str | None]
    label: str = ""
    hidden_by: list[dict[str, str | None]] = field(default_factory=list)


class _FormReader(HTMLParser):
    """The <form> tag, its inputs by name, its labels and its visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, str | None]] = []
        self.inputs: dict[str, Input] = {}
        self.labels: dict[str, str] = {}
        self.texts: list[str] = []
        self.tags: list[str] = []
        self._open: list[tuple[str, dict[str, str | None]]] = []
        self._label_for: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append(tag)
        if tag == "form":
            self.forms.append(values)
        if tag == "input":
            hiding = [a for _, a in self._open if a.get("aria-hidden") == "true"]
            self.inputs[str(values["name"])] = Input(values, hidden_by=hiding)
            return  # a void element: never closed
        if tag == "label":
            self._label_for = values.get("for")
        self._open.append((tag, values))

    def handle_endtag(self, tag: str) -> None:
        assert self._open and self._open[-1][0] == tag, f"</{tag}> closes <{self._open[-1][0]}>"
        self._open.pop()
        if tag == "label":
            self._label_for = None

    def handle_data(self, data: str) -> None:
        if self._label_for is not None:
            self.labels[self._label_for] = self.labels.get(self._label_for, "") + data
        if data.strip():
            self.texts.append(data.strip())


def _read(html: str) -> _FormReader:
    reader = _FormReader()
    reader.feed(html)
    reader.close()
    assert reader._open == [], "every element is closed"
    for item in reader.inputs.values():
        item.label = reader.labels.get(str(item.attrs.get("id")), "")
    return reader


def test_the_form_posts_to_subscribe_with_the_funnel_and_its_magnet(sqlite_cli: Cli) -> None:
    result = sqlite_cli("form", "minimal", FUNNEL_BASE_URL=BASE_URL + "/")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    form = _read(result.stdout)
    assert form.forms == [{"method": "post", "action": f"{BASE_URL}/subscribe", "accept-charset": "UTF-8"}]
    assert form.inputs["funnel"].attrs == {"type": "hidden", "name": "funnel", "value": "minimal"}
    assert form.inputs["magnet"].attrs == {"type": "hidden", "name": "magnet", "value": "guide"}
    email = form.inputs["email"]
    assert email.attrs["type"] == "email" and "required" in email.attrs
    assert email.attrs["autocomplete"] == "email" and email.label == "Email"
    name = form.inputs["first_name"]  # greeted by it; no name order guessed (Kiss Dóra)
    assert "required" not in name.attrs and name.label == "First name (optional)"
    assert name.attrs["autocomplete"] == "given-name"
    assert not email.hidden_by and not name.hidden_by
    assert CONSENT_TEXT in form.texts
    assert "button" in form.tags
    assert not any(n.startswith("utm_") or n == "source" for n in form.inputs)


def test_the_honeypot_is_hidden_from_people_and_labelled(sqlite_cli: Cli) -> None:
    result = sqlite_cli("form", "minimal")
    honeypot = _read(result.stdout).inputs[HONEYPOT]
    assert honeypot.attrs["tabindex"] == "-1"
    assert honeypot.attrs["autocomplete"] == "off"
    assert honeypot.attrs["aria-hidden"] == "true"
    assert "required" not in honeypot.attrs
    assert honeypot.label == "Leave this empty"
    assert any("left:-10000px" in str(parent.get("style")) for parent in honeypot.hidden_by)


def test_the_default_base_url_gets_a_note_on_stderr_only(sqlite_cli: Cli) -> None:
    result = sqlite_cli("form", "minimal")
    assert result.exit_code == 0, result.output
    assert "base_url" in result.stderr
    assert _read(result.stdout).forms[0]["action"] == "http://127.0.0.1:8000/subscribe"


def test_action_replaces_the_settings_url(sqlite_cli: Cli) -> None:
    result = sqlite_cli("form", "minimal", "--action", "https://mail.example.com/subscribe?a=1&b=2")
    assert result.exit_code == 0, result.output
    assert "?a=1&amp;b=2" in result.stdout
    assert _read(result.stdout).forms[0]["action"] == "https://mail.example.com/subscribe?a=1&b=2"
    assert result.stderr == ""


def test_an_action_that_is_not_a_web_address_is_refused(sqlite_cli: Cli) -> None:
    result = sqlite_cli("form", "minimal", "--action", "mail.example.com/subscribe")
    assert result.exit_code == 2
    assert "'mail.example.com/subscribe' is not a web address" in result.stderr


def test_names_and_titles_from_the_sequence_file_are_escaped(sqlite_cli: Cli, project: Path) -> None:
    path = project / "sequences" / "minimal.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("name: Minimal funnel", """name: 'Tom & "Jerry" <b>Co</b>'""")
    text = text.replace("title: The guide", """title: '</small><script>alert(1)</script>'""")
    path.write_text(text, encoding="utf-8")
    result = sqlite_cli("form", "minimal")
    assert result.exit_code == 0, result.output
    form = _read(result.stdout)
    assert "script" not in form.tags and "b" not in form.tags
    assert ("Send me “</small><script>alert(1)</script>” and emails from "
            """Tom & "Jerry" <b>Co</b>. Unsubscribe at any time.""") in form.texts


def test_an_unknown_funnel_says_which_was_meant(sqlite_cli: Cli) -> None:
    result = sqlite_cli("form", "minimla")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "no funnel named 'minimla'; did you mean 'minimal'?" in result.stderr


def test_an_unknown_magnet_says_which_was_meant(sqlite_cli: Cli) -> None:
    result = sqlite_cli("form", "minimal", "--magnet", "guid")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "funnel 'minimal' has no lead magnet 'guid'; did you mean 'guide'?" in result.stderr


def test_funnel_help_lists_form(sqlite_cli: Cli) -> None:
    assert "  form " in sqlite_cli("--help").stdout


def _filled(html: str, **typed: str) -> tuple[str, dict[str, str]]:
    """(path, fields) as a browser would post the form: every input's value, then what was typed."""
    form = _read(html)
    fields = {name: str(item.attrs.get("value") or "") for name, item in form.inputs.items()}
    return urlsplit(str(form.forms[0]["action"])).path, {**fields, **typed}


def test_posting_the_printed_form_signs_up_and_goes_to_the_thank_you_page(
    sqlite_cli: Cli, project: Path, tmp_path: Path
) -> None:
    html = sqlite_cli("form", "minimal", FUNNEL_BASE_URL=BASE_URL).stdout
    path, fields = _filled(html, email="ann@example.com", name="Ann")
    (tmp_path / "served").mkdir()
    with sqlite_database(tmp_path / "served") as url:
        harness = Harness(url, project, datetime(2026, 3, 2, 9, tzinfo=UTC), base_url=BASE_URL)
        try:
            with serve(harness) as client:
                answer = client.post(path, data=fields, headers={"Accept": "text/html"})
                trapped = client.post(path, data={**fields, "email": "bot@example.com",
                                                  HONEYPOT: "http://spam.example"})
            assert answer.status_code == 303, answer.text
            assert answer.headers["location"] == "https://example.com/thanks"
            assert trapped.status_code == 303  # a bot is answered as a person, and nothing is kept
            subscribers = table_rows(harness.db_engine, SUBSCRIBER.name)
            assert [(s["email"], s["name"]) for s in subscribers] == [("ann@example.com", "Ann")]
            consent = table_rows(harness.db_engine, CONSENT.name)
            assert [(c["kind"], c["funnel"], c["wording"]) for c in consent] == [
                ("signup", "minimal", CONSENT_TEXT)]
        finally:
            harness.close()
