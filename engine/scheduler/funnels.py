"""The funnels a daemon runs: compiled from the project, swapped whole when the files change."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import SequenceFileError
from engine.logs import log
from engine.mail.render import Renderer
from engine.project.folder import Project
from engine.project.release import Release, changes, make_release
from engine.sequences.plan import Plan


@dataclass(frozen=True)
class Funnels:
    """One release: compiled plans and the renderer of their templates, from one snapshot of the files."""

    plans: Mapping[str, Plan]
    renderer: Renderer
    stamp: tuple[tuple[str, int, int], ...]
    release: Release


# Called in the database thread when a release goes live, before any tick acts on it.
OnRelease = Callable[[Funnels], None]


def _stamp(project: Project) -> tuple[tuple[str, int, int], ...] | None:
    """Every file under sequences/, broadcasts/ and templates/ with its modification time and size.

    Names are part of it: renaming a file (which keeps its mtime) is a change too. None when
    a file or folder went away while it was looked at: the folder is changing (a rename seen
    halfway: the old name listed, then gone, the new one not listed), so it is looked at again
    at the next tick rather than read as a state it was never in.
    """
    found = []
    vanished: list[OSError] = []
    for folder in (project.sequences_dir, project.broadcasts_dir, project.templates_dir):
        if not os.path.isdir(folder):  # broadcasts/ is optional
            continue
        for root, _dirs, files in os.walk(folder, onerror=vanished.append):
            for name in files:
                path = os.path.join(root, name)
                try:
                    info = os.stat(path)
                except FileNotFoundError:
                    if os.path.lexists(path):  # a link to nothing (an editor's lock file): as before
                        continue
                    return None  # removed or renamed while we looked
                found.append((path, info.st_mtime_ns, info.st_size))
    if any(isinstance(error, FileNotFoundError) for error in vanished):  # a folder, the same
        return None
    return tuple(sorted(found))


def load_funnels(project: Project) -> Funnels:
    """Read the files once, check and compile every funnel; SequenceFileError when any has a mistake.

    The renderer serves the snapshot that was checked: no template is read from disk
    after this, so a file renamed or broken later cannot fail an email.
    """
    stamp = _stamp(project) or ()  # () while the folder changes: the next tick looks again
    snapshot = project.snapshot()
    result = project.check(snapshot=snapshot)
    if result.errors:
        raise SequenceFileError(result.errors)
    plans = {loaded.plan.funnel: loaded.plan for loaded in result.funnels}
    release = make_release(snapshot, plans.values())
    return Funnels(plans, Renderer.from_files(project.templates_dir, snapshot.templates), stamp, release)


class LiveFunnels:
    """The current generation; `reload_if_changed` swaps in a new one only when it is valid.

    Subscribers keep their step ids across a reload (see docs/interpreter.md): a broken
    edit must not stop the daemon, so it keeps running the last good release (plans and
    templates) and logs why.
    """

    def __init__(self, project: Project, on_release: OnRelease | None = None, settle: float = 0.0) -> None:
        self.project = project
        self.on_release = on_release
        # A file saved less than `settle` seconds ago may be half-written (an editor that
        # truncates, then writes): it is read at a later tick, once it has stayed put.
        self.settle_ns = int(settle * 1e9)
        self.current = load_funnels(project)
        self._failed_stamp: tuple[tuple[str, int, int], ...] | None = None
        self._went_live(self.current)

    def reload_if_changed(self) -> bool:
        """Reload when a file under sequences/ or templates/ changed; True when plans were swapped."""
        stamp = _stamp(self.project)
        if stamp is None or stamp in (self.current.stamp, self._failed_stamp) or self._settling(stamp):
            return False
        try:
            fresh = load_funnels(self.project)
        except Exception as error:  # any failure keeps the whole last release, templates too
            self._failed_stamp = stamp
            errors = [str(e) for e in error.errors] if isinstance(error, SequenceFileError) else [
                f"{type(error).__name__}: {error}"]
            log(
                "reload_failed",
                logging.WARNING,
                errors=errors,
                release=self.current.release.id,
                hint="the daemon keeps running the last valid files; fix these and save again",
            )
            return False
        if fresh.release.hash == self.current.release.hash:  # touched, or saved unchanged
            self.current = dataclasses.replace(self.current, stamp=fresh.stamp)
            return False
        before, old = set(self.current.plans), self.current.release
        self.current = fresh
        changed: dict[str, Any] = changes(old, fresh.release)
        log(
            "reloaded",
            release=fresh.release.id,
            previous=old.id,
            funnels=sorted(fresh.plans),
            added=sorted(set(fresh.plans) - before),
            removed=sorted(before - set(fresh.plans)),
            **changed,
        )
        self._went_live(fresh)
        return True

    def _settling(self, stamp: tuple[tuple[str, int, int], ...]) -> bool:
        """Whether a file changed within the settle time (a clock behind a file's mtime does not wait)."""
        newest = max((mtime for _path, mtime, _size in stamp), default=0)
        return 0 <= time.time_ns() - newest < self.settle_ns

    def _went_live(self, funnels: Funnels) -> None:
        if self.on_release is None:
            return
        try:
            self.on_release(funnels)
        except Exception as error:  # the release serves anyway; only its record is missing
            log("release_record_failed", logging.ERROR, release=funnels.release.id,
                error=f"{type(error).__name__}: {error}"[:500])
