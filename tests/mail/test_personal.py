"""A template proven to write the personal values as they are gives, from its skeleton alone, today's email.

`Today` is the renderer with the proof switched off: every email rendered and compared
with its skeleton. The proven renderer must give the same Rendered (or the same error)
for any template, any subscriber.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.mail.personal import Chain
from engine.mail.render import Rendered, Renderer
from engine.project.folder import Project

ROOT = Path(__file__).resolve().parents[2]
PLAN = Project(ROOT).plan("first-marathon")
EMAIL = replace(next(e for e in PLAN.emails() if e.marketing), template="t.html",
                subject="Hi {{ subscriber.first_name or 'you' }}")
KEY = ("f", "s")


class Today(Renderer):
    """The renderer as it was: no template is proven, every email is rendered and compared."""

    def _chains(self, template: str) -> tuple[Chain, ...] | None:
        return None


class Counted(Renderer):
    """The renderer, keeping every context it renders the email's template with."""

    def __init__(self, templates_dir: Path, files: dict[str, bytes]) -> None:
        super().__init__(templates_dir, files)
        self.contexts: list[dict[str, Any]] = []

    def _raw(self, template: str, context: dict[str, Any]) -> str:
        self.contexts.append(context)
        return super()._raw(template, context)

    def rendered(self, context: dict[str, Any]) -> bool:
        """Whether this very context was rendered: the email itself, not a skeleton."""
        return any(seen is context for seen in self.contexts)


def _proven(source: str, **files: str) -> bool:
    renderer = Renderer.from_files(ROOT, {"t.html": source.encode(), **{
        f"{name}.html": text.encode() for name, text in files.items()}})
    return renderer._chains("t.html") is not None


@pytest.mark.parametrize("source", [
    "<p>Hi {{ subscriber.first_name }}</p>",
    "{{ subscriber['email'] }} {{ subscriber.fields.city }} {{ unsubscribe_url }} {{ confirm_url }}",
    "{{ subscriber.first_name or 'there' }} {{ subscriber.fields.nick or subscriber.name or vars.x }}",
    "{% if vars.flag %}{{ subscriber.name }}{% endif %}",
    "{% for x in vars.items %}{{ subscriber.name }}{% endfor %}",
    "{% extends 'layout.html' %}{% block body %}{{ subscriber.name }}{% endblock %}",
    "{% include 'layout.html' %}",
    "{{ vars.price | money('EUR') }} {% set n = vars.x %}{{ n | upper }}",  # filters on the step's own values
    # What the engine tells a marketer to write for a field some subscribers lack.
    "{{ subscriber.fields.city | default('') }} {{ subscriber.fields.nick | d('friend', true) }}",
    # Branches that read only the truth or presence of a value, which the skeleton's key fixes.
    "{% if subscriber.first_name %}Dear {{ subscriber.first_name }}{% else %}Hi{% endif %}",
    "{% if not subscriber.fields.city is defined %}x"
    "{% elif subscriber.name and not subscriber.email %}y{% endif %}",
    "{{ subscriber.first_name if subscriber.first_name else 'there' }}"
    "{{ 'x' if subscriber.fields.a is none }}",
])
def test_outputs_of_personal_values_as_they_are_are_proven(source: str) -> None:
    assert _proven(source, layout="<p>{{ subscriber.locale }}</p>{% block body %}{% endblock %}")


