"""The funnels a daemon runs: compiled from the project, swapped whole when the files change."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from engine.errors import SequenceFileError
from engine.logs import log
from engine.mail.render import Renderer
from engine.project.folder import Project
from engine.sequences.plan import Plan


@dataclass(frozen=True)
class Funnels:
    """One consistent generation of compiled plans and the renderer of their templates."""

    plans: Mapping[str, Plan]
    renderer: Renderer
    stamp: tuple[tuple[str, int, int], ...]


def _stamp(project: Project) -> tuple[tuple[str, int, int], ...]:
    """Every file under sequences/ and templates/ with its modification time and size.

    Names are part of it: renaming a file (which keeps its mtime) is a change too.
    """
    found = []
    for folder in (project.sequences_dir, project.templates_dir):
        for root, _dirs, files in os.walk(folder):
            for name in files:
                path = os.path.join(root, name)
                try:
                    info = os.stat(path)
                except FileNotFoundError:  # removed while we looked
                    continue
                found.append((path, info.st_mtime_ns, info.st_size))
    return tuple(sorted(found))


def load_funnels(project: Project) -> Funnels:
    """Check and compile every funnel; raise SequenceFileError when any file has a mistake."""
    stamp = _stamp(project)
    result = project.check()
    if result.errors:
        raise SequenceFileError(result.errors)
    plans = {loaded.plan.funnel: loaded.plan for loaded in result.funnels}
    return Funnels(plans, Renderer(project.templates_dir), stamp)


class LiveFunnels:
    """The current generation; `reload_if_changed` swaps in a new one only when it is valid.

    Subscribers keep their step ids across a reload (see docs/interpreter.md): a broken
    edit must not stop the daemon, so it keeps running the last good files and logs why.
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        self.current = load_funnels(project)
        self._failed_stamp: tuple[tuple[str, int, int], ...] | None = None

    def reload_if_changed(self) -> bool:
        """Reload when a file under sequences/ or templates/ changed; True when plans were swapped."""
        stamp = _stamp(self.project)
        if stamp in (self.current.stamp, self._failed_stamp):
            return False
        try:
            fresh = load_funnels(self.project)
        except SequenceFileError as error:
            self._failed_stamp = stamp
            log(
                "reload_failed",
                errors=[str(e) for e in error.errors],
                hint="the daemon keeps running the last valid files; fix these and save again",
            )
            return False
        before = set(self.current.plans)
        self.current = fresh
        log(
            "reloaded",
            funnels=sorted(fresh.plans),
            added=sorted(set(fresh.plans) - before),
            removed=sorted(before - set(fresh.plans)),
        )
        return True
