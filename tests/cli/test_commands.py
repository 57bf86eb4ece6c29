"""The `funnel` group imports a command's module only when the command runs (engine/cli/main.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys

from engine.cli.main import COMMANDS, main


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
