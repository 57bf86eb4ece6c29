"""A project folder: sequences/*.yaml, broadcasts/*.yaml and templates/, checked and compiled together."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.errors import SequenceError, SequenceFileError, UnknownFunnelError, display_path
from engine.mail.render import Renderer
from engine.project.release import Snapshot, read_snapshot
from engine.project.templates import TemplateChecker
from engine.sequences.broadcast_check import check_broadcast, parse_broadcast, warn_broadcast
from engine.sequences.broadcast_compile import compile_broadcast
from engine.sequences.broadcast_model import Broadcast
from engine.sequences.compile import compile_funnel
from engine.sequences.loader import Marks, load_text
from engine.sequences.model import Funnel
from engine.sequences.plan import BroadcastPlan, Plan
from engine.sequences.structure import parse_funnel
from engine.sequences.validate import check_funnel
from engine.sequences.warnings import warn_funnel

SUFFIXES = (".yaml", ".yml")
# The `funnel: <id>` line of a file that does not load, so that its funnel is known to be
# broken (its subscribers wait for a fix), not gone.
_DECLARED = re.compile(r"""^funnel:[ \t]*["']?([^"'\s#]+)""", re.MULTILINE)
# A file named on the command line is a broadcast file when it starts a line with `broadcast:`.
_BROADCAST = re.compile(r"^broadcast:", re.MULTILINE)


@dataclass(frozen=True)
class LoadedFunnel:
    """A sequence file that parsed, with its model and compiled plan."""

    path: Path
    model: Funnel
    plan: Plan
    marks: Marks = field(compare=False, repr=False)  # where each value stands, for warnings


@dataclass(frozen=True)
class LoadedBroadcast:
    """A broadcast file that passed its checks, with its model and compiled plan."""

    path: Path
    model: Broadcast
    plan: BroadcastPlan
    marks: Marks = field(compare=False, repr=False)


@dataclass
class CheckResult:
    """Every funnel and broadcast that compiled and every error found, over a set of files."""

    files: list[Path] = field(default_factory=list)  # the sequence files
    # The funnels without errors, each plan with its broadcasts attached.
    funnels: list[LoadedFunnel] = field(default_factory=list)
    broadcast_files: list[Path] = field(default_factory=list)
    broadcasts: list[LoadedBroadcast] = field(default_factory=list)  # those without errors, by file name
    errors: list[SequenceError] = field(default_factory=list)
    # Settings that can never take effect (engine/sequences/warnings.py); they fail nothing.
    warnings: list[SequenceError] = field(default_factory=list)
    by_file: dict[Path, list[SequenceError]] = field(default_factory=dict)
    ids: dict[str, Path] = field(default_factory=dict)  # funnel id -> file, errors or not
    broadcast_ids: dict[str, Path] = field(default_factory=dict)  # broadcast id -> its first file


class Project:
    """A folder with sequences/, broadcasts/ and templates/ (and funnel.toml)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sequences_dir = root / "sequences"
        self.broadcasts_dir = root / "broadcasts"
        self.templates_dir = root / "templates"

    def sequence_files(self, paths: list[Path] | None = None) -> list[Path]:
        """The sequence files named (a folder means every .yaml in it); default: sequences/."""
        found: list[Path] = []
        if not paths and not self.sequences_dir.is_dir():
            return found
        for path in paths or [self.sequences_dir]:
            if path.is_dir():
                found.extend(sorted(p for p in path.iterdir() if p.suffix in SUFFIXES))
            else:
                found.append(path)
        return found

    def broadcast_files(self) -> list[Path]:
        """Every .yaml file in broadcasts/, by name (a dated name sorts them by date)."""
        if not self.broadcasts_dir.is_dir():
            return []
        return sorted(p for p in self.broadcasts_dir.iterdir() if p.suffix in SUFFIXES)

    def snapshot(self) -> Snapshot:
        """Every sequence file, broadcast file and template read into memory now: what a
        daemon's release serves."""
        return read_snapshot(self.sequence_files(), self.templates_dir, self.root, self.broadcast_files())

    def check(self, paths: list[Path] | None = None, snapshot: Snapshot | None = None,
              full: bool = True) -> CheckResult:
        """Load, validate and compile every file; collect every error of every file.

        Sequence files first, then broadcast files, each against the funnel it names; each
        funnel's plan carries its broadcasts. `paths` may name both kinds: named broadcast files
        are checked with the project's funnels when no sequence file is named (and only the
        funnels they go to are reported); named sequence files are checked without broadcasts.
        With a `snapshot` (a daemon's release), its files are checked, not the folder's:
        what is checked is what will be served. With `full=False` a template is only found and
        compiled (engine/project/templates.py): an undefined variable, a missing footer or a
        failure with sample data is not an error then; `funnel validate` and the daemon find it.
        """
        result = CheckResult()
        if snapshot is None:
            checker = TemplateChecker(Renderer(self.templates_dir), full)
            files, broadcast_files = self._split(paths)
        else:
            checker = TemplateChecker(Renderer.from_files(self.templates_dir, snapshot.templates), full)
            files, broadcast_files = list(snapshot.sequences), list(snapshot.broadcasts)
        only_broadcasts = bool(paths) and not files
        if only_broadcasts:
            files = self.sequence_files()
        compiled = self._check_funnels(files, checker, snapshot, result)
        needed = {self._check_broadcast(path, checker, snapshot, compiled, result)
                  for path in broadcast_files}
        result.funnels = [replace(loaded, plan=replace(loaded.plan, broadcasts=tuple(
            b.plan for b in result.broadcasts if b.plan.funnel == loaded.plan.funnel)))
            for loaded in result.funnels]
        if only_broadcasts:
            _keep_funnels(result, {result.ids[name] for name in needed if name in result.ids})
        return result

    def _check_funnels(self, files: list[Path], checker: TemplateChecker, snapshot: Snapshot | None,
                       result: CheckResult) -> dict[str, LoadedFunnel]:
        """Check the sequence files into `result`; every funnel that compiled, errors or not."""
        compiled: dict[str, LoadedFunnel] = {}
        unloaded: dict[str, Path] = {}  # the ids of files that do not load: broken, not gone
        for path in files:
            result.files.append(path)
            loaded, errors, declared = self._check_file(path, checker, snapshot)
            if loaded is None and declared is not None:
                unloaded.setdefault(declared, path)
            if loaded is not None:
                first = result.ids.setdefault(loaded.plan.funnel, path)
                if first != path:
                    errors.append(SequenceError(display_path(path), 1, 1,
                                                f"funnel id '{loaded.plan.funnel}' is also used by "
                                                f"{display_path(first)}",
                                                "give each funnel its own id"))
                else:
                    compiled[loaded.plan.funnel] = loaded
            result.by_file[path] = errors
            result.errors.extend(errors)
            if loaded is not None and not errors:
                result.funnels.append(loaded)
                result.warnings.extend(warn_funnel(loaded.model, loaded.plan, loaded.marks))
        for name, path in unloaded.items():  # after: a file that loads keeps its id (and its checks)
            result.ids.setdefault(name, path)
        return compiled

    def _check_broadcast(self, path: Path, checker: TemplateChecker, snapshot: Snapshot | None,
                         compiled: dict[str, LoadedFunnel], result: CheckResult) -> str | None:
        """Check one broadcast file into `result` against the funnels that compiled; the funnel
        id it declares (None if it declares none)."""
        result.broadcast_files.append(path)
        shown = display_path(path)
        text, errors = _read(path, snapshot)
        result.by_file[path] = errors
        doc, more = load_text(text, shown) if text is not None else (None, [])
        if doc is None and [e.problem for e in more] == ["the file is empty"]:  # worded for sequences
            more = [SequenceError(shown, 1, 1, "the file is empty",
                                  "start it with 'broadcast: <id>' (see docs/broadcasts.md)")]
        errors.extend(more)
        broadcast, more = parse_broadcast(doc) if doc is not None and not errors else (None, [])
        errors.extend(more)
        if broadcast is None or doc is None:
            result.errors.extend(errors)
            found = _DECLARED.search(text or "")
            return found.group(1) if found else None
        funnel = compiled.get(broadcast.funnel)
        errors.extend(check_broadcast(broadcast, doc.marks, funnel.model if funnel else None, result.ids))
        first = result.broadcast_ids.setdefault(broadcast.broadcast, path)
        if first != path:
            errors.append(doc.marks.error(("broadcast",), f"broadcast id '{broadcast.broadcast}' is "
                                          f"also used by {display_path(first)}",
                                          "give each broadcast its own id"))
        plan = compile_broadcast(broadcast, shown)
        if funnel is not None:
            errors.extend(checker.check_broadcast(plan, funnel.plan, doc.marks))
        result.errors.extend(errors)
        if not errors and funnel is not None:  # without its funnel, not all of it was checked
            result.broadcasts.append(LoadedBroadcast(path, broadcast, plan, doc.marks))
            result.warnings.extend(warn_broadcast(broadcast, plan, doc.marks, funnel.model))
        return broadcast.funnel

    def _split(self, paths: list[Path] | None) -> tuple[list[Path], list[Path]]:
        """The sequence files and the broadcast files named (default: the whole project)."""
        if not paths:
            return self.sequence_files(), self.broadcast_files()
        sequences: list[Path] = []
        broadcasts: list[Path] = []
        for path in self.sequence_files(paths):
            (broadcasts if self._is_broadcast(path) else sequences).append(path)
        return sequences, broadcasts

    def _is_broadcast(self, path: Path) -> bool:
        """In a folder named broadcasts (the project's, or any), or has a `broadcast:` line."""
        if path.parent.name == "broadcasts" or path.parent.resolve() == self.broadcasts_dir.resolve():
            return True
        try:
            return _BROADCAST.search(path.read_text(encoding="utf-8")) is not None
        except (OSError, UnicodeDecodeError):
            return False  # reported as the sequence file it cannot be

    def load_plans(self) -> CheckResult:
        """The project's funnels for the commands that only read (subscribers show, export):
        every sequence file checked and compiled, each template found and compiled; not the
        variable check and sample renders of `check`, 90% of its time on the shipped examples."""
        return self.check(full=False)

    def plan(self, name: str) -> Plan:
        """The compiled funnel with this id (or file path); its errors raised if it has any."""
        as_path = Path(name)
        paths = [as_path] if as_path.suffix in SUFFIXES and as_path.exists() else None
        result = self.check(paths)
        for loaded in result.funnels:
            if loaded.plan.funnel == name or paths is not None:
                return loaded.plan
        broken = result.ids.get(name) or next(
            (p for p in result.files if p.stem == name or paths is not None), None)
        if broken is not None:
            raise SequenceFileError(result.by_file[broken])
        raise UnknownFunnelError(name, [f.plan.funnel for f in result.funnels])

    def _check_file(self, path: Path, checker: TemplateChecker, snapshot: Snapshot | None = None
                    ) -> tuple[LoadedFunnel | None, list[SequenceError], str | None]:
        """The funnel (None if it does not compile), its errors, and the id the file declares."""
        shown = display_path(path)
        text, errors = _read(path, snapshot)
        if text is None:
            return None, errors, None
        doc, errors = load_text(text, shown)
        if doc is None or errors:
            return None, errors, _declared(text)
        funnel, errors = parse_funnel(doc)
        if funnel is None:
            return None, errors, _declared(text)
        errors = check_funnel(funnel, doc.marks)
        plan = compile_funnel(funnel, shown)
        errors.extend(checker.check(funnel, plan, doc.marks))
        return LoadedFunnel(path, funnel, plan, doc.marks), errors, plan.funnel


def _declared(text: str) -> str | None:
    """The id on a file's `funnel:` line, read as text: for a file that does not load."""
    found = _DECLARED.search(text)
    return found.group(1) if found else None


def _keep_funnels(result: CheckResult, files: set[Path]) -> None:
    """Report only the sequence files `files` (the funnels named broadcasts go to); `result.files`
    still lists every sequence file checked."""
    result.funnels = [loaded for loaded in result.funnels if loaded.path in files]
    dropped = [path for path in result.by_file if path not in files and path not in result.broadcast_files]
    for path in dropped:
        del result.by_file[path]
    result.errors = [error for errors in result.by_file.values() for error in errors]
    gone = {display_path(path) for path in dropped}
    result.warnings = [warning for warning in result.warnings if warning.path not in gone]


def _read(path: Path, snapshot: Snapshot | None) -> tuple[str | None, list[SequenceError]]:
    """A file's text (from the snapshot when there is one), or why it cannot be read."""
    shown = display_path(path)
    try:
        return (path.read_text(encoding="utf-8") if snapshot is None else snapshot.text(path)), []
    except FileNotFoundError:
        return None, [SequenceError(shown, 1, 1, "no such file",
                                    "check the path; sequence and broadcast files end in .yaml")]
    except UnicodeDecodeError as exc:
        return None, [SequenceError(shown, 1, 1, f"the file is not UTF-8 text ({exc.reason})",
                                    "save it as UTF-8")]
