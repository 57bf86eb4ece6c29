"""A throwaway project folder for daemon tests: the minimal funnel and its templates."""

from __future__ import annotations

import shutil
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
ROOT = Path(__file__).resolve().parents[2]


def minimal_project(folder: Path, *extra: str) -> Path:
    """`folder` with sequences/minimal.yaml (plus `extra` ones from tests/data/sequences/good), templates/."""
    (folder / "sequences").mkdir(parents=True, exist_ok=True)
    for name in ("minimal.yaml", *extra):
        shutil.copy(DATA / "sequences" / "good" / name, folder / "sequences" / name)
    shutil.copytree(DATA / "templates", folder / "templates", dirs_exist_ok=True)
    shutil.rmtree(folder / "templates" / "bad", ignore_errors=True)
    return folder


def shipped_project(folder: Path) -> Path:
    """`folder` with the shipped example funnels and templates."""
    shutil.copytree(ROOT / "sequences", folder / "sequences", dirs_exist_ok=True)
    shutil.copytree(ROOT / "templates", folder / "templates", dirs_exist_ok=True)
    return folder


def funnels_project(folder: Path, names: list[str]) -> Path:
    """The minimal project plus copies of its funnel under other ids (`names` may include 'minimal')."""
    project = minimal_project(folder)
    text = (project / "sequences" / "minimal.yaml").read_text()
    for name in names:
        if name != "minimal":
            copy = text.replace("funnel: minimal", f"funnel: {name}", 1)
            (project / "sequences" / f"{name}.yaml").write_text(copy)
    return project


PART = '{% include "t/part-" ~ subscriber.locale ~ ".html" %}'


def magnet_with_a_part_per_locale(project: Path) -> Path:
    """The minimal magnet includes t/part-<locale>.html, and only the 'en' part exists: validate
    checks the sample's 'en' part only, so the files load and break for any other locale (an
    email the release cannot render: held). Returns the templates' t/ folder."""
    templates = project / "templates" / "t"
    (templates / "part-en.html").write_text("<p>English part</p>")
    magnet = templates / "magnet.html"
    magnet.write_text(magnet.read_text().replace("{% endblock %}", PART + "{% endblock %}"))
    return templates
