"""The links an HTML part holds, read by the standard library's parser rather than by ours."""

from __future__ import annotations

from html.parser import HTMLParser


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href") or "")
        elif tag == "img":
            self.images.append(dict(attrs).get("src") or "")


def hrefs(html: str) -> list[str]:
    """The href of every <a> in `html`, decoded, in order ("" for none)."""
    parser = _Hrefs()
    parser.feed(html)
    return parser.hrefs


def images(html: str) -> list[str]:
    """The src of every <img> in `html`, decoded, in order."""
    parser = _Hrefs()
    parser.feed(html)
    return parser.images
