"""Render an email step: subject, HTML (CSS inlined) and a plain-text part.

The one Jinja Environment of the engine lives here: sandboxed (templates are
written by marketers, not programmers), StrictUndefined (a typo must fail loudly,
not send 'Hello ,'), HTML autoescaped, subjects not (they are not HTML).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import css_inline
from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    meta,
    nodes,
    select_autoescape,
)
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from engine.mail import dates, numbers
from engine.mail.message import Shaped
from engine.mail.personal import Chain, as_is_chains, written_as_leaves
from engine.mail.plaintext import html_to_text
from engine.mail.textpart import TextParts
from engine.sequences.plan import EmailStep

__all__ = ["Rendered", "Renderer", "SnapshotLoader", "html_to_text", "make_environment"]


@dataclass(frozen=True)
class Rendered:
    """An email's rendered parts."""

    subject: str
    html: str
    text: str
    # The step's skeleton and this email's values each part was filled from, when it was:
    # build_message encodes such a part from its fixed lines (message.BodyShape).
    html_shape: Shaped | None = None
    text_shape: Shaped | None = None


class _Compiled(NamedTuple):
    """A compiled template and its globals as one plain dict (the environment's; no per-template ones)."""

    template: Template
    globals: dict[str, Any]


def _writes_dates(tree: nodes.Template) -> bool:
    """Whether a template names sent_at or deadline, or uses a date filter.

    Walked for names, not taken from find_undeclared_variables: that leaves out the
    environment's globals, and `deadline` is one.
    """
    return (any(n.name in dates.NAMES for n in tree.find_all(nodes.Name))
            or any(f.name in dates.FILTERS for f in tree.find_all(nodes.Filter)))


class SnapshotLoader(BaseLoader):
    """Templates from files read once into memory (a release): nothing is read from disk at send time."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = dict(files)  # name under templates/ ("t/magnet.html") -> its bytes

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool]]:
        """The template's text, decoded as FileSystemLoader does (a bad byte raises UnicodeDecodeError)."""
        name = "/".join(split_template_path(template))
        data = self.files.get(name)
        if data is None:
            raise TemplateNotFound(template)
        return data.decode("utf-8"), None, lambda: True

    def list_templates(self) -> list[str]:
        """Every file of the snapshot."""
        return sorted(self.files)


# Every attribute a dict has: `d.items` is the method, never the key "items" (Jinja's rule).
_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Sandbox(SandboxedEnvironment):
    """The sandbox, with `context.name` on a plain dict looked up without raising an exception first.

    Jinja tries getattr(dict, "first_name") and catches its AttributeError before the item
    look-up: about 1 µs each, and an email's template reads 10 or so of the context's dicts
    so. A dict's items are data, not attributes, so the sandbox has nothing to check on them;
    a name that is one of dict's own attributes goes the usual way, with the same result.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`obj.attribute` in a template, as SandboxedEnvironment.getattr answers it."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def make_environment(templates_dir: Path, files: Mapping[str, bytes] | None = None) -> SandboxedEnvironment:
    """The Jinja environment of a project's templates: from `files` if given, else the folder."""
    loader = FileSystemLoader(str(templates_dir)) if files is None else SnapshotLoader(files)
    env = _Sandbox(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html", "htm"), default_for_string=False),
        keep_trailing_newline=True,
        # A daemon swaps in a new Renderer when files change (scheduler/funnels.py): no stat()
        # of every template on every render.
        auto_reload=False,
    )
    # sent_at's filters and helpers (dates.py): `{{ deadline(days=3) | date("weekday") }}`.
    env.filters.update(dates.FILTERS)
    env.globals.update(dates.GLOBALS)
    # Numbers and prices in the email's locale: `{{ vars.price | money("EUR") }}` (numbers.py).
    env.filters.update(numbers.FILTERS)
    return env


