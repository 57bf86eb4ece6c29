"""Click and open tracking for a live email: its web links go through the daemon, a pixel counts opens.

Runs on every email sent (not on previews, not on the double opt-in request), after
rendering, so it works on the HTML as css-inline wrote it and on the text part as
html2text wrote it, and never re-runs either (see textpart.py for what they cost).
"""

from __future__ import annotations

import html as markup
import re
from collections.abc import Callable
from html.entities import html5
from typing import NamedTuple

from engine.mail.context import Links

# Longer URLs stay as they are. The click token carries the whole URL, and verify()
# takes tokens of up to 2,048 characters, which a URL fills from about 1,440 ASCII
# characters on: between the two, SignedLinks.click leaves the URL as it is too.
MAX_URL_CHARS = 1500

# An <a> start tag up to its '>', skipping over quoted values (a '>' inside one does not
# end the tag). Possessive quantifiers: a tag that never closes costs one linear scan.
_A_TAG = re.compile(r"""<a(?=[\s/>])(?:[^>"']++|"[^"]*+"|'[^']*+')*+>""", re.I)
# One attribute of a start tag: its name, then its value quoted either way or not at all.
_ATTRIBUTE = re.compile(r"""([^\s/>"'=][^\s/>=]*+)(?:\s*+=\s*+("[^"]*+"|'[^']*+'|[^\s>]*+))?""")
# The character references html.unescape knows, as it finds them.
_REFERENCE = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")
# What a browser does to an href before it follows it: the tokenizer turns NUL into
# U+FFFD, the URL parser drops tabs and newlines anywhere and C0 controls and spaces
# at either end (WHATWG URL, "basic URL parser").
_URL_TABLE = {0: "\ufffd", 9: None, 10: None, 13: None}
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
# A URL in the text part: after a space, a line start or "(", and followed by ")", a
# space or the end, maybe after sentence punctuation ("Log in at https://x.example/.").
_SHOWN_URL = r"""(?<![^\s("'<\[])({})(?=[)"'>\]]|[.,;:!?]*(?:\s|$))"""
_BODY_END = re.compile(r"</body\s*>", re.I)
_PIXEL = '<img src="{}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">'


def track(html: str, text: str, links: Links, own: str, *, clicks: bool = True,
          opens: bool = True) -> tuple[str, str]:
    """`html` and `text` with their web links counted through `links` and, in the HTML, an open pixel.

    A link is rewritten when its URL is absolute http(s), not under `own` (the daemon's
    base URL: unsubscribe, confirm and answer links are signed already) and at most
    MAX_URL_CHARS long. The text part shows each link's URL once (plaintext.py: "text
    (URL)", or the URL alone); the same URLs are replaced there.
    """
    tracked = track_parts(html, text, links, own, clicks=clicks, opens=opens)
    html = tracked.html
    if tracked.pixel:
        html = html[:tracked.at] + tracked.pixel + html[tracked.at:]
    return html, tracked.text


class Tracked(NamedTuple):
    """What `track` does to an email, the pixel not yet put in: `html[:at] + pixel + html[at:]`."""

    html: str  # with its links counted; the very `html` given when none is
    text: str  # likewise
    pixel: str  # the open pixel's <img>, "" when opens are not counted
    at: int  # where the pixel goes in `html`: before its last </body>, or at its end


def track_parts(html: str, text: str, links: Links, own: str, *, clicks: bool = True,
                opens: bool = True) -> Tracked:
    """`track`, in parts: the caller puts the pixel in (compose.py keeps the parts' shapes so)."""
    if clicks:
        html, text = _track_clicks(html, text, links, own.rstrip("/"))
    pixel = links.pixel() if opens else ""
    if not pixel:
        return Tracked(html, text, "", len(html))
    return Tracked(html, text, _PIXEL.format(markup.escape(pixel)), _body_end(html))


def _track_clicks(html: str, text: str, links: Links, own: str) -> tuple[str, str]:
    tracked: dict[str, str] = {}  # URL -> its click link: a URL linked twice is signed once
    in_text: dict[str, str] = {}  # the URL as the text part shows it -> its click link

    def rewrite(tag: re.Match[str]) -> str | None:
        """The tag with its link counted; None when it stays as it is."""
        for attribute in _ATTRIBUTE.finditer(tag[0], 2):
            if attribute[1].lower() == "href":
                break
        else:
            return None
        quoted = attribute[2]
        if not quoted:
            return None
        value = quoted[1:-1] if quoted[0] in "\"'" else quoted
        url = _followed(value)
        if not _trackable(url, own):
            return None
        link = tracked.get(url)
        if link is None:
            link = tracked[url] = links.click(url)
        # html2text reads attributes with html.unescape, which differs from a browser only
        # on a bare '&name' before '=' or a letter; take its reading for the text part.
        in_text[markup.unescape(value).strip()] = link
        start, end = attribute.span(2)
        return f'{tag[0][:start]}"{markup.escape(link)}"{tag[0][end:]}'

    html = _substitute(_A_TAG, rewrite, html)
    if in_text:
        # Each URL as a whole: not the start of a longer one ("…/x" in "…/x.html").
        shown = "|".join(re.escape(url) for url in sorted(in_text, key=len, reverse=True))
        text = re.sub(_SHOWN_URL.format(shown), lambda m: in_text[m[1]], text)
    return html, text


def _substitute(pattern: re.Pattern[str], rewrite: Callable[[re.Match[str]], str | None], text: str) -> str:
    """`pattern.sub` with `rewrite`, where None keeps a match as it is; `text` itself when none changes.

    re.sub copies the text piece by piece even when every match stays (an email whose
    only link is its unsubscribe one): ~1 µs on a 3.4 KB email.
    """
    pieces: list[str] = []
    done = 0
    for match in pattern.finditer(text):
        rewritten = rewrite(match)
        if rewritten is not None:
            pieces += (text[done:match.start()], rewritten)
            done = match.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _trackable(url: str, own: str) -> bool:
    """An absolute web URL that is not the daemon's own and fits in a token."""
    return (
        url[:8].lower().startswith(("http://", "https://"))
        and len(url) <= MAX_URL_CHARS
        and not (url == own or url.startswith(own + "/"))
    )


def _followed(value: str) -> str:
    """The URL a browser follows for an href attribute whose source text is `value`."""
    if "&" in value:
        value = _REFERENCE.sub(_decode_reference, value)
    if not value.isprintable():  # a tab, a newline, a NUL: rare, and translate() is the slow part
        value = value.translate(_URL_TABLE)
    return value.strip(_C0_AND_SPACE)


def _decode_reference(reference: re.Match[str]) -> str:
    """One character reference decoded as a browser decodes it inside an attribute value.

    As html.unescape does, except that a name without its ';' followed by '=' or an
    ASCII letter or digit stays as written: '?a=1&copy=2' keeps '&copy', it is not '©'.
    """
    name = reference[1]
    if name[0] == "#" or name in html5:
        return markup.unescape(reference[0])
    for end in range(len(name) - 1, 1, -1):
        if name[:end] in html5:
            after = name[end]
            if after == "=" or (after.isascii() and after.isalnum()):
                return reference[0]
            return html5[name[:end]] + name[end:]
    return reference[0]


def _body_end(html: str) -> int:
    """Where an element goes to end up just before the last </body> of `html`: its end when it has none."""
    at = html.rfind("</body>")  # how css-inline writes it
    if at < 0:
        ends = [end.start() for end in _BODY_END.finditer(html)]
        at = ends[-1] if ends else len(html)
    return at
