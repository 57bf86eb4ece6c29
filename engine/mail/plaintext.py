"""The plain-text part of an email, written from its HTML the way a person writes a plain email.

html2text does the reading (entities, whitespace, paragraphs, lists, quotes); it is
configured, and its handling of a few tags replaced, so that it writes no Markdown:

- no emphasis marks: `<b>light</b>` is "light", not "**light**";
- headings are paragraphs of their own, without "#";
- lists use "- " and "1. ", nothing else; code, strikethrough and tables are plain text;
- a link whose text is its URL shows the URL once; any other link is "text (URL)",
  the same URL as the href (a tracked link is rewritten later: tracking.py);
- an image is its alt text, or nothing;
- entities are the characters they stand for (the part is UTF-8);
- nothing is backslash-escaped ("1\\." or "\\-" are Markdown's, not a reader's);
- at most one blank line in a row, no spaces at the end of a line.

Lines are not wrapped at 72: a hard-wrapped text part breaks into ragged lines on a
phone, and quoted-printable already keeps the transmitted lines short.
"""

from __future__ import annotations

import html2text
from html2text.elements import ListElement

# Tags written as their text alone: html2text would mark them up (`code`, ~~del~~, # h1).
_PLAIN = frozenset({"code", "kbd", "tt", "del", "strike", "s", "sup", "sub"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


class _PlainText(html2text.HTML2Text):
    """html2text configured to write prose instead of Markdown."""

    def __init__(self) -> None:
        super().__init__(bodywidth=0)
        self.ignore_emphasis = True
        self.unicode_snob = True  # "&eacute;" is "é", not "e"; "&mdash;" is "—", not "--"
        self.images_to_alt = True
        self.default_image_alt = ""
        self.ul_item_mark = "-"
        self.ignore_tables = True
        self.single_line_break = False
        # Each open <a>: (its href, or None when it shows no URL; where its text starts).
        self.links: list[tuple[str | None, int]] = []

    def handle_tag(self, tag: str, attrs: dict[str, str | None], start: bool) -> None:
        """html2text's handling, except for the tags it would write as Markdown."""
        self.current_tag = tag
        if not _tag(self, tag, attrs, start):
            super().handle_tag(tag, attrs, start)

    def handle_data(self, data: str, entity_char: bool = False) -> None:
        """Text as it is: `entity_char=True` is html2text's only switch that skips Markdown escaping."""
        super().handle_data(data, True)


def _tag(parser: _PlainText, tag: str, attrs: dict[str, str | None], start: bool) -> bool:
    """Handle the tags html2text would write as Markdown; True when handled here."""
    if tag in _HEADINGS:
        parser.p()
        return True
    if tag in _PLAIN:
        return True
    if tag in ("td", "th") and start:
        parser.space = True  # cells of a layout table side by side, not run together
        return True
    if tag == "hr":
        if start:
            parser.p()
            parser.o("---")
            parser.p()
        return True
    if tag == "a":
        _link(parser, attrs, start)
        return True
    if tag == "li":
        _item(parser, start)
        return True
    return False


def _item(parser: _PlainText, start: bool) -> None:
    """A list item at the start of its line ("- " or "1. "), two spaces further in for each nested list."""
    parser.pbr()
    if not start:
        return
    item = parser.list[-1] if parser.list else ListElement("ul", 0)
    if item.name == "ol":
        item.num += 1
        mark = f"{item.num}. "
    else:
        mark = "- "
    parser.o("  " * max(len(parser.list) - 1, 0) + mark)
    parser.start = True  # as html2text does: the item's text follows the mark directly


def _link(parser: _PlainText, attrs: dict[str, str | None], start: bool) -> None:
    """Write a link as its text, then " (URL)" unless the text already is the URL."""
    if start:
        href = (attrs.get("href") or "").strip()
        shown = href if href and not href.startswith("#") else None
        parser.links.append((shown, len(parser.outtextlist)))
        return
    if not parser.links:  # a stray </a>
        return
    url, at = parser.links.pop()
    if url is None:
        return
    text = "".join(parser.outtextlist[at:]).strip()
    if text == url or text == url.removeprefix("mailto:"):
        return
    parser.o(f" ({url})" if text else url)


def html_to_text(html: str) -> str:
    """The plain-text alternative of an HTML email (see the module's docstring for its rules)."""
    text = _PlainText().handle(html)
    # split("\n"), not splitlines(): a value may hold U+2028 or U+0085, which are not line ends here.
    lines = [line.rstrip() for line in text.strip().split("\n")]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):  # at most one blank line in a row
            kept.append(line)
    return "\n".join(kept) + "\n"
