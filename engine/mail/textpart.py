"""The inlined HTML and plain-text part of an email, worked out once per step instead of per subscriber.

html2text costs about 3.4 ms for a 3 KB email here, against 0.4 ms for the Jinja
render and CSS inlining together: converted per message it would cap sending near
250 emails a second on one core. But the emails of one step differ only in the
subscriber's values and the signed links. So the step is rendered once more with a
marker in place of each of those values, that skeleton is converted, and each
subscriber's text is the skeleton with the markers replaced. The shortcut is taken
only when it is exact: the subscriber's real HTML must equal the skeleton HTML with
the markers replaced by the (escaped) values, which proves the template used each
value as is (no filter, no condition on it). Otherwise the HTML is converted as usual.
For a template that personal.py proves writes each value as it is, the proof is made
once per template and skeleton instead, and the subscriber's HTML is not rendered at
all (`proven_parts`: ~25 µs an email less). CSS inlining (0.2 ms) is shared the same
way when no value sits where a CSS rule could see it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from markupsafe import escape

from engine.mail.message import BodyShape, Shaped
from engine.mail.personal import PERSONAL
from engine.mail.plaintext import html_to_text

_MARKER = re.compile(r"qzfm(\d+)mfzq")
_CACHE_LIMIT = 4096


def _mark(value: Any, values: list[str], shape: list[object]) -> Any:
    """`value` with every non-empty string replaced by a marker; `shape` records what was kept.

    Two values with equal shapes differ only in their non-empty strings: the shape holds each
    dict's keys, each list's length, which strings are empty and every other value, each with
    its type (1, 1.0, True and a non-empty string would be equal entries without it, and
    render differently). A plain str's entry is a bool, the common case kept cheap.
    """
    if isinstance(value, str):
        shape.append(bool(value) if type(value) is str else (type(value), bool(value)))
        if not value:
            return value
        values.append(value)
        return f"qzfm{len(values) - 1}mfzq"
    if isinstance(value, dict):
        shape.append((type(value), *value))
        marked = {}
        for key, item in value.items():
            # The subscriber's dict is mostly strings: marked here, not by a call each.
            if type(item) is str:
                shape.append(bool(item))
                if item:
                    values.append(item)
                    item = f"qzfm{len(values) - 1}mfzq"
                marked[key] = item
            else:
                marked[key] = _mark(item, values, shape)
        return marked
    if isinstance(value, list):
        shape.append((type(value), len(value)))
        return [_mark(v, values, shape) for v in value]
    shape.append((type(value), value))
    return value


def _marked(context: dict[str, Any], values: list[str]) -> tuple[dict[str, Any], tuple[object, ...]]:
    """The context's personal values marked, numbered on from len(values), and their shape.

    Only the personal values are marked (in PERSONAL's order, which numbers the markers);
    `{**context, **marked}` is the context the skeleton is rendered with.
    """
    shape: list[object] = []
    marked = {k: _mark(context[k], values, shape) for k in PERSONAL if k in context}
    # In the survey, only each answer's link is personal; questions and labels are the step's.
    survey = context["survey"]
    if survey["questions"]:
        survey = {**survey, "questions": [
            {**q, "answers": [{**a, "url": _mark(a["url"], values, shape)} for a in q["answers"]]}
            for q in survey["questions"]]}
    marked["survey"] = survey
    return marked, tuple(shape)


class _Marked:
    """A text with markers, split once at them, so that filling it in is a join, not a regex.

    `fill(values)` is `_MARKER.sub(lambda m: values[int(m[1])], text)`: ~3 µs for a 3 KB
    skeleton instead of ~11, three times an email.
    """

    __slots__ = ("_shape", "pieces", "slots")

    def __init__(self, text: str) -> None:
        split = _MARKER.split(text)  # text, number, text, ..., text
        self.pieces = split[0::2]
        self.slots = [int(n) for n in split[1::2]]
        self._shape: BodyShape | None = None

    def shape(self) -> BodyShape:
        """The text as message.py encodes it, its fixed lines encoded once (made when first asked)."""
        if self._shape is None:
            self._shape = BodyShape(self.pieces, self.slots)
        return self._shape

    def fill(self, values: list[str]) -> str:
        """The text with each marker replaced by its value."""
        pieces = self.pieces
        out = [pieces[0]]
        for slot, piece in zip(self.slots, pieces[1:], strict=True):
            out.append(values[slot])
            out.append(piece)
        return "".join(out)


@dataclass(frozen=True)
class _Skeleton:
    raw: _Marked  # the Jinja output with markers
    html: _Marked | None  # the same, CSS inlined; None when inlining may depend on a value
    text: _Marked
    proven: bool  # raw filled in is each email's Jinja output: no need to render it (proven_parts)


def _inline_safe(raw: str) -> bool:
    """Whether inlining cannot depend on the marked values.

    CSS matches elements by name, class and id, and by any attribute only through
    attribute selectors (`[lang=fr]`) or `:lang()`. So a value may sit in text, in an
    href, and, when the styles use neither of those, in any attribute but class and id.
    A value inside <style> could change the rules themselves.
    """
    styles = _STYLE.findall(raw)
    if any(_MARKER.search(block) for block in styles):
        return False
    any_attribute_matters = any("[" in block or ":lang(" in block for block in styles)
    for tag in _TAG.findall(raw):
        if not _MARKER.search(tag):
            continue
        if any_attribute_matters and _MARKER.search(_HREF.sub("", tag)):
            return False
        if any(_MARKER.search(value) for value in _CLASS_OR_ID.findall(tag)):
            return False
    return True


_STYLE = re.compile(r"<style\b.*?</style\s*>", re.S | re.I)
_TAG = re.compile(r"<[^>]*>")
_HREF = re.compile(r"""\shref\s*=\s*("[^"]*"|'[^']*')""", re.I)
_CLASS_OR_ID = re.compile(r"""\s(?:class|id)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.I)


def _escaped(values: list[str]) -> list[str]:
    """Each value as MarkupSafe's escape writes it: the value itself when it holds nothing to escape.

    escape() builds a Markup (a str subclass made in Python) for every value: ~0.5 µs each,
    and the subscriber's dict alone holds a dozen strings. A plain str without &, <, >, '
    or " comes out of it the same text; anything else (a Markup, which escape() leaves
    as it is, a value to escape) goes through escape(). Markup is a str, joined as it is.
    """
    return [value if type(value) is str and not (
        "&" in value or "<" in value or ">" in value or "'" in value or '"' in value)
        else escape(value) for value in values]


# (inlined HTML, text part, the HTML's skeleton and values, the text's)
Parts = tuple[str, str, Shaped | None, Shaped | None]


class TextParts:
    """The inlined HTML and the text part of a step's emails, from a per-step skeleton.

    What `parts` gives equals converting each subscriber's own HTML, except that values
    appear exactly as written in the text (the converter would fold runs of spaces in
    them) and escaped by MarkupSafe in the HTML (css-inline's serializer may write the
    same characters another equivalent way). A link is compared with its text in the
    skeleton, marker to marker: `<a href="{{ unsubscribe_url }}">{{ unsubscribe_url }}</a>`
    shows the URL once either way.
    """

    def __init__(self) -> None:
        # None: the key's emails have no skeleton (it cannot be rendered, or holds a stray
        # marker); remembered so that each of them does not try again.
        self._skeletons: dict[tuple[object, ...], _Skeleton | None] = {}
        self.hits = 0
        self.misses = 0

    def parts(self, key: tuple[object, ...], context: dict[str, Any], raw_html: str,
              render: Callable[[dict[str, Any]], str], inline: Callable[[str], str]) -> tuple[str, str]:
        """(inlined HTML, text part) of `raw_html`, which is `render(context)`."""
        html, text, _, _ = self.shaped_parts(key, context, raw_html, render, inline)
        return html, text

    def shaped_parts(self, key: tuple[object, ...], context: dict[str, Any], raw_html: str,
                     render: Callable[[dict[str, Any]], str], inline: Callable[[str], str],
                     ) -> Parts:
        """`parts`, with the skeleton and values each part was filled from (None when not from one)."""
        values: list[str] = []
        marked, shape = _marked(context, values)
        skeleton = self._skeleton((*key, shape), context, marked, len(values), render, inline, None)
        escaped = _escaped(values)
        if skeleton is None or skeleton.raw.fill(escaped) != raw_html:
            self.misses += 1
            html = inline(raw_html)
            return html, html_to_text(html), None, None
        return self._filled(skeleton, values, escaped, inline, raw_html)

    def proven_parts(self, key: tuple[object, ...], context: dict[str, Any],
                     render: Callable[[dict[str, Any]], str], inline: Callable[[str], str],
                     prove: Callable[[dict[str, Any]], bool]) -> Parts | None:
        """`shaped_parts` without the subscriber's own HTML, for a template personal.py proved.

        `prove(marked context)` checks once per skeleton that each personal value the
        template writes is one the skeleton writes right (personal.written_as_leaves).
        None when the skeleton is not proven, or cannot be rendered: the caller renders the
        subscriber's HTML (raising its error, if that fails too) and calls shaped_parts.
        """
        values: list[str] = []
        marked, shape = _marked(context, values)
        skeleton = self._skeleton((*key, shape), context, marked, len(values), render, inline, prove)
        if skeleton is None or not skeleton.proven:
            return None
        return self._filled(skeleton, values, _escaped(values), inline, None)

    def _filled(self, skeleton: _Skeleton, values: list[str], escaped: list[str],
                inline: Callable[[str], str], raw_html: str | None) -> Parts:
        """The parts from the skeleton; `raw_html` is its raw part filled in, when made already."""
        self.hits += 1
        text = skeleton.text.fill(values)
        text_shape = (skeleton.text.shape(), values)
        if skeleton.html is None:
            if raw_html is None:
                raw_html = skeleton.raw.fill(escaped)
            return inline(raw_html), text, None, text_shape
        return skeleton.html.fill(escaped), text, (skeleton.html.shape(), escaped), text_shape

    def _skeleton(self, key: tuple[object, ...], context: dict[str, Any], marked: dict[str, Any],
                  count: int, render: Callable[[dict[str, Any]], str], inline: Callable[[str], str],
                  prove: Callable[[dict[str, Any]], bool] | None) -> _Skeleton | None:
        """The skeleton of `key`, made from the marked context (`count` markers) when not made yet.

        None when it cannot be rendered (a value used as more than text, say an include's
        name). `prove` given, the skeleton is proven when it passes and (_shifted) when the
        markers in its output are exactly the ones the values put there.
        """
        if key in self._skeletons:
            return self._skeletons[key]
        skeleton = self._made(context, marked, count, render, inline, prove)
        if len(self._skeletons) >= _CACHE_LIMIT:
            self._skeletons.clear()
        self._skeletons[key] = skeleton
        return skeleton

    @staticmethod
    def _made(context: dict[str, Any], marked: dict[str, Any], count: int,
              render: Callable[[dict[str, Any]], str], inline: Callable[[str], str],
              prove: Callable[[dict[str, Any]], bool] | None) -> _Skeleton | None:
        """A new skeleton from the marked context; None when there is none (see `_skeleton`)."""
        try:
            raw_skeleton = render({**context, **marked})
        except Exception:
            return None
        raw = _Marked(raw_skeleton)
        if any(slot >= count for slot in raw.slots):
            # The step's own text holds a marker that no value put there ("qzfm9mfzq"): filling
            # it would take a value that is not there. Each email goes the long way.
            return None
        inlined = inline(raw_skeleton)
        proven = (prove is not None and prove({**context, **marked})
                  and _shifted(raw, count, context, render))
        return _Skeleton(raw, _Marked(inlined) if _inline_safe(raw_skeleton) else None,
                         _Marked(html_to_text(inlined)), proven)


def _shifted(raw: _Marked, count: int, context: dict[str, Any],
             render: Callable[[dict[str, Any]], str]) -> bool:
    """Whether every marker in `raw` is one of the `count` values', not text of the step's own.

    A template or a var that happens to contain "qzfm0mfzq" would be filled in with a
    subscriber's value. Rendered once more with the markers numbered from `count` on,
    the values' markers move by `count` and such text does not.
    """
    if any(slot >= count for slot in raw.slots):
        return False
    marked, _ = _marked(context, [""] * count)
    try:
        shifted = _Marked(render({**context, **marked}))
    except Exception:
        return False
    return shifted.pieces == raw.pieces and shifted.slots == [slot + count for slot in raw.slots]
