"""Rendering: sandboxed, strict, HTML escaped, subjects on one line, text part made."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import UndefinedError
from jinja2.sandbox import SecurityError

from engine.mail.context import PreviewLinks, Subscriber, template_context
from engine.mail.render import Renderer
from engine.sequences.plan import PathKind
from tests.flow.plans import make_plan


@pytest.fixture
def renderer(tmp_path: Path) -> Renderer:
    (tmp_path / "layout.html").write_text(
        "<html><head><style>p { color: red; }</style></head><body>{% block body %}{% endblock %}"
        "<a href=\"{{ unsubscribe_url }}\">Unsubscribe</a> {{ postal_address }}</body></html>")
    (tmp_path / "hello.html").write_text(
        '{% extends "layout.html" %}{% block body %}<p>Hi {{ subscriber.name }}!</p>'
        '<p><a href="https://example.com/x">Read more</a></p>{% endblock %}')
    (tmp_path / "typo.html").write_text("<p>{{ subscriber.nmae }}</p>")
    (tmp_path / "escape.html").write_text("<p>{{ subscriber.name.__class__.__mro__ }}</p>")
    return Renderer(tmp_path)


def context(name: str) -> dict[str, object]:
    plan = make_plan()
    email = next(e for e in plan.emails() if e.path is PathKind.NURTURE)
    return template_context(plan, email, Subscriber("a@example.com", name), PreviewLinks())


def test_html_is_autoescaped_and_css_is_inlined(renderer: Renderer) -> None:
    html = renderer.html("hello.html", context("<script>alert(1)</script> & Co"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert "<script>" not in html
    assert 'style="color: red' in html


def test_subjects_are_not_html_escaped_and_stay_on_one_line(renderer: Renderer) -> None:
    subject = renderer.subject("Tips for {{ subscriber.name }}", context("Ann & Bob\r\nBcc: x@y.z"))
    assert subject == "Tips for Ann & Bob Bcc: x@y.z"
    assert "\n" not in subject and "\r" not in subject


def test_a_typo_in_a_template_fails_instead_of_sending_blanks(renderer: Renderer) -> None:
    with pytest.raises(UndefinedError):
        renderer.html("typo.html", context("Ann"))


def test_templates_cannot_reach_python_internals(renderer: Renderer) -> None:
    with pytest.raises(SecurityError):
        renderer.html("escape.html", context("Ann"))


def test_a_dicts_items_and_its_own_attributes_read_as_jinjas_sandbox_reads_them(tmp_path: Path) -> None:
    # The renderer's look-up of a plain dict's items (engine/mail/render.py, _Sandbox) must
    # answer as SandboxedEnvironment does: an item by name, a dict method before a key of
    # the same name, strict about a missing key, and still no way to Python's internals.
    from jinja2.sandbox import SandboxedEnvironment

    from engine.mail.render import make_environment

    class Fields(dict[str, str]):
        pass

    sources = {
        "item": "{{ d.city }}|{{ d['city'] }}",
        "method": "{{ d.items is callable }}|{{ d['items'] }}",
        "subclass": "{{ f.city }}",
        "missing": "{{ d.nope }}",
        "internals": "{{ d.__class__ }}",
        "default": "{{ d.nope | default('none') }}",
    }
    values = {"d": {"city": "Oslo", "items": "boots"}, "f": Fields(city="Bergen")}
    ours = make_environment(tmp_path)
    theirs = make_environment(tmp_path)
    theirs.__class__ = SandboxedEnvironment
    for name, source in sources.items():
        answers = []
        for env in (ours, theirs):
            try:
                answers.append(env.from_string(source).render(values))
            except (UndefinedError, SecurityError) as error:
                answers.append(f"{type(error).__name__}: {error}")
        assert answers[0] == answers[1], name
    assert ours.from_string(sources["item"]).render(values) == "Oslo|Oslo"
    assert ours.from_string(sources["method"]).render(values) == "True|boots"


def test_the_text_part_keeps_links_and_words(renderer: Renderer) -> None:
    plan = make_plan()
    email = next(e for e in plan.emails() if e.path is PathKind.NURTURE)
    email = type(email)(**{**email.__dict__, "template": "hello.html"})
    rendered = renderer.render(email, context("Zoë Ágnes"))
    assert "Hi Zoë Ágnes!" in rendered.text
    assert "https://example.com/x" in rendered.text
    assert "<p>" not in rendered.text


def test_bold_and_italic_text_is_written_as_plain_words() -> None:
    from engine.mail.render import html_to_text

    text = html_to_text("<p>Pack <strong>light</strong>, eat <b>well</b>: sleep <em>warm</em>.</p>")
    assert text == "Pack light, eat well: sleep warm.\n"


def test_templates_see_the_globals_under_the_context_and_leave_it_as_it_was(tmp_path: Path) -> None:
    # Renderer._run merges the globals itself instead of Template.render: the same names win.
    (tmp_path / "g.html").write_text("{% for i in range(2) %}{{ i }}{% endfor %} {{ dict }} {{ deadline }}")
    values: dict[str, object] = {"dict": "mine", "deadline": "soon"}
    assert "<body>01 mine soon</body>" in Renderer(tmp_path).html("g.html", values)
    assert values == {"dict": "mine", "deadline": "soon"}
    assert Renderer(tmp_path).subject("{{ range(3) | list | length }} {{ dict }}", values) == "3 mine"
