"""The exceptions the engine raises; each says what went wrong and what to do."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def closest(word: str, options: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The option most like `word`, when one is close enough to be a likely typo of it."""
    found = difflib.get_close_matches(word, list(options), n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(word: str, options: Iterable[str], otherwise: str, cutoff: float = 0.6) -> str:
    """"did you mean 'x'?" for a likely typo of an option; `otherwise` when none is close."""
    match = closest(word, options, cutoff)
    return f"did you mean '{match}'?" if match else otherwise


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
        choices = f"known funnels: {', '.join(sorted(known)) or 'none'}"
        super().__init__(f"no funnel named '{name}'; {did_you_mean(name, known, choices)}")


class UnknownStepError(EngineError):
    """The funnel has no step with that id."""

    def __init__(self, funnel: str, step: str, known: list[str]) -> None:
        steps = f"its steps are: {', '.join(known)}"
        super().__init__(f"funnel '{funnel}' has no step '{step}'; "
                         f"{did_you_mean(step, known, steps)}")