@pytest.mark.parametrize("source", [
    "{{ subscriber.name | upper }}",
    "{{ subscriber.name | e }}",
    "{{ subscriber.name | length }}",
    "{{ 'A' if subscriber.name == 'Ann' else 'B' }}",
    "{% if subscriber.name == 'Ann' %}A{% endif %}",
    "{% if subscriber.name | length %}A{% endif %}",
    "{% if subscriber.name is sameas vars.x %}A{% endif %}",
    "{{ subscriber.name | default(subscriber.email) }}",
    "{{ subscriber.name | default('') | upper }}",
    "{{ subscriber.name | default(vars.x) }}",
    "{{ subscriber.first_name and 'x' }}",
    "{{ not subscriber.first_name }}",
    "{{ subscriber.name ~ '!' }}",
    "{{ subscriber.name.upper() }}",
    "{{ vars[subscriber.name] }}",
    "{{ subscriber.fields[vars.key] }}",
    "{% set n = subscriber.name %}{{ n }}",
    "{% with n = subscriber.name %}{{ n }}{% endwith %}",
    "{% for c in subscriber.name %}{{ c }}{% endfor %}",
    "{% for subscriber in vars.items %}{{ subscriber }}{% endfor %}",
    "{% set unsubscribe_url = vars.x %}{{ unsubscribe_url }}",
    "{% set x %}{{ subscriber.name }}{% endset %}{{ x | upper }}",
    "{% filter upper %}{{ subscriber.name }}{% endfilter %}",
    "{% macro m(v) %}{{ v }}{% endmacro %}{{ m(vars.x) }}",
    "{% import 'layout.html' as l %}",
    "{% autoescape false %}{{ subscriber.name }}{% endautoescape %}",
    "{{ self.body() | upper }}{% block body %}{{ subscriber.name }}{% endblock %}",
    "{% for q in survey.questions %}{{ q.text }}{% endfor %}{{ subscriber.name }}",
    "{{ [1, 2] | random }}",
    "{{ lipsum(1) }}",
    "{% for x in vars.items recursive %}{{ loop(x.children) | upper }}{% endfor %}",
    "{{ sent_at | date }}",
    "{% include vars.name %}",
    "{% extends 'layout.html' %}",  # the layout reads a value another way
])
def test_any_other_use_of_them_is_not_proven(source: str) -> None:
    assert not _proven(source, layout="{{ subscriber.locale | upper }}")


def test_a_template_without_autoescaping_is_not_proven() -> None:
    files = {"t.txt": b"<p>{{ subscriber.name }}</p>"}
    proven, today = Renderer.from_files(ROOT, files), Today.from_files(ROOT, files)
    email = replace(EMAIL, template="t.txt")
    for name in ("Ann", "a & <b>"):  # written as it is: no escaping to fill in
        context = {"subscriber": {"name": name, "first_name": ""}, "survey": {"questions": []},
                   "unsubscribe_url": "u"}
        assert _parts(proven.render(email, context, key=KEY)) == _parts(today.render(email, context, key=KEY))
    assert proven._chains("t.txt") is None


# The grammar of the property below: pieces a template is made of, each with whether the
# static check must refuse it (True), may refuse it per skeleton (None: what it reaches
# is not a string, '' or int, bool, None), or must prove it (False).
_PIECES: list[tuple[str, bool | None]] = [
    ("<p>Fish &amp; chips, ", False),
    ("{{ subscriber.name }}", False),
    ("{{ subscriber.first_name or 'there' }}", False),
    ("{{ subscriber.fields.nick or subscriber.name or vars.reader }}", False),
    ("{{ subscriber['email'] }}", False),
    ("{{ subscriber.fields.city }}", False),  # missing for some subscribers: the same error
    ("{{ subscriber.fields.count }}", False),  # a string, int, bool or None
    ('<a href="{{ unsubscribe_url }}">{{ unsubscribe_url }}</a>', False),
    ("{{ vars.reader }} {{ vars['items'] | length }}", False),
    ("{% if vars.flag %}<b>{{ subscriber.name }}</b>{% else %}{{ vars.reader }}{% endif %}", False),
    ("{% for item in vars['items'] %}<li>{{ item }}: {{ subscriber.first_name }}</li>{% endfor %}", False),
    ('<p class="{{ subscriber.fields.count }}">x</p>', False),  # a value CSS may match
    ("{{ subscriber.name | upper }}", True),
    ("{{ subscriber.name | length }}", True),
    ("{% if subscriber.first_name %}Dear {{ subscriber.first_name }}{% endif %}", False),
    ("{{ subscriber.fields.city | default('') }}", False),  # missing for some: written as ''
    ("{{ subscriber.fields.nick | d('friend', true) }}", False),
    ("{% if subscriber.fields.city is defined %}in {{ subscriber.fields.city }}{% endif %}", None),
    ("{{ 'VIP' if subscriber.fields.count else vars.reader }}", None),  # missing for some: an error
    ("{% if not subscriber.first_name %}Hi{% elif subscriber.fields.count is none %}n{% endif %}", None),
    ("{% if subscriber.fields.tags %}t{% endif %}", None),  # a list
    ("{% if subscriber.name == 'Ann' %}Ann!{% endif %}", True),
    ("{{ 'Ann!' if subscriber.name == 'Ann' else 'Hi' }}", True),
    ("{% set n = subscriber.name %}{{ n }}", True),
    ("{% for c in subscriber.name %}{{ c }}.{% endfor %}", True),
    ("{{ subscriber.name ~ '!' }}", True),
    ("{% set x %}{{ subscriber.name }}{% endset %}{{ x | length }}", True),
    ("{% filter length %}{{ subscriber.name }}{% endfilter %}", True),
    ("{{ subscriber.fields }}", None),  # a dict, written by repr
    ("{{ subscriber.fields.tags }}", None),  # a list
    ("{{ subscriber.fields.ratio }}", None),  # a float: 0.0 and -0.0
    ("{{ subscriber.fields.pair[0] }}", None),  # inside a tuple: (1,) and (True,) are equal
    ("{{ subscriber.name[0] }}", None),  # a piece of a value
    ("{{ vars.marker }}", None),  # the step's own text that looks like a marker
]
_AT = {text: i for i, (text, _) in enumerate(_PIECES)}
_STYLES = ["", "<style>p { color: red; }</style>", "<style>p[class=x] { color: blue; }</style>"]
_VALUES = st.sampled_from(["", "Ann", "O'Brien", "<b>Zoë</b>", "a & b", '"q"', "  two  spaces ",
                           "Łukasz", "qzfm1mfzq", "0"]) | st.text(max_size=6)
