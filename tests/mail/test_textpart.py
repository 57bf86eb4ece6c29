"""The per-step text skeleton gives each subscriber the text that converting their own HTML gives."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from markupsafe import Markup, escape

from engine.mail.context import PreviewLinks, Subscriber, template_context
from engine.mail.message import _part
from engine.mail.render import Renderer, html_to_text
from engine.mail.textpart import _MARKER, _mark, _Marked
from engine.project.folder import Project

ROOT = Path(__file__).resolve().parents[2]
PROJECT = Project(ROOT)
PLAN = PROJECT.plan("first-marathon")
RENDERER = Renderer(PROJECT.templates_dir)
EMAILS = [e for e in PLAN.emails() if e.marketing][:6]

names = st.text(st.characters(categories=("L", "Zs"), exclude_characters="\x85\u2028\u2029"), max_size=40)


@given(name=names, email=st.sampled_from(EMAILS), token=st.text("abcdef0123456789", min_size=1, max_size=20))
def test_the_cached_text_equals_converting_the_subscribers_own_html(
    name: str, email: object, token: str
) -> None:
    from engine.sequences.plan import EmailStep

    assert isinstance(email, EmailStep)
    links = PreviewLinks(base_url=f"https://funnel.example/{token}")
    context = template_context(PLAN, email, Subscriber("ann@example.com", name), links)
    rendered = RENDERER.render(email, context, key=(PLAN.funnel, email.id, None, email.segment))
    slow = RENDERER.render(email, context)  # no key: inline and convert this subscriber's own HTML
    assert rendered.html == slow.html
    assert rendered.text == slow.text == html_to_text(rendered.html)
    # The skeleton and values each part was filled from are the part: encoded from them, the same bytes.
    assert rendered.text_shape is not None
    for part, shape in ((rendered.text, rendered.text_shape), (rendered.html, rendered.html_shape)):
        if shape is not None:
            assert _part("text/plain", part, shape) == _part("text/plain", part)


def test_a_template_whose_own_text_looks_like_a_marker_goes_the_long_way(tmp_path: Path) -> None:
    """A marker the template wrote itself, beyond the values' numbers, is no slot to fill (it
    raised IndexError in the middle of a send, for every email of the step)."""
    (tmp_path / "t.html").write_text("<p>Hello {{ subscriber.name }}, code qzfm97mfzq.</p>"
                                     '<a href="{{ unsubscribe_url }}">unsubscribe</a>')
    renderer = Renderer(tmp_path)
    email = EMAILS[0].__class__(**{**EMAILS[0].__dict__, "template": "t.html"})
    for name in ("Ann", "Bob"):
        context = template_context(PLAN, email, Subscriber("a@example.com", name), PreviewLinks())
        rendered = renderer.render(email, context, key=("f", "s"))
        assert f"Hello {name}, code qzfm97mfzq." in rendered.text
        assert rendered.html == renderer.render(email, context).html
    assert renderer.text_parts.hits == 0


def test_a_value_the_template_transforms_falls_back_to_converting_the_html(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text(
        "<p>Hello {{ subscriber.name|upper }}, {{ subscriber.name }}!</p>"
        '<a href="{{ unsubscribe_url }}">unsubscribe</a>'
    )
    renderer = Renderer(tmp_path)
    email = EMAILS[0].__class__(**{**EMAILS[0].__dict__, "template": "t.html"})
    for name in ("Ann", "Bob", "Ann"):
        context = template_context(PLAN, email, Subscriber("a@example.com", name), PreviewLinks())
        rendered = renderer.render(email, context, key=("f", "s"))
        assert rendered.text == html_to_text(rendered.html)
        assert f"Hello {name.upper()}, {name}!" in rendered.text
    assert renderer.text_parts.hits == 0 and renderer.text_parts.misses == 3


def test_values_with_markup_characters_appear_as_written() -> None:
    email = EMAILS[0]
    context = template_context(PLAN, email, Subscriber("a@example.com", "<b>Zoë</b>"), PreviewLinks())
    rendered = RENDERER.render(email, context, key=(PLAN.funnel, email.id, None, email.segment))
    assert "&lt;b&gt;Zoë&lt;/b&gt;" in rendered.html and "<b>Zoë</b>" not in rendered.html
    assert "<b>Zoë</b>" in rendered.text  # the name as typed, not bold: the text part is not HTML
    assert html.unescape(rendered.html) == html.unescape(RENDERER.render(email, context).html)


# A class or an attribute selector the CSS matches only for some subscribers: the
# cached render (key=) must inline each subscriber's own HTML, not the first one's.
_PER_SUBSCRIBER_CSS = {
    "class": (
        "<style>.gold { color: #b8860b; }</style>"
        '<p class="{{ subscriber.fields.tier }}">Hello {{ subscriber.name }}</p>'
        '<a href="{{ unsubscribe_url }}">unsubscribe</a>',
        [Subscriber("a@example.com", "Ann", fields={"tier": tier})
         for tier in ("silver", "gold", "silver", "gold")],
        "color: #b8860b",
        lambda subscriber: subscriber.fields["tier"] == "gold",
    ),
    "attribute selector": (
        "<style>p[lang=fr] { color: blue; }</style>"
        '<p lang="{{ subscriber.locale }}">Bonjour {{ subscriber.name }}</p>',
        [Subscriber("a@example.com", "Ann", locale=locale) for locale in ("en", "fr", "en", "fr")],
        "color: blue",
        lambda subscriber: subscriber.locale == "fr",
    ),
}


@pytest.mark.parametrize("case", list(_PER_SUBSCRIBER_CSS))
def test_a_value_css_can_match_is_inlined_for_each_subscriber(case: str, tmp_path: Path) -> None:
    source, subscribers, style, styled = _PER_SUBSCRIBER_CSS[case]
    (tmp_path / "t.html").write_text(source)
    renderer = Renderer(tmp_path)
    email = EMAILS[0].__class__(**{**EMAILS[0].__dict__, "template": "t.html"})
    for subscriber in subscribers:
        context = template_context(PLAN, email, subscriber, PreviewLinks())
        rendered = renderer.render(email, context, key=("f", "s"))
        assert rendered.html == renderer.render(email, context).html
        assert (style in rendered.html) is styled(subscriber)


def test_the_names_a_template_uses_include_its_layout_and_its_subject() -> None:
    survey_email = PLAN.survey.email if PLAN.survey else EMAILS[0]
    names = RENDERER.names(survey_email.template, survey_email.subject)
    assert names is not None and "survey" in names and "unsubscribe_url" in names  # the footer's
    nurture = RENDERER.names(EMAILS[0].template, "{{ subscriber.first_name }}, hi")
    assert nurture is not None and "survey" not in nurture and "subscriber" in nurture


def test_the_cached_text_part_is_plain_and_shows_a_personal_link_once(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text(
        "<h1>Hi <b>{{ subscriber.first_name }}</b></h1><ul><li>one</li></ul><p></p><p></p>"
        '<p><a href="{{ unsubscribe_url }}">{{ unsubscribe_url }}</a> '
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    )
    renderer = Renderer(tmp_path)
    email = EMAILS[0].__class__(**{**EMAILS[0].__dict__, "template": "t.html"})
    for token in ("a1", "b2"):
        links = PreviewLinks(base_url=f"https://funnel.example/{token}")
        ann = Subscriber("a@example.com", "Ann Lee", given_first_name="Ann")
        context = template_context(PLAN, email, ann, links)
        rendered = renderer.render(email, context, key=("f", "s"))
        url = f"https://funnel.example/{token}/u/preview-{email.id}"
        assert rendered.text == f"Hi Ann\n\n- one\n\n{url} Unsubscribe ({url})\n"
        assert rendered.text == html_to_text(rendered.html)
    assert renderer.text_parts.hits == 2 and renderer.text_parts.misses == 0  # one skeleton for both


_MARKED_PIECES = ["a", "qzfm", "mfzq", "qzfm0mfzq", "qzfm1mfzq", "qzfm12mfzq", "qzfmmfzq", "1"]


@given(st.lists(st.sampled_from(_MARKED_PIECES)).map("".join))
def test_a_skeleton_is_filled_in_as_the_marker_regex_would(text: str) -> None:
    values = [f"<{i}>" for i in range(13)]
    assert _Marked(text).fill(values) == _MARKER.sub(lambda m: values[int(m[1])], text)


def plain_mark(value: object, values: list[str], shape: list[object]) -> object:
    """_mark as one recursive function: what its inlined strings of a dict must equal."""
    if isinstance(value, str):
        shape.append(bool(value) if type(value) is str else (type(value), bool(value)))
        if not value:
            return value
        values.append(value)
        return f"qzfm{len(values) - 1}mfzq"
    if isinstance(value, dict):
        shape.append((type(value), *value))
        return {k: plain_mark(v, values, shape) for k, v in value.items()}
    if isinstance(value, list):
        shape.append((type(value), len(value)))
        return [plain_mark(v, values, shape) for v in value]
    shape.append((type(value), value))
    return value


_contexts = st.recursive(
    st.text(max_size=5) | st.text(max_size=3).map(Markup) | st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=5),
    max_leaves=30,
)


@given(_contexts)
def test_marking_a_context_is_the_plain_recursive_marking(value: object) -> None:
    values: list[str] = []
    shape: list[object] = []
    plain_values: list[str] = []
    plain_shape: list[object] = []
    assert _mark(value, values, shape) == plain_mark(value, plain_values, plain_shape)
    assert (values, shape) == (plain_values, plain_shape)


def _typed(value: object) -> object:
    """`value` with each part's type beside it: 1, 1.0 and True are equal, and not written alike."""
    if isinstance(value, dict):
        return type(value), [(k, _typed(v)) for k, v in value.items()]
    if isinstance(value, list):
        return type(value), [_typed(v) for v in value]
    return type(value), value


