"""Render an email step: subject, HTML (CSS inlined) and a plain-text part.

The one Jinja Environment of the engine lives here: sandboxed (templates are
written by marketers, not programmers), StrictUndefined (a typo must fail loudly,
not send 'Hello ,'), HTML autoescaped, subjects not (they are not HTML).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
import html2text
from jinja2 import FileSystemLoader, StrictUndefined, Template, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from engine.sequences.plan import EmailStep


@dataclass(frozen=True)
class Rendered:
    """An email's rendered parts."""

    subject: str
    html: str
    text: str


def make_environment(templates_dir: Path) -> SandboxedEnvironment:
    """The Jinja environment every template of a project renders in."""
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir)),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html", "htm"), default_for_string=False),
        keep_trailing_newline=True,
    )


class Renderer:
    """Renders email steps from a project's templates folder."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self.env = make_environment(templates_dir)
        self._subjects: dict[str, Template] = {}
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False)

    def subject(self, source: str, context: dict[str, Any]) -> str:
        """A rendered subject on one line: CR, LF and other line breaks become spaces."""
        template = self._subjects.get(source)
        if template is None:
            template = self._subjects[source] = self.env.from_string(source)
        return " ".join(template.render(context).split())

    def html(self, template: str, context: dict[str, Any]) -> str:
        """The email's HTML with its <style> rules inlined, as mail clients need."""
        raw = self.env.get_template(template).render(context)
        return str(self._inliner.inline(raw))

    def render(self, email: EmailStep, context: dict[str, Any]) -> Rendered:
        """Subject, HTML and plain text of one email for one subscriber."""
        html = self.html(email.template, context)
        return Rendered(self.subject(email.subject, context), html, html_to_text(html))


_EMPHASIS_SPACE = re.compile(r"(\*\*|_) ([,.;:!?)])")


def html_to_text(html: str) -> str:
    """The plain-text alternative of an HTML email: links kept, lines wrapped at 72."""
    converter = html2text.HTML2Text()
    converter.body_width = 72
    converter.ignore_images = True
    converter.protect_links = True
    converter.inline_links = False
    converter.wrap_links = False
    text = str(converter.handle(html)).strip()
    # html2text writes "<b>X</b>," as "**X** ,": put the punctuation back against the word.
    return _EMPHASIS_SPACE.sub(r"\1\2", text) + "\n"
