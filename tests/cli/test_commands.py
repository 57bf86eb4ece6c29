"""The `funnel` group imports a command's module only when the command runs (engine/cli/main.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.main import COMMANDS, Context, main
from engine.scheduler.clock import SystemClock


def test_commands_names_the_module_of_every_command() -> None:
    for module in sorted(set(COMMANDS.values())):
        importlib.import_module(module)
    assert sorted(main.commands) == sorted(COMMANDS)
    for name, module in COMMANDS.items():
        assert main.commands[name].callback.__module__ == module, name


def test_subscribers_show_does_not_import_the_daemon() -> None:
    """Looking up `subscribers` imports its module, not the daemon's (web app, scheduler, Alembic)."""
    heavy = ("engine.cli.daemon", "engine.daemon.wiring", "alembic", "fastapi", "rich")
    code = ("import sys; from engine.cli.main import main; import click; "
            "main.get_command(click.Context(main), 'subscribers'); "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_commands_clock_is_asked_only_after_its_database_is_open(tmp_path: Path) -> None:
    """A --time-scale demo's database has a clock of its own; before it is read, none can be given."""
    context = Context(tmp_path)
    with pytest.raises(RuntimeError, match="before the database was opened"):
        context.clock(SystemClock())
