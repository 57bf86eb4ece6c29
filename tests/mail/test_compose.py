"""Composing a live email: what the subscriber sees, what is tracked, and what a bad template says."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from engine.mail.compose import ComposeError, TemplateFileError, Tracking, compose
from engine.mail.context import Subscriber
from engine.mail.links import SignedLinks
from engine.mail.render import Renderer
from engine.sequences.plan import EmailStep, PathKind, Plan
from tests.flow.plans import make_plan

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
ANN = Subscriber("ann@example.com", "Ann Lee", fields={"company": "Acme"})
TRACKED = Tracking("https://funnel.example")


def _renderer(folder: Path, body: str) -> Renderer:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t.html").write_text(body)
    return Renderer(folder)


def _step(plan: Plan, kind: PathKind) -> EmailStep:
    return next(e for e in plan.emails() if e.path is kind)


def _compose(renderer: Renderer, kind: PathKind, subscriber: Subscriber = ANN,
             tracking: Tracking = TRACKED) -> EmailMessage:
    plan = make_plan()
    links = SignedLinks("https://funnel.example", "secret", "m1@example.com", NOW)
    outgoing = compose(plan, _step(plan, kind), subscriber, links, renderer,
                       message_id="m1@example.com", date=NOW, tracking=tracking)
    assert (outgoing.message_id, outgoing.mail_from, outgoing.rcpt_to) == (
        "m1@example.com", "t@example.com", subscriber.email)
    message = email.message_from_bytes(outgoing.data, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


BODY = '<p>Hi {{ subscriber.name }}</p><p><a href="https://example.com/read">Read</a></p>'


def test_a_nurture_email_is_personal_tracked_and_carries_list_unsubscribe(tmp_path: Path) -> None:
    message = _compose(_renderer(tmp_path, BODY), PathKind.NURTURE)
    html = _html(message)
    assert message["To"] == "Ann Lee <ann@example.com>"
    assert "Hi Ann Lee" in html
    assert "https://funnel.example/c/" in html and "https://example.com/read" not in html
    assert "https://funnel.example/o/" in html  # the open pixel
    assert message["List-Unsubscribe"].startswith("<https://funnel.example/u/")


def test_a_confirmation_carries_nothing_a_stranger_typed_and_counts_nothing(tmp_path: Path) -> None:
    message = _compose(_renderer(tmp_path, BODY), PathKind.CONFIRM)
    html = _html(message)
    assert message["To"] == "ann@example.com"
    assert "Ann" not in html
    assert 'href="https://example.com/read"' in html and "/c/" not in html and "/o/" not in html
    assert message["List-Unsubscribe"] is None


def test_tracking_can_be_switched_off(tmp_path: Path) -> None:
    message = _compose(_renderer(tmp_path, BODY), PathKind.NURTURE,
                       tracking=Tracking("https://funnel.example", clicks=False, opens=False))
    html = _html(message)
    assert 'href="https://example.com/read"' in html and "/c/" not in html and "/o/" not in html


def test_a_field_this_subscriber_lacks_says_what_the_marketer_can_write(tmp_path: Path) -> None:
    renderer = _renderer(tmp_path, "<p>{{ subscriber.fields.company }}</p>")
    assert "Acme" in _html(_compose(renderer, PathKind.NURTURE))
    with pytest.raises(ComposeError) as error:
        _compose(renderer, PathKind.NURTURE, Subscriber("bo@example.com"))
    assert str(error.value) == (
        "t.html: 'dict object' has no attribute 'company'; this subscriber lacks a value the template "
        "uses: write {{ subscriber.fields.NAME | default('') }} or give every subscriber the field"
    )
    assert not isinstance(error.value, TemplateFileError)  # the subscriber's data: it fails


@pytest.mark.parametrize(("body", "says"), [
    ('{% include "t/part-" ~ subscriber.locale ~ ".html" %}',
     "t.html: template 't/part-en.html' not found; restore the file or change the template"),
    ("<p>{{ greting }}</p>", "t.html: 'greting' is undefined; no email has that name"),
])
def test_a_render_the_files_break_is_a_template_file_error(tmp_path: Path, body: str, says: str) -> None:
    with pytest.raises(TemplateFileError) as error:
        _compose(_renderer(tmp_path, body), PathKind.NURTURE)
    assert str(error.value).startswith(says) and error.value.template == "t.html"


def test_a_template_missing_from_the_release_is_a_template_file_error(tmp_path: Path) -> None:
    renderer = Renderer.from_files(tmp_path, {"other.html": b"<p>x</p>"})
    with pytest.raises(TemplateFileError, match=r"template 't\.html' not found"):
        _compose(renderer, PathKind.NURTURE)


def test_an_address_that_cannot_be_written_into_a_message_is_a_compose_error(tmp_path: Path) -> None:
    with pytest.raises(ComposeError):
        _compose(_renderer(tmp_path, BODY), PathKind.NURTURE, Subscriber("ann@example.com\r\nBcc: x@y.z"))


def test_an_include_named_by_a_subscriber_value_renders_though_the_text_skeleton_cannot(
    tmp_path: Path
) -> None:
    renderer = _renderer(tmp_path, '{% include "part-" ~ subscriber.locale ~ ".html" %}')
    (tmp_path / "part-en.html").write_text("<p>English part</p>")
    assert "English part" in _html(_compose(renderer, PathKind.NURTURE))


_SHAPED_BODIES = [
    BODY,
    # A value just before </body>, the pixel after it; no </body> at all; a value on every line.
    '<html><body><p>Hi {{ subscriber.name }}</p>\n<a href="{{ unsubscribe_url }}">u</a>'
    "{{ subscriber.name }}</body></html>",
    "<p>{{ subscriber.name }}\n{{ subscriber.name }}</p>\nFrom {{ subscriber.name }}\n",
    '<p>Hi {{ subscriber.name }}</p>\n\n<a href="https://example.com/x">x</a>'
    ' <a href="{{ unsubscribe_url }}">u</a>',
    "<p>" + "x" * 74 + " {{ subscriber.name }} </p>\n<p>=\u201cquoted\u201d=</p>\n</body>",
]
_SHAPED_NAMES = ["Ann", "", "Zo\u00eb <b>&\"'", "From Me", "x" * 90, "a\u00a0 b", "Ann\nLee", "</body>"]


@pytest.mark.parametrize("body", _SHAPED_BODIES)
@pytest.mark.parametrize("tracking", [TRACKED, Tracking("https://funnel.example", clicks=False, opens=False),
                                      Tracking("https://funnel.example", clicks=True, opens=False)])
def test_parts_encoded_from_their_skeleton_are_the_parts_encoded_whole(
    tmp_path: Path, body: str, tracking: Tracking, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shapes compose hands build_message (after tracking and the pixel) give the bytes of the parts."""
    from engine.mail.message import BodyShape

    plan = make_plan()
    renderer = _renderer(tmp_path, body)
    links = SignedLinks("https://funnel.example", "secret", "m1@example.com", NOW)

    def composed() -> list[bytes]:
        return [compose(plan, _step(plan, kind), Subscriber("a@example.com", name), links, renderer,
                        message_id="m1@example.com", date=NOW, tracking=tracking).data
                for kind in (PathKind.NURTURE, PathKind.CONFIRM) for name in _SHAPED_NAMES]

    fast = composed()
    assert renderer.text_parts.hits > 0
    monkeypatch.setattr(BodyShape, "encode", lambda self, values: None)  # every part encoded whole
    assert composed() == fast
