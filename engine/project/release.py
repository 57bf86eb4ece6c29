"""A release: a project's sequence files, broadcast files and templates read once into memory,
named by their content.

A daemon checks and serves the same snapshot (engine/scheduler/funnels.py), so what it
validated is what it renders: a template renamed or broken on disk afterwards changes
nothing until the next release goes live.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, meta

from engine.sequences.plan import EmailStep, PathKind, Plan

ID_LENGTH = 12  # hex digits of the content hash that name a release in logs and on deliveries


@dataclass(frozen=True)
class Snapshot:
    """The bytes of every sequence file, broadcast file and file under templates/, read at one moment."""

    sequences: Mapping[Path, bytes]  # in the order the project lists its sequence files
    templates: Mapping[str, bytes]  # name under templates/ ("t/magnet.html") -> bytes
    root: Path = field(default=Path("."), compare=False)
    broadcasts: Mapping[Path, bytes] = field(default_factory=dict)  # broadcasts/*.yaml, in name order

    def text(self, path: Path) -> str:
        """A sequence or broadcast file's text as Path.read_text gives it (FileNotFoundError,
        UnicodeDecodeError)."""
        data = self.sequences.get(path, self.broadcasts.get(path))
        if data is None:
            raise FileNotFoundError(path)
        # read_text's universal newlines, so line:column stay what validate says.
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")

    def digest(self) -> str:
        """sha256 over sorted sequence file names and contents, then template names and contents,
        then broadcast files' (none: the hash a project had before broadcasts existed)."""
        sha = hashlib.sha256()
        sequences = {_relative(path, self.root): data for path, data in self.sequences.items()}
        broadcasts = {_relative(path, self.root): data for path, data in self.broadcasts.items()}
        for kind, files in (("sequence", sequences), ("template", self.templates),
                            ("broadcast", broadcasts)):
            for name in sorted(files):
                data = files[name]
                sha.update(f"{kind}\0{name}\0{len(data)}\0".encode())
                sha.update(data)
        return sha.hexdigest()


def read_snapshot(sequence_files: list[Path], templates_dir: Path, root: Path,
                  broadcast_files: Iterable[Path] = ()) -> Snapshot:
    """Every sequence file, broadcast file and file under templates/ (layouts and includes too), read now."""
    sequences, broadcasts = _read_all(sequence_files), _read_all(broadcast_files)
    templates: dict[str, bytes] = {}
    for folder, _dirs, files in os.walk(templates_dir):
        for name in files:
            path = Path(folder) / name
            data = _read(path)
            if data is not None:
                templates[path.relative_to(templates_dir).as_posix()] = data
    return Snapshot(sequences, templates, root, broadcasts)


def _read_all(paths: Iterable[Path]) -> dict[Path, bytes]:
    found: dict[Path, bytes] = {}
    for path in paths:
        data = _read(path)
        if data is not None:
            found[path] = data
    return found


@dataclass(frozen=True)
class Release:
    """What a daemon serves, named by its content: `id` is the short form of `hash`."""

    hash: str
    # "funnel/email-id" of every email of every funnel -> a sha256 of what its text is made of:
    # subject, role, template with the layouts and includes it uses, and the funnel's values
    # every email can show (name, sender, postal address, vars, magnets, survey, segments).
    texts: Mapping[str, str]
    templates: Mapping[str, str]  # template name -> sha256 of its bytes
    # "funnel/segment/path" -> its emails' ids in order (nurture, sales, customer, win-back).
    paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The release's short name (logs, delivery.release)."""
        return self.hash[:ID_LENGTH]

    @property
    def emails(self) -> frozenset[str]:
        """Every email of every funnel, as "funnel/email-id"."""
        return frozenset(self.texts)

    def as_record(self) -> dict[str, Any]:
        """What the release table keeps of it, so a later release can be compared with it."""
        return {"texts": dict(self.texts), "templates": dict(self.templates),
                "paths": {name: list(ids) for name, ids in self.paths.items()}}

    @classmethod
    def from_record(cls, digest: str, record: Mapping[str, Any]) -> Release | None:
        """The release a `release` row describes; None for a row written before rows kept their files."""
        texts, templates, paths = record.get("texts"), record.get("templates"), record.get("paths", {})
        if not isinstance(texts, dict) or not isinstance(templates, dict):
            return None
        return cls(digest, texts, templates, {name: tuple(ids) for name, ids in paths.items()})


def make_release(snapshot: Snapshot, plans: Iterable[Plan]) -> Release:
    """The release of `snapshot`, whose compiled funnels are `plans`."""
    templates = {name: hashlib.sha256(data).hexdigest() for name, data in snapshot.templates.items()}
    families = _Families(snapshot.templates)
    texts, paths = {}, {}
    for plan in plans:
        # Each language's titles and labels, subjects and templates (templates/hu/...) are the
        # email's text as much as the default's: a Hungarian edit is an edit (docs/languages.md).
        shared = _shared_text(plan) + "".join(_shared_text(t) for t in plan.translations)
        for email in plan.emails():
            versions = [email, *(e for t in plan.translations if (e := t.email(email.id)) is not None)]
            # The templates its variants extend or include are part of its text too.
            names = [name for version in versions
                     for name in (version.template, *(v.template for v in version.variants))]
            family = frozenset[str]().union(*(families.of(name) for name in names))
            texts[f"{plan.funnel}/{email.id}"] = _text_hash(email, shared, family, templates, versions[1:])
        for segment in plan.segments:
            for kind in (PathKind.NURTURE, PathKind.SALES, PathKind.CUSTOMER):
                paths[f"{plan.funnel}/{segment.id}/{kind.value}"] = tuple(
                    e.id for e in segment.path(kind).steps)
        if plan.winback:
            paths[f"{plan.funnel}/-/{PathKind.WINBACK.value}"] = tuple(e.id for e in plan.winback.path.steps)
    return Release(snapshot.digest(), texts, templates, paths)