_MISSING = object()


@st.composite
def _subscribers(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, values in (
        ("city", _VALUES),
        ("nick", _VALUES),
        ("count", _VALUES | st.sampled_from([0, 1, True, False, None, -5])),
        ("tags", st.lists(_VALUES, max_size=2)),
        ("ratio", st.sampled_from([0.0, -0.0, 1.5])),
        ("pair", st.sampled_from([(1,), (True,), ("x",)])),
    ):
        value = draw(st.just(_MISSING) | values)
        if value is not _MISSING:
            fields[name] = value
    return {"email": draw(_VALUES), "name": draw(_VALUES), "first_name": draw(_VALUES),
            "locale": draw(st.sampled_from(["en", "fr"])), "fields": fields}


def _outcome(renderer: Renderer, context: dict[str, Any]) -> tuple[object, ...]:
    """What render gives, comparable: its parts and shapes, or its error."""
    try:
        rendered = renderer.render(EMAIL, context, key=KEY)
    except Exception as error:  # compared: the same kind and text either way
        return type(error), str(error)
    return _parts(rendered)


def _parts(rendered: Rendered) -> tuple[object, ...]:
    shapes = [None if s is None else (s[0].pieces, s[0].slots, [str(v) for v in s[1]])
              for s in (rendered.html_shape, rendered.text_shape)]
    return rendered.subject, rendered.html, rendered.text, shapes


@given(
    pieces=st.lists(st.sampled_from(range(len(_PIECES))), min_size=1, max_size=6),
    footer=st.sampled_from(range(len(_PIECES))),
    layout=st.booleans(),
    style=st.sampled_from(_STYLES),
    flag=st.booleans(),
    items=st.lists(st.sampled_from(["one", "<two>"]), max_size=2),
    subscribers=st.lists(_subscribers(), min_size=1, max_size=4),
    url=st.sampled_from(["https://x.example/u/a1", "https://x.example/u/b?c=1&d=2"]),
)
@example(pieces=[_AT["{{ subscriber.name }}"], _AT["{{ subscriber.first_name or 'there' }}"]], footer=0,
         layout=True, style="", flag=True, items=[], url="https://x.example/u/a1",
         subscribers=[{"email": "a@x", "name": "Ann", "first_name": "", "locale": "en", "fields": {}}] * 2)
# Values a shape without types would not tell apart: a non-empty string, 1 and True.
@example(pieces=[_AT["{{ subscriber.fields.count }}"], _AT["{{ subscriber.name }}"]], footer=0,
         layout=False, style="", flag=True, items=[], url="https://x.example/u/a1",
         subscribers=[{"email": "", "name": "Ann", "first_name": "", "locale": "en",
                       "fields": {"count": count}} for count in ("many", 1, True, 1)])
# Floats whose shapes are equal and whose texts are not.
@example(pieces=[_AT["{{ subscriber.fields.ratio }}"]], footer=0,
         layout=False, style="", flag=True, items=[], url="https://x.example/u/a1",
         subscribers=[{"email": "", "name": "", "first_name": "", "locale": "en",
                       "fields": {"ratio": ratio}} for ratio in (0.0, -0.0)])
@example(pieces=[_AT["{{ subscriber.fields.pair[0] }}"]], footer=0,
         layout=False, style="", flag=True, items=[], url="https://x.example/u/a1",
         subscribers=[{"email": "", "name": "", "first_name": "", "locale": "en",
                       "fields": {"pair": pair}} for pair in ((1,), (True,))])
def test_a_proven_template_renders_what_rendering_each_email_gives(
    pieces: list[int], footer: int, layout: bool, style: str, flag: bool, items: list[str],
    subscribers: list[dict[str, Any]], url: str,
) -> None:
    body = "".join(_PIECES[i][0] for i in pieces)
    if layout:
        files = {"layout.html": f'<html lang="{{{{ subscriber.locale }}}}">{style}<body>{{% block body %}}'
                                f'{{% endblock %}}<footer>{_PIECES[footer][0]}</footer></body></html>',
                 "t.html": f"{{% extends 'layout.html' %}}{{% block body %}}{body}{{% endblock %}}"}
        used = [*pieces, footer]
    else:
        files = {"t.html": style + body}
        used = pieces
    encoded = {name: text.encode() for name, text in files.items()}
    proven, today = Counted(ROOT, encoded), Today.from_files(ROOT, encoded)
    step = {"vars": {"flag": flag, "items": items, "reader": "Reader & co", "marker": "qzfm0mfzq"},
            "survey": {"questions": []}, "confirm_url": "", "locale": "en"}
    refused = [_PIECES[i][1] for i in used]
    for subscriber in subscribers:
        context = {**step, "subscriber": subscriber, "unsubscribe_url": url}
        outcome = _outcome(proven, context)
        assert outcome == _outcome(today, context)
        if not any(r is None or r for r in refused) and not isinstance(outcome[0], type):
            # Nothing only a skeleton can refuse: the email is its skeleton filled in, not rendered.
            assert not proven.rendered(context)
    assert (proven._chains("t.html") is None) == any(refused)


def test_the_email_is_not_rendered_once_its_skeleton_is_made() -> None:
    renderer = Counted(ROOT, {"t.html": b"<p>Hi {{ subscriber.first_name or 'there' }}</p>"})
    for name in ("Ann", "Bob", "", "Cy", "Di"):
        context = {"subscriber": {"first_name": name}, "survey": {"questions": []}, "unsubscribe_url": "u"}
        assert renderer.render(EMAIL, context, key=KEY).text == f"Hi {name or 'there'}\n"
        assert not renderer.rendered(context)
    # Two skeletons (a name, no name), each rendered twice (its markers shifted once).
    assert len(renderer.contexts) == 4 and renderer.text_parts.hits == 5


def test_a_missing_value_raises_what_rendering_the_email_raises() -> None:
    files = {"t.html": b"<p>{{ subscriber.fields.city }}</p>"}
    context = {"subscriber": {"fields": {}}, "survey": {"questions": []}, "unsubscribe_url": "u"}
    errors = []
    for renderer in (Renderer.from_files(ROOT, files), Today.from_files(ROOT, files)):
        with pytest.raises(Exception) as raised:
            renderer.render(EMAIL, context, key=KEY)
        errors.append((type(raised.value), str(raised.value)))
    assert errors[0] == errors[1] and "city" in errors[0][1]


class _Falsy(str):
    """A str that is false however long: `or` reads its truthiness, which the shape must hold."""

    def __bool__(self) -> bool:
        return False


def test_a_str_of_another_kind_is_rendered_not_filled_in() -> None:
    files = {"t.html": b"<p>Hi {{ subscriber.first_name or 'there' }}</p>"}
    proven, today = Renderer.from_files(ROOT, files), Today.from_files(ROOT, files)
    for name in ("Ann", _Falsy("Bob")):
        context = {"subscriber": {"first_name": name}, "survey": {"questions": []}, "unsubscribe_url": "u"}
        assert _parts(proven.render(EMAIL, context, key=KEY)) == _parts(today.render(EMAIL, context, key=KEY))
    assert "Hi there" in proven.render(EMAIL, context, key=KEY).text
