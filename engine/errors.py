"""The exceptions the engine raises; each says what went wrong and what to do."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class EngineError(Exception):
    """Something the engine cannot do; the message says what to change."""


def display_path(path: Path) -> str:
    """`path` relative to the working folder when it is below it; as given otherwise."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:  # another drive (Windows)
        return str(path)


@dataclass(frozen=True, order=True)
class SequenceError:
    """One mistake in a sequence file or template, at a position a marketer can open."""

    path: str
    line: int
    column: int
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        return f"{where}: {self.problem}; {self.fix}" if self.fix else f"{where}: {self.problem}"


class SequenceFileError(EngineError):
    """A sequence file has mistakes; fix each listed line and run `funnel validate` again."""

    def __init__(self, errors: list[SequenceError]) -> None:
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class UnknownFunnelError(EngineError):
    """No funnel has that id; `funnel validate` lists the funnels of the project."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        choices = ", ".join(sorted(known)) or "none"
        super().__init__(f"no funnel named '{name}'; known funnels: {choices}")


class UnknownStepError(EngineError):
    """The funnel has no step with that id."""

    def __init__(self, funnel: str, step: str, known: list[str]) -> None:
        super().__init__(
            f"funnel '{funnel}' has no step '{step}'; its steps are: {', '.join(known)}"
        )
