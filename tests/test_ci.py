"""CI runs the README's test command: the same pytest arguments, both cores (pytest-xdist)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tests.support.order import WAITING, waiting_first

ROOT = Path(__file__).resolve().parent.parent


def _readme_pytest() -> list[str]:
    """The pytest command of the README's "run the whole test suite" line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    line = re.search(r"^.*pip install -e '\.\[test\]' && (pytest.*)$", text, re.M)
    assert line is not None, "README.md lost its test command (pip install -e '.[test]' && pytest ...)"
    return shlex.split(line.group(1))


def _ci_pytest() -> list[str]:
    """The pytest command .ci/run runs."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    commands = [shlex.split(line) for line in lines if line.startswith("pytest")]
    assert len(commands) == 1, f".ci/run should run pytest once, found {commands}"
    return commands[0]


def test_ci_runs_the_readme_test_command() -> None:
    assert _ci_pytest() == _readme_pytest()


def test_the_test_command_uses_every_core_and_the_test_extras_bring_xdist() -> None:
    command = _readme_pytest()
    assert command[command.index("-n") + 1] == "auto", command
    extras = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^\s*"pytest-xdist[>=<]', extras, re.M), "pytest-xdist is not in the test extras"


@dataclass(frozen=True)
class _Item:
    nodeid: str


def _items(quick: int) -> list[Any]:
    waiting = [_Item(f"{module}::test_{n}") for module in WAITING for n in range(2)]
    return [_Item(f"tests/test_quick.py::test_{n}") for n in range(quick)] + waiting


def test_each_worker_starts_on_its_share_of_the_waiting_tests_and_none_is_lost() -> None:
    items = _items(100)
    ordered = waiting_first(cast(Any, items), 2)
    assert sorted(i.nodeid for i in ordered) == sorted(i.nodeid for i in items)
    first, second = ordered[: len(ordered) // 2], ordered[len(ordered) // 2:]
    modules = [{i.nodeid.split("::")[0] for i in half if i.nodeid.split("::")[0] in WAITING}
               for half in (first, second)]
    assert modules == [set(WAITING[0::2]), set(WAITING[1::2])]
    assert first[0].nodeid == f"{WAITING[0]}::test_0" and second[0].nodeid == f"{WAITING[1]}::test_0"


def test_without_xdist_the_order_is_the_files() -> None:
    items = _items(10)
    assert waiting_first(cast(Any, items), 1) == items
