"""The text part reads like a plain email a person wrote: one test per rule, and the shipped emails pinned.

The shipped funnels' text parts are pinned in tests/data/textparts/<funnel>.txt.
Regenerate after a deliberate change with `UPDATE_GOLDENS=1 pytest tests/mail/test_plaintext.py`
and review the diff.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.mail.context import SAMPLE, PreviewLinks, template_context
from engine.mail.plaintext import html_to_text
from engine.mail.render import Renderer
from engine.project.folder import Project
from tests.support.links import hrefs

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "data" / "textparts"
FUNNELS = ("camping-gear", "first-marathon")
SENT_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
URL = re.compile(r"https?://[^\s()]*[^\s().,;:!?\"]")  # less a sentence's full stop


def page(body: str) -> str:
    return f"<html><head><title>T</title><style>p {{ color: red; }}</style></head><body>{body}</body></html>"


def test_bold_italic_and_underline_leave_no_marks() -> None:
    text = html_to_text(page("<p><strong>Big</strong> and <b>bold</b>, "
                             "<em>soft</em> <i>it</i> <u>under</u>.</p>"))
    assert text == "Big and bold, soft it under.\n"


def test_headings_are_their_own_paragraph_without_hashes() -> None:
    text = html_to_text(page("<h1>Two questions</h1><p>Hi,</p><h2>How often?</h2><h3><b>Once</b></h3>"))
    assert text == "Two questions\n\nHi,\n\nHow often?\n\nOnce\n"


def test_lists_use_a_dash_or_a_number_at_the_line_start() -> None:
    text = html_to_text(page("<p>Pack:</p><ul><li>tent</li><li>stove<ul><li>gas</li></ul></li></ul>"
                             "<ol><li>pitch</li><li>cook</li></ol><p>Done.</p>"))
    assert text == "Pack:\n\n- tent\n- stove\n  - gas\n\n1. pitch\n2. cook\n\nDone.\n"


def test_never_more_than_one_blank_line_and_no_trailing_spaces() -> None:
    text = html_to_text(page("<p>One</p><ul><li>a</li></ul><div><div><p>Two<br>three</p></div></div>"
                             "<p></p><p>&nbsp;</p><br><br><br><p>Four</p>"))
    assert "\n\n\n" not in text and not re.search(r" +\n", text)
    assert text == "One\n\n- a\n\nTwo\nthree\n\nFour\n"


def test_a_link_with_text_shows_its_text_then_the_url_in_brackets() -> None:
    text = html_to_text(page('<p>Read <a href="https://blog.example/post?a=1&amp;b=2">the post</a>'
                             " today.</p>"))
    assert text == "Read the post (https://blog.example/post?a=1&b=2) today.\n"


def test_a_link_whose_text_is_its_url_shows_it_once() -> None:
    text = html_to_text(page('<p>Log in at <a href="https://learn.example/login">https://learn.example/login</a>.'
                             ' Or write to <a href="mailto:coach@example.com">coach@example.com</a>.</p>'))
    assert text == "Log in at https://learn.example/login. Or write to coach@example.com.\n"


def test_a_link_without_text_shows_its_url_and_a_page_anchor_shows_nothing() -> None:
    text = html_to_text(page('<p><a href="https://shop.example/"><img src="x.png"></a> '
                             '<a href="#top">Back to top</a></p>'))
    assert text == "https://shop.example/ Back to top\n"


def test_an_image_is_its_alt_text_or_nothing() -> None:
    text = html_to_text(page('<p><img src="https://cdn.example/logo.png" alt="Trailhead Outfitters"></p>'
                             '<p>Hi<img src="https://cdn.example/spacer.gif"> there</p>'
                             '<p><a href="https://shop.example/"><img src="b.png" alt="Shop now"></a></p>'))
    assert text == "Trailhead Outfitters\n\nHi there\n\nShop now (https://shop.example/)\n"


def test_entities_are_decoded_and_nothing_is_backslash_escaped() -> None:
    text = html_to_text(page("<p>Tom &amp; Jerry &middot; caf&eacute; &#8212; 5&nbsp;km "
                             "&lt;b&gt; &quot;x&quot;</p><p>1. first</p><p>- dash</p><p>+ plus</p>"
                             "<p>a_b*c* \\ [x](y) # not a heading</p>"))
    assert text == ('Tom & Jerry · café — 5\xa0km <b> "x"\n\n1. first\n\n- dash\n\n+ plus\n\n'
                    "a_b*c* \\ [x](y) # not a heading\n")


def test_code_strikethrough_and_layout_tables_are_plain_text() -> None:
    text = html_to_text(page("<p><code>npm i</code> <del>old</del> new</p>"
                             "<table><tr><td>Left</td><td>Right</td></tr><tr><th>Next</th></tr></table><hr><p>End</p>"))
    assert text == "npm i old new\n\nLeft Right\nNext\n\n---\n\nEnd\n"


def _text_parts(funnel: str) -> tuple[str, list[list[str]]]:
    project = Project(ROOT)
    plan = project.plan(funnel)
    renderer = Renderer(project.templates_dir)
    links = PreviewLinks("https://funnel.example")
    texts, linked = [], []
    for email in plan.emails():
        context = template_context(plan, email, SAMPLE, links, sent_at=SENT_AT)
        rendered = renderer.render(email, context, key=(plan.funnel, email.id, None, email.segment))
        texts.append(f"==== {email.id}\n{rendered.text}")
        linked.append(hrefs(rendered.html))
    return "\n".join(texts), linked


@pytest.mark.parametrize("funnel", FUNNELS)
def test_the_shipped_emails_text_parts_are_pinned_and_read_as_plain_email(funnel: str) -> None:
    text, linked = _text_parts(funnel)
    expected = GOLDEN / f"{funnel}.txt"
    if os.environ.get("UPDATE_GOLDENS"):
        expected.parent.mkdir(exist_ok=True)
        expected.write_text(text, encoding="utf-8")
    assert text == expected.read_text(encoding="utf-8")
    emails = text.split("==== ")[1:]
    assert len(emails) > 20
    for email, hrefs_ in zip(emails, linked, strict=True):
        assert "**" not in email and "__" not in email and "\\" not in email
        assert not re.search(r"^\s*(#|\*|\+) ", email, re.M), email
        assert "\n\n\n" not in email and not re.search(r"[ \t]+$", email, re.M)
        assert not re.search(r"&[a-z]+;|&#\d+;", email)
        assert not re.search(r"\[\d+\]|\]\(", email)  # no Markdown link syntax
        # Each link shows its URL once: a URL shows as often as the HTML links to it.
        urls = URL.findall(email)
        assert urls and sorted(urls) == sorted(h for h in hrefs_ if h.startswith("http")), email