class Renderer:
    """Renders email steps from a project's templates folder, or from a snapshot of it (`from_files`)."""

    def __init__(self, templates_dir: Path, files: Mapping[str, bytes] | None = None) -> None:
        self.templates_dir = templates_dir  # named in messages either way
        self.env = make_environment(templates_dir, files)
        # Compiled templates with their globals made one plain dict (see _run), by name or source.
        self._templates: dict[str, _Compiled] = {}
        self._subjects: dict[str, _Compiled] = {}
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False)
        self.text_parts = TextParts()
        self._names: dict[tuple[str, str], tuple[frozenset[str] | None, bool]] = {}
        self._as_is: dict[str, tuple[Chain, ...] | None] = {}
        self._parsed: dict[str, list[tuple[str, nodes.Template]] | None] = {}

    @classmethod
    def from_files(cls, templates_dir: Path, files: Mapping[str, bytes]) -> Renderer:
        """A renderer over templates read into memory (a daemon's release), not over the folder."""
        return cls(templates_dir, files)

    def names(self, template: str, subject: str) -> frozenset[str] | None:
        """The top-level names a template (with what it extends or includes) and a subject use.

        None when a template includes another by a computed name: then anything may be used.
        Lets the dispatcher skip signing links an email does not show.
        """
        return self._scanned(template, subject)[0]

    def dated(self, template: str, subject: str) -> bool:
        """Whether the email's text may depend on when it is sent: `sent_at`, `deadline` or a date filter.

        A date filter counts even on another value (a date in vars): it writes it in
        sent_at's locale. Emails that are not dated need no `sent_at` in their context.
        """
        return self._scanned(template, subject)[1]

    def _scanned(self, template: str, subject: str) -> tuple[frozenset[str] | None, bool]:
        key = (template, subject)
        found = self._names.get(key)
        if found is None:
            found = self._names[key] = self._find_names(template, subject)
        return found

    def _find_names(self, template: str, subject: str) -> tuple[frozenset[str] | None, bool]:
        tree = self.env.parse(subject)
        trees = self._trees(template)
        if trees is None:
            return None, True
        found = set(meta.find_undeclared_variables(tree))
        dated = _writes_dates(tree)
        for _, tree in trees:
            found |= meta.find_undeclared_variables(tree)
            dated = dated or _writes_dates(tree)
        return frozenset(found), dated

    def _trees(self, template: str) -> list[tuple[str, nodes.Template]] | None:
        """The syntax trees of a template and of all it extends, includes or imports, by name.

        None when one names another by a computed name: then any template may be used.
        Parsed once per template (its names and its proof both read them); a template that
        cannot be read raises each time, as its render does.
        """
        if template not in self._parsed:
            self._parsed[template] = self._parse(template)
        return self._parsed[template]

    def _parse(self, template: str) -> list[tuple[str, nodes.Template]] | None:
        trees: list[tuple[str, nodes.Template]] = []
        pending, seen = [template], set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            assert self.env.loader is not None
            source = self.env.loader.get_source(self.env, name)[0]
            tree = self.env.parse(source)
            trees.append((name, tree))
            for referenced in meta.find_referenced_templates(tree):
                if referenced is None:
                    return None
                pending.append(referenced)
        return trees

    def _chains(self, template: str) -> tuple[Chain, ...] | None:
        """The personal values a template writes as they are, when personal.py proves that; else None."""
        if template not in self._as_is:
            self._as_is[template] = self._find_chains(template)
        return self._as_is[template]

    def _find_chains(self, template: str) -> tuple[Chain, ...] | None:
        try:
            trees = self._trees(template)
        except Exception:  # a file missing or broken: the render itself says so, as before
            return None
        if trees is None:
            return None
        autoescape = self.env.autoescape
        for name, tree in trees:
            # The skeleton is filled with escaped values, as autoescaping writes them; and
            # sent_at is in the key to the minute only, while a date can show the seconds.
            if not (autoescape(name) if callable(autoescape) else autoescape) or _writes_dates(tree):
                return None
        return as_is_chains(tree for _, tree in trees)

    def subject(self, source: str, context: dict[str, Any]) -> str:
        """A rendered subject on one line: CR, LF and other line breaks become spaces."""
        compiled = self._subjects.get(source)
        if compiled is None:
            template = self.env.from_string(source)
            compiled = self._subjects[source] = _Compiled(template, dict(template.globals))
        return " ".join(self._run(compiled, context).split())

    def html(self, template: str, context: dict[str, Any]) -> str:
        """The email's HTML with its <style> rules inlined, as mail clients need."""
        return self._inline(self._raw(template, context))

    def _raw(self, template: str, context: dict[str, Any]) -> str:
        compiled = self._templates.get(template)
        if compiled is None:  # a template not found raises each time: only found ones are kept
            found = self.env.get_template(template)
            compiled = self._templates[template] = _Compiled(found, dict(found.globals))
        return self._run(compiled, context)

    def _run(self, compiled: _Compiled, context: dict[str, Any]) -> str:
        """`Template.render(context)`, less its per-render copying.

        Template.render copies the context twice and walks the globals' ChainMap in
        Python to merge them in (~20 µs of CPU an email, its two renders); here the globals
        are one dict per template, merged with the context in one C-level copy. The
        context the template sees is the same: the globals, the context over them.
        """
        template, globals_ = compiled
        env = self.env
        ctx = env.context_class(env, {**globals_, **context}, template.name, template.blocks,
                                globals=globals_)
        try:
            return env.concat(template.root_render_func(ctx))
        except Exception:
            env.handle_exception()

    def _inline(self, html: str) -> str:
        return str(self._inliner.inline(html))

    def render(self, email: EmailStep, context: dict[str, Any], key: tuple[object, ...] = ()) -> Rendered:
        """Subject, HTML and plain text of one email for one subscriber.

        `key` names what the rest of the context depends on (context.skeleton_key); with
        it, the parts come from a per-step skeleton (see textpart.py), and for a template
        that writes the personal values as they are (personal.py) the subscriber's own
        HTML is not even rendered.
        """
        template = email.template
        if not key:
            html = self._inline(self._raw(template, context))
            return Rendered(self.subject(email.subject, context), html, html_to_text(html))

        def render(values: dict[str, Any]) -> str:
            return self._raw(template, values)

        full_key = (template, *key)
        parts = None
        chains = self._chains(template)
        if chains is not None:
            env = self.env
            parts = self.text_parts.proven_parts(full_key, context, render, self._inline,
                                                 lambda marked: written_as_leaves(env, marked, chains))
        if parts is None:
            parts = self.text_parts.shaped_parts(full_key, context, render(context), render, self._inline)
        html, text, html_shape, text_shape = parts
        return Rendered(self.subject(email.subject, context), html, text, html_shape, text_shape)
