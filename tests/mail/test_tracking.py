"""Click and open tracking: which links go through the daemon, and that each still leads where it did."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import css_inline
from hypothesis import example, given
from hypothesis import strategies as st
from markupsafe import escape

from engine.mail.context import PreviewLinks
from engine.mail.links import SignedLinks
from engine.mail.render import html_to_text
from engine.mail.tokens import verify
from engine.mail.tracking import _A_TAG, MAX_URL_CHARS, _substitute, track
from tests.support.links import hrefs

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BASE = "https://funnel.example"
MESSAGE_ID = "3f2a9c1b@funnel.example"
LINKS = SignedLinks(BASE, "secret", MESSAGE_ID, NOW)
C0_AND_SPACE = "".join(map(chr, range(0x21)))


def clicked(link: str) -> str | None:
    """The URL a /c/ link sends the browser on to; None when it is not a valid click link."""
    if not link.startswith(f"{BASE}/c/"):
        return None
    values = verify("secret", "click", link.rsplit("/", 1)[1], NOW, timedelta(days=1))
    assert values is not None and values[0] == MESSAGE_ID
    return values[1]


def tracked(body: str) -> tuple[str, str]:
    html = f"<html><head></head><body>{body}</body></html>"
    return track(html, html_to_text(html), LINKS, BASE)


def test_web_links_go_through_the_daemon_in_the_html_and_the_text() -> None:
    html, text = tracked('<p><a href="https://shop.example/course">Get the course</a> or '
                         '<a href="http://blog.example/post">read</a>.</p>')
    assert [clicked(h) for h in hrefs(html)] == ["https://shop.example/course", "http://blog.example/post"]
    for href in hrefs(html):
        assert text.count(href) == 1
    assert f"Get the course ({hrefs(html)[0]}) or read ({hrefs(html)[1]})." in text
    assert "shop.example" not in text and "blog.example" not in text


def test_a_link_whose_text_is_its_url_is_shown_once_in_the_text_tracked() -> None:
    html, text = tracked('<p>Log in at <a href="https://learn.example/login">https://learn.example/login</a></p>')
    [href] = hrefs(html)
    assert clicked(href) == "https://learn.example/login"
    assert text == f"Log in at {href}\n" and "learn.example" not in text
    assert ">https://learn.example/login</a>" in html  # what the reader sees is unchanged


def test_the_daemons_own_links_and_other_schemes_are_left_alone() -> None:
    body = (f'<a href="{BASE}/u/TOKEN">Unsubscribe</a> <a href="{BASE}/confirm/TOKEN">Confirm</a> '
            f'<a href="{BASE}/a/TOKEN">New</a> <a href="mailto:coach@example.com">Write</a> '
            '<a href="tel:+3612345678">Call</a> <a href="#top">Top</a> <a href="/relative">Rel</a> '
            '<a href="javascript:alert(1)">x</a> <a name="anchor">no href</a> <a href>empty</a>')
    html, text = tracked(body)
    assert hrefs(html) == hrefs(f"<body>{body}</body>")
    assert "/c/" not in html and "/c/" not in text


def test_a_host_that_only_starts_like_the_base_url_is_not_the_daemons() -> None:
    html, _ = tracked('<a href="https://funnel.example.com/page">x</a>')
    assert [clicked(h) for h in hrefs(html)] == ["https://funnel.example.com/page"]


def test_entities_in_an_href_are_decoded_as_a_browser_decodes_them() -> None:
    cases = {
        "https://shop.example/?a=1&amp;b=2": "https://shop.example/?a=1&b=2",
        "https://shop.example/?a=1&#38;b=2&#x26;c=3": "https://shop.example/?a=1&b=2&c=3",
        # A bare legacy name before '=' or a letter stays literal in an attribute value:
        # browsers follow '&copy=2', where html.unescape would write '©=2'.
        "https://shop.example/?a=1&copy=2&notit": "https://shop.example/?a=1&copy=2&notit",
        "https://shop.example/?q=&quot;shoes&quot;&amp": 'https://shop.example/?q="shoes"&',
    }
    for written, followed in cases.items():
        html, _ = tracked(f'<a href="{written}">x</a>')
        assert [clicked(h) for h in hrefs(html)] == [followed], written


def test_quoting_case_and_attribute_order_do_not_matter() -> None:
    body = ("<a href='https://one.example/'>1</a>"
            "<a class=button href=https://two.example/>2</a>"
            '<A TITLE="a > b" HREF = "https://three.example/">3</A>'
            '<a data-href="https://not-this.example/" href="https://four.example/">4</a>'
            '<a title="href=https://not-this.example/" href="https://five.example/">5</a>'
            '<a href=" https://six.example/\n">6</a>'
            '<abbr title="https://not-a-link.example/">x</abbr>')
    html, _ = tracked(body)
    assert [clicked(h) for h in hrefs(html)] == [f"https://{n}.example/" for n in
                                                 ("one", "two", "three", "four", "five", "six")]
    assert 'TITLE="a > b"' in html and '<abbr title="https://not-a-link.example/">' in html


def test_a_url_too_long_for_a_token_is_left_as_it_is() -> None:
    fits = "https://shop.example/?" + "x" * 1400
    over = "https://shop.example/?" + "x" * (MAX_URL_CHARS + 1 - 22)
    # Shorter, but JSON writes each 'é' as \u00e9: its token would be longer than verify() takes.
    wide = "https://shop.example/" + "é" * 400
    html, _ = tracked(f'<a href="{fits}">ok</a><a href="{over}">long</a><a href="{wide}">wide</a>')
    assert clicked(hrefs(html)[0]) == fits
    assert hrefs(html)[1:] == [over, wide]


def test_the_open_pixel_goes_just_before_the_end_of_the_body() -> None:
    html, _ = tracked("<p>Hi</p>")
    pixel = LINKS.pixel()
    assert html.endswith(
        f'<p>Hi</p><img src="{pixel}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px"></body></html>'
    )
    assert verify("secret", "open", pixel.rsplit("/", 1)[1], NOW, timedelta(days=1)) == [MESSAGE_ID]
    assert track("<P>Hi</BODY ></HTML>", "", LINKS, BASE)[0].startswith(f'<P>Hi<img src="{pixel}"')
    assert track("<p>Hi</p>", "", LINKS, BASE)[0].startswith(f'<p>Hi</p><img src="{pixel}"')


def test_each_kind_of_tracking_can_be_switched_off() -> None:
    html = '<html><body><a href="https://shop.example/">x</a></body></html>'
    text = html_to_text(html)
    assert track(html, text, LINKS, BASE, clicks=False, opens=False) == (html, text)
    no_clicks, _ = track(html, text, LINKS, BASE, clicks=False)
    assert hrefs(no_clicks) == ["https://shop.example/"] and "/o/" in no_clicks
    no_opens, _ = track(html, text, LINKS, BASE, opens=False)
    assert "/c/" in no_opens and "<img" not in no_opens


def test_previews_track_nothing() -> None:
    html = '<html><body><a href="https://shop.example/">x</a></body></html>'
    text = html_to_text(html)
    assert track(html, text, PreviewLinks(), PreviewLinks().base_url) == (html, text)


urls = st.text(st.characters(codec="utf-8", exclude_characters="\x00\t\n\r"), max_size=100).map(
    lambda path: ("https://shop.example/" + path).rstrip(C0_AND_SPACE)
)


@given(urls)
@example("https://shop.example/?a=1&b=2&copy=3&lt")
@example('https://shop.example/"><a href="https://evil.example/')
def test_the_token_carries_exactly_the_url_the_template_wrote(url: str) -> None:
    """Whatever a URL holds, escaped into an href as Jinja writes it, its click leads back to it."""
    jinja = f'<html><body><a href="{escape(url)}">x</a></body></html>'
    for html in (jinja, css_inline.inline(jinja)):  # as rendered, and as css-inline writes it again
        tracked_html, tracked_text = track(html, html_to_text(html), LINKS, BASE)
        [href] = hrefs(tracked_html)
        assert clicked(href) == url
        assert f"x ({href})" in tracked_text


_HTML_PIECES = ["<a href='x'>", '<a href="https://a.example/">', "<A\thref=y>", "<abbr>", "</a>", "</body>",
                "</BODY >", "</body\n>", "<body>", "x", "é", "\u201c", "\n"]
_HTML = st.lists(st.sampled_from(_HTML_PIECES)).map("".join)


@given(_HTML, st.sets(st.integers(min_value=0, max_value=20)))
def test_substituting_tags_is_re_sub_and_keeps_an_unchanged_text(html: str, changed: set[int]) -> None:
    seen = iter(range(1000))

    def rewrite(tag: re.Match[str]) -> str | None:
        return f"[{tag[0]}]" if next(seen) in changed else None

    expected = _A_TAG.sub(lambda tag: rewrite(tag) or tag[0], html)
    seen = iter(range(1000))
    got = _substitute(_A_TAG, rewrite, html)
    assert got == expected
    if got == html:
        assert got is html

