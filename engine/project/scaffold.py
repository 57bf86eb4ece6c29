"""`funnel init`: a new project folder with one small valid funnel, its settings and editor wiring.

The starter files are package data (engine/project/starter/), copied as they are, except the
two whose names start with a dot (setuptools leaves dotfiles out of package data) and the
JSON Schemas (of sequence files and of broadcast files), which are generated from the models
of this version so that they always match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from engine.errors import EngineError, display_path
from engine.sequences.broadcast_model import json_schema as broadcast_json_schema
from engine.sequences.model import json_schema

SCHEMA_FILE = "funnel.schema.json"
BROADCAST_SCHEMA_FILE = "funnel-broadcast.schema.json"  # for broadcasts/*.yaml (docs/broadcasts.md)
STARTER_FUNNEL = "home-bakery"
# Stored name in the package -> name in the new project.
_RENAMED = {"gitignore": ".gitignore", "vscode-settings.json": ".vscode/settings.json"}


class ProjectExistsError(EngineError):
    """Some files `funnel init` would write are there already; nothing was written."""

    def __init__(self, root: Path, existing: list[PurePosixPath]) -> None:
        self.existing = existing
        names = ", ".join(str(path) for path in existing)
        shown = display_path(root)
        where = "this folder" if shown == "." else shown
        super().__init__(
            f"{where} already has {names}; nothing was written. Pick an empty folder "
            "(funnel init DIR), move those files away, or add --force to overwrite them"
        )


@dataclass(frozen=True)
class Created:
    """What `create_project` wrote, relative to the project folder, in order."""

    root: Path
    files: list[PurePosixPath]
    overwritten: list[PurePosixPath]


def starter_files() -> dict[PurePosixPath, bytes]:
    """Every file of a new project (relative path -> content), the schema included."""
    found: dict[PurePosixPath, bytes] = {}
    _collect(files("engine.project") / "starter", PurePosixPath(), found)
    found[PurePosixPath(SCHEMA_FILE)] = (json.dumps(json_schema(), indent=2) + "\n").encode()
    found[PurePosixPath(BROADCAST_SCHEMA_FILE)] = (json.dumps(broadcast_json_schema(), indent=2)
                                                   + "\n").encode()
    return dict(sorted(found.items(), key=lambda item: (len(item[0].parts) > 1, str(item[0]))))


def create_project(root: Path, force: bool = False) -> Created:
    """Write a new project into `root` (made if missing); refuse to overwrite unless `force`."""
    wanted = starter_files()
    existing = [path for path in wanted if (root / path).exists()]
    if existing and not force:
        raise ProjectExistsError(root, existing)
    for path, content in wanted.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return Created(root, list(wanted), existing)


def _collect(folder: Traversable, prefix: PurePosixPath, found: dict[PurePosixPath, bytes]) -> None:
    for entry in folder.iterdir():
        if entry.name.startswith((".", "__")):  # __pycache__, editor leftovers
            continue
        if entry.is_dir():
            _collect(entry, prefix / entry.name, found)
        else:
            found[PurePosixPath(_RENAMED.get(str(prefix / entry.name), str(prefix / entry.name)))] = (
                entry.read_bytes()
            )
