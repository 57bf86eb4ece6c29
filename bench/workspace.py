"""A throwaway folder with a copy of the shipped funnels and a database URL, for one benchmark run."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def workspace(database_url: str | None) -> Iterator[tuple[Path, str]]:
    """(project folder, database URL): the given URL, or a SQLite file in the folder; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="funnel-bench-"))
    try:
        project = folder / "project"
        shutil.copytree(ROOT / "sequences", project / "sequences")
        shutil.copytree(ROOT / "templates", project / "templates")
        yield project, database_url or f"sqlite:///{folder / 'funnel.db'}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
