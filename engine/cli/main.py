"""The `funnel` command group and what every command shares: the project folder and settings."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import click

from engine.config import Settings, database_url, load_settings
from engine.errors import EngineError
from engine.project.folder import Project
from engine.scheduler.clock import Clock, marked_clock
from engine.store import meta
from engine.store.db import DbEngine, DbError, make_engine

T = TypeVar("T")


class Context:
    """What the group passes to its commands; settings are read on first use."""

    def __init__(self, project: Path) -> None:
        self.root = project
        self.project = Project(project)
        self.demo_clock: Clock | None = None  # a --time-scale demo's, when its database is open
        self._opened = False  # whether the database (and so its clock mark) was read yet

    @cached_property
    def settings(self) -> Settings:
        """funnel.toml and FUNNEL_ variables, read once."""
        return load_settings(self.root)

    def database(self) -> DbEngine:
        """The migrated database, disposed when the command ends, however it ends."""
        from engine.daemon.wiring import (
            command_clock,
            open_database,  # the daemon's wiring is heavy; only commands that need it
        )

        try:
            # A --time-scale demo's database is not refused: its clock is read here, before
            # any transaction (SQLite allows one writer), and `clock` gives its time.
            db_engine = open_database(self.settings, self.root)
            self.demo_clock = command_clock(db_engine)
            self._opened = True
        except EngineError as error:
            raise click.ClickException(str(error)) from error
        click.get_current_context().call_on_close(db_engine.dispose)
        return db_engine

    def read(self, reader: Callable[[DbEngine], T]) -> T:
        """What `reader` reads from the database as it stands: for the commands that only read.

        The database is not migrated first: the check imports Alembic and the daemon's wiring,
        0.17 s of CPU, more than `subscribers show` then takes to read. A database that cannot
        answer (not made yet, an older schema, unreachable) is opened as `database` opens it,
        migrated or its error shown, and `reader` asked again (it must only read).
        """
        try:
            db_engine = make_engine(database_url(self.settings, self.root))
        except EngineError:
            return reader(self.database())  # the same error, worded as every command words it
        click.get_current_context().call_on_close(db_engine.dispose)
        try:
            self.demo_clock = marked_clock(meta.read(db_engine, "clock"))  # a --time-scale demo's
            self._opened = True
            return reader(db_engine)
        except DbError:
            pass
        return reader(self.database())

    def clock(self, default: Clock) -> Clock:
        """The time commands write with: an open demo database's own (its daemon runs in the
        future), else `default` (the command module's clock, which tests freeze).

        Only once the database was opened (`database` or `read`): before, a demo's clock is
        not known yet, and the real time would write the past into its future.
        """
        if not self._opened:
            raise RuntimeError("Context.clock() before the database was opened: open it first")
        return self.demo_clock or default


pass_project = click.make_pass_decorator(Context)

# Which module adds each command (with `@main.command()` when imported). Only the command
# run is imported: all of them take about 1 s to import (the daemon's alone brings in the web
# app, the scheduler and FastAPI), which `funnel subscribers show` would otherwise wait for.
# tests/cli/test_commands.py checks that this names every command.
COMMANDS = {
    "broadcast": "engine.cli.broadcasts",
    "db": "engine.cli.daemon", "run": "engine.cli.daemon", "experiments": "engine.cli.experiments",
    "dkim": "engine.cli.dkim", "doctor": "engine.cli.doctor",
    "form": "engine.cli.form", "init": "engine.cli.init",
    "pause": "engine.cli.guardrails", "resume": "engine.cli.guardrails",
    "preview": "engine.cli.authoring", "schema": "engine.cli.authoring",
    "simulate": "engine.cli.authoring", "validate": "engine.cli.authoring",
    "send-test": "engine.cli.testmail", "stats": "engine.cli.stats",
    "subscribers": "engine.cli.subscribers",
}


class _Commands(click.Group):
    """A group that imports a command's module when the command is looked up (COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The project folder (with sequences/ and templates/).")
@click.version_option(package_name="funnel-engine")
@click.pass_context
def main(ctx: click.Context, project: Path) -> None:
    """funnel-engine: email funnels from sequence files."""
    ctx.obj = Context(project)