_small = st.recursive(
    st.sampled_from(["", "a", "b", Markup(""), Markup("m"), 0, 1, True, False, None, 2.5]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("kj"), inner, max_size=2),
    max_leaves=5,
)


@given(_small, _small)
@example(Markup(""), "")
@example(1, "a")
@example([True], ["a"])
def test_values_of_one_shape_differ_only_in_their_non_empty_strings(one: object, other: object) -> None:
    """The skeleton key's promise (textpart._mark): equal shapes, equal marked values, types and all."""
    shapes: list[list[object]] = [[], []]
    marked = [_mark(value, [], shape) for value, shape in zip((one, other), shapes, strict=True)]
    if shapes[0] == shapes[1]:
        assert _typed(marked[0]) == _typed(marked[1])


class _Shown(str):
    """A str that says how it is shown in HTML, as Markup does: escape() takes its word for it."""

    def __html__(self) -> str:
        return f"<i>{self}</i>"


_ESCAPABLE = st.lists(st.sampled_from(["a", "é", "&", "<", ">", "'", '"', "&amp;", "\u2019"]), max_size=12)


@given(st.lists(st.one_of(
    _ESCAPABLE.map("".join),
    st.lists(st.sampled_from(["a", "<b>", "&", "'"]), max_size=6).map("".join).map(Markup),
    _ESCAPABLE.map("".join).map(_Shown),
), max_size=8))
def test_values_escaped_fast_are_what_markupsafe_writes(values: list[str]) -> None:
    """Plain values without markup characters are kept as they are; the rest go through escape()."""
    from engine.mail.textpart import _escaped

    fast = _escaped(values)
    assert len(fast) == len(values)
    for value, written in zip(values, fast, strict=True):
        assert str(written) == str(escape(value))
