"""The `funnel` group imports a command's module only when the command runs (engine/cli/main.py)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from engine.cli.main import COMMANDS, SUMMARIES, Context, main
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


def test_summaries_are_each_commands_own_first_sentence() -> None:
    """`--help` lists SUMMARIES for commands not imported: each shortens as its command's help does."""
    for module in sorted(set(COMMANDS.values())):
        importlib.import_module(module)
    assert sorted(SUMMARIES) == sorted(COMMANDS)
    for name, summary in SUMMARIES.items():
        command, stand_in = main.commands[name], click.Command(name, help=summary)
        assert not command.hidden and not command.deprecated and command.short_help is None, name
        for limit in range(0, 160):
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), (name, limit)


def test_help_is_the_same_without_the_command_modules() -> None:
    """`funnel --help` imports no command's module, and prints what it prints with all of them imported."""
    code = """if True:
        import importlib, json, sys
        from click.testing import CliRunner
        from engine.cli.main import COMMANDS, main

        def helps():
            return [CliRunner().invoke(main, ["--help"], terminal_width=w).output for w in (30, 60, 80, 200)]

        lazy = helps()
        imported = sorted(m for m in set(COMMANDS.values()) if m in sys.modules)
        for module in sorted(set(COMMANDS.values())):
            importlib.import_module(module)
        print(json.dumps([imported, lazy == helps(), "Commands:" in lazy[2]]))
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [[], True, True]