def changes(before: Release | None, after: Release) -> dict[str, list[str]]:
    """What `after` changes from `before`: emails added, removed, moved and with a changed text;
    templates added, removed, changed."""
    old_texts = before.texts if before else {}
    old = before.templates if before else {}
    return {
        "emails_added": sorted(after.emails - set(old_texts)),
        "emails_removed": sorted(set(old_texts) - after.emails),
        "emails_moved": _moved(before.paths if before else {}, after.paths),
        "emails_changed": sorted(k for k, h in after.texts.items() if k in old_texts and old_texts[k] != h),
        "templates_added": sorted(set(after.templates) - set(old)),
        "templates_removed": sorted(set(old) - set(after.templates)),
        "templates_changed": sorted(n for n, h in after.templates.items() if n in old and old[n] != h),
    }


def _moved(before: Mapping[str, tuple[str, ...]], after: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Emails now in another path, or in another order among the emails both versions of a path have.

    Of a path's emails in both versions, the longest run that kept its order stays; the
    others moved (swapping two neighbours moves one of them, not the whole path).
    """
    where_before = {(name.split("/")[0], email): name for name, ids in before.items() for email in ids}
    moved = []
    for name, ids in after.items():
        funnel = name.split("/")[0]
        moved += [f"{funnel}/{e}" for e in ids if where_before.get((funnel, e), name) != name]
        old = before.get(name, ())
        common_old = [e for e in old if e in ids]
        common_new = [e for e in ids if e in old]
        kept: set[str] = set()
        for block in SequenceMatcher(None, common_old, common_new, autojunk=False).get_matching_blocks():
            kept.update(common_new[block.b:block.b + block.size])
        moved += [f"{funnel}/{e}" for e in common_new if e not in kept]
    return sorted(set(moved))


class _Families:
    """Which templates each template uses (extends, includes, imports), found once per release."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = files
        self.env = Environment()  # only parses: the sandboxed one renders (engine/mail/render.py)
        self.found: dict[str, frozenset[str]] = {}

    def of(self, name: str) -> frozenset[str]:
        """`name` and every template it uses, however deep."""
        family: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current not in family:
                family.add(current)
                todo.extend(self._uses(current))
        return frozenset(family)

    def _uses(self, name: str) -> frozenset[str]:
        if name not in self.found:
            data = self.files.get(name)
            try:
                tree = self.env.parse(data.decode("utf-8")) if data is not None else None
            except (TemplateSyntaxError, UnicodeDecodeError):  # validate refuses it; nothing to follow
                tree = None
            used = meta.find_referenced_templates(tree) if tree is not None else ()
            self.found[name] = frozenset(u for u in used if isinstance(u, str))
        return self.found[name]


def _shared_text(plan: Plan) -> str:
    """The funnel's values any of its emails can show, as one string."""
    return json.dumps({
        "name": plan.name, "sender": plan.sender, "reply_to": plan.reply_to,
        "postal_address": plan.postal_address, "vars": dict(plan.vars),
        "magnets": [(m.id, m.title, m.download_url) for m in plan.magnets],
        "survey": [(q.id, q.text, list(q.answers)) for q in plan.survey.questions] if plan.survey else None,
        "segments": [(s.id, s.name) for s in plan.segments],
    }, sort_keys=True, default=str)


def _text_hash(email: EmailStep, shared: str, family: frozenset[str], templates: Mapping[str, str],
               translated: Iterable[EmailStep] = ()) -> str:
    sha = hashlib.sha256(shared.encode())
    sha.update(f"\0{email.subject}\0{email.role.value}\0{email.last_chance}\0{email.template}".encode())
    for name in sorted(family):
        sha.update(f"\0{name}\0{templates.get(name, '-')}".encode())
    # An experiment's versions are the email's text too: editing one changes the email. Only an
    # email with variants hashes them, so an email without stays as earlier releases hashed it.
    for variant in email.variants:
        sha.update(f"\0variant\0{variant.id}\0{variant.subject}\0{variant.template}"
                   f"\0{templates.get(variant.template, '-')}".encode())
    # Only a funnel with languages hashes them, so one without stays as earlier releases hashed it.
    for version in translated:
        sha.update(f"\0translated\0{version.subject}\0{version.template}".encode())
        for variant in version.variants:
            sha.update(f"\0variant\0{variant.id}\0{variant.subject}\0{variant.template}".encode())
    return sha.hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):  # removed while we looked
        return None


def _relative(path: Path, root: Path) -> str:
    """A sequence file's name in the hash: the same for daemons started from different folders."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
