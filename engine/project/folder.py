"""A project folder: sequences/*.yaml and templates/, checked and compiled together."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import SequenceError, SequenceFileError, UnknownFunnelError, display_path
from engine.mail.render import Renderer
from engine.project.release import Snapshot, read_snapshot
from engine.project.templates import TemplateChecker
from engine.sequences.compile import compile_funnel
from engine.sequences.loader import Marks, load_text
from engine.sequences.model import Funnel
from engine.sequences.plan import Plan
from engine.sequences.structure import parse_funnel
from engine.sequences.validate import check_funnel
from engine.sequences.warnings import warn_funnel

SUFFIXES = (".yaml", ".yml")
# The `funnel: <id>` line of a file that does not load, so that its funnel is known to be
# broken (its subscribers wait for a fix), not gone.
_DECLARED = re.compile(r"""^funnel:[ \t]*["']?([^"'\s#]+)""", re.MULTILINE)


@dataclass(frozen=True)
class LoadedFunnel:
    """A sequence file that parsed, with its model and compiled plan."""

    path: Path
    model: Funnel
    plan: Plan
    marks: Marks = field(compare=False, repr=False)  # where each value stands, for warnings


@dataclass
class CheckResult:
    """Every funnel that compiled and every error found, over a set of files."""

    files: list[Path] = field(default_factory=list)
    funnels: list[LoadedFunnel] = field(default_factory=list)
    errors: list[SequenceError] = field(default_factory=list)
    # Settings that can never take effect (engine/sequences/warnings.py); they fail nothing.
    warnings: list[SequenceError] = field(default_factory=list)
    by_file: dict[Path, list[SequenceError]] = field(default_factory=dict)
    ids: dict[str, Path] = field(default_factory=dict)  # funnel id -> file, errors or not


class Project:
    """A folder with sequences/ and templates/ (and, later, funnel.toml)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sequences_dir = root / "sequences"
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

    def snapshot(self) -> Snapshot:
        """Every sequence file and template read into memory now: what a daemon's release serves."""
        return read_snapshot(self.sequence_files(), self.templates_dir, self.root)

    def check(self, paths: list[Path] | None = None, snapshot: Snapshot | None = None,
              full: bool = True) -> CheckResult:
        """Load, validate and compile every file; collect every error of every file.

        With a `snapshot` (a daemon's release), its files are checked, not the folder's:
        what is checked is what will be served. With `full=False` a template is only found and
        compiled (engine/project/templates.py): an undefined variable, a missing footer or a
        failure with sample data is not an error then; `funnel validate` and the daemon find it.
        """
        result = CheckResult()
        if snapshot is None:
            checker = TemplateChecker(Renderer(self.templates_dir), full)
            files = self.sequence_files(paths)
        else:
            checker = TemplateChecker(Renderer.from_files(self.templates_dir, snapshot.templates), full)
            files = list(snapshot.sequences)
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
            result.by_file[path] = errors
            result.errors.extend(errors)
            if loaded is not None and not errors:
                result.funnels.append(loaded)
                result.warnings.extend(warn_funnel(loaded.model, loaded.plan, loaded.marks))
        for name, path in unloaded.items():  # after: a file that loads keeps its id (and its checks)
            result.ids.setdefault(name, path)
        return result

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
        try:
            text = path.read_text(encoding="utf-8") if snapshot is None else snapshot.text(path)
        except FileNotFoundError:
            return None, [SequenceError(shown, 1, 1, "no such file",
                                        "check the path; sequence files end in .yaml")], None
        except UnicodeDecodeError as exc:
            return None, [SequenceError(shown, 1, 1, f"the file is not UTF-8 text ({exc.reason})",
                                        "save it as UTF-8")], None
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
