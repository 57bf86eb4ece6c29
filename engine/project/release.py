"""A release: a project's sequence files and templates read once into memory, named by their content.

A daemon checks and serves the same snapshot (engine/scheduler/funnels.py), so what it
validated is what it renders: a template renamed or broken on disk afterwards changes
nothing until the next release goes live.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ID_LENGTH = 12  # hex digits of the content hash that name a release in logs and on deliveries


@dataclass(frozen=True)
class Snapshot:
    """The bytes of every sequence file and every file under templates/, read at one moment."""

    sequences: Mapping[Path, bytes]  # in the order the project lists its sequence files
    templates: Mapping[str, bytes]  # name under templates/ ("t/magnet.html") -> bytes
    root: Path = field(default=Path("."), compare=False)

    def text(self, path: Path) -> str:
        """A sequence file's text as Path.read_text gives it (FileNotFoundError, UnicodeDecodeError)."""
        data = self.sequences.get(path)
        if data is None:
            raise FileNotFoundError(path)
        # read_text's universal newlines, so line:column stay what validate says.
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")

    def digest(self) -> str:
        """sha256 over sorted sequence file names and contents, then template names and contents."""
        sha = hashlib.sha256()
        sequences = {_relative(path, self.root): data for path, data in self.sequences.items()}
        for kind, files in (("sequence", sequences), ("template", self.templates)):
            for name in sorted(files):
                data = files[name]
                sha.update(f"{kind}\0{name}\0{len(data)}\0".encode())
                sha.update(data)
        return sha.hexdigest()


def read_snapshot(sequence_files: list[Path], templates_dir: Path, root: Path) -> Snapshot:
    """Every sequence file and every file under templates/ (layouts and includes too), read now."""
    sequences: dict[Path, bytes] = {}
    for path in sequence_files:
        data = _read(path)
        if data is not None:
            sequences[path] = data
    templates: dict[str, bytes] = {}
    for folder, _dirs, files in os.walk(templates_dir):
        for name in files:
            path = Path(folder) / name
            data = _read(path)
            if data is not None:
                templates[path.relative_to(templates_dir).as_posix()] = data
    return Snapshot(sequences, templates, root)


@dataclass(frozen=True)
class Release:
    """What a daemon serves, named by its content: `id` is the short form of `hash`."""

    hash: str
    emails: frozenset[str]  # "funnel/email-id" of every email of every funnel
    templates: Mapping[str, str]  # template name -> sha256 of its bytes

    @property
    def id(self) -> str:
        """The release's short name (logs, delivery.release)."""
        return self.hash[:ID_LENGTH]


def make_release(snapshot: Snapshot, emails: Iterable[str]) -> Release:
    """The release of `snapshot`, whose compiled funnels have these emails."""
    templates = {name: hashlib.sha256(data).hexdigest() for name, data in snapshot.templates.items()}
    return Release(snapshot.digest(), frozenset(emails), templates)


def changes(before: Release | None, after: Release) -> dict[str, list[str]]:
    """What `after` changes from `before`: emails added and removed, templates added, removed, changed."""
    old_emails = before.emails if before else frozenset()
    old = before.templates if before else {}
    return {
        "emails_added": sorted(after.emails - old_emails),
        "emails_removed": sorted(old_emails - after.emails),
        "templates_added": sorted(set(after.templates) - set(old)),
        "templates_removed": sorted(set(old) - set(after.templates)),
        "templates_changed": sorted(n for n, h in after.templates.items() if n in old and old[n] != h),
    }


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
