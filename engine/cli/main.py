"""The `funnel` command group and what every command shares: the project folder and settings.

Nothing but click is imported here at module level: `funnel --version` and `funnel --help`
need no more, and each command imports what it uses (the settings bring in pydantic, the
project folder pydantic, YAML and Jinja, the store SQLAlchemy: 0.6 s of CPU together here,
which `--version` used to wait for). tests/cli/test_lightness.py keeps it so.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from functools import cached_property
from gettext import gettext
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.project.folder import Project
    from engine.scheduler.clock import Clock
    from engine.sequences.plan import Plan
    from engine.store.db import DbEngine

T = TypeVar("T")


class Context:
    """What the group passes to its commands; settings are read on first use."""

    def __init__(self, project: Path) -> None:
        self.root = project
        self.demo_clock: Clock | None = None  # a --time-scale demo's, when its database is open
        self._opened = False  # whether the database (and so its clock mark) was read yet

    @cached_property
    def project(self) -> Project:
        """The project folder's sequences, broadcasts and templates."""
        from engine.project.folder import Project

        return Project(self.root)

    def plans(self, unshown: str, files: Collection[Path] | None = None) -> dict[str, Plan]:
        """The project's funnels by id, compiled without the templates' sample renders (a report
        renders nothing; `funnel validate` does those). Each file of `files` (default: every
        file) that has errors is named on stderr: "<file> has errors (run funnel validate); "
        and `unshown`, what the command leaves out for it."""
        from engine.errors import display_path

        result = self.project.load_plans()
        for path, errors in sorted(result.by_file.items()):
            if errors and (files is None or path in files):
                click.echo(f"{display_path(path)} has errors (run funnel validate); {unshown}", err=True)
        return {loaded.plan.funnel: loaded.plan for loaded in result.funnels}

    @cached_property
    def settings(self) -> Settings:
        """funnel.toml and FUNNEL_ variables, read once."""
        from engine.config import load_settings

        return load_settings(self.root)

    def database(self) -> DbEngine:
        """The migrated database, disposed when the command ends, however it ends."""
        from engine.daemon.wiring import (
            command_clock,
            open_database,  # the daemon's wiring is heavy; only commands that need it
        )
        from engine.errors import EngineError

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
        from engine.config import database_url
        from engine.errors import EngineError
        from engine.scheduler.clock import marked_clock
        from engine.store import meta
        from engine.store.db import DbError, make_engine

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


# What `funnel --help` lists for each command: the first sentence of its docstring, as click
# shortens it. Listing them from here spares `--help` importing every command's module (1.4 s
# of CPU here, the daemon's above all); tests/cli/test_commands.py checks that each is its
# command's own first sentence, and that `--help` prints the same either way.
SUMMARIES = {
    "broadcast": "One-off emails (broadcasts/*.yaml): list, audience, preview, schedule, cancel, stats.",
    "db": "Database maintenance.",
    "dkim": "DKIM keys that sign the mail (docs/dkim.md).",
    "doctor": "Check the sending domains' DNS (SPF, DKIM, DMARC, MX) and base_url; print what to fix.",
    "experiments": "Each email with variants: sends, clicks or buyers, rate with its 95% interval, chance to "
                   "be best, and what the rule decides now (a broadcast's winner once kept).",
    "form": "Print an HTML signup form for a funnel, to paste into a web page.",
    "init": "Create a new project in DIRECTORY (default: --project, or this folder).",
    "pause": "Pause an email step by hand: who reaches it waits there until `funnel resume`.",
    "preview": "Render one email (HTML and plain text) with sample subscriber data.",
    "resume": "Resume a paused email step: everyone waiting at it goes on at the daemon's next tick.",
    "run": "Run the daemon: scheduler, sending and the HTTP server, until SIGTERM.",
    "schema": "Print the JSON Schema of sequence files (or of broadcast files), for editors.",
    "send-test": "Send one email of a funnel to ADDRESS, with sample data, through the configured transport.",
    "simulate": "Print the dated timeline one subscriber would receive.",
    "stats": "Stages with conversions, answers, segments, sources, revenue, products and every "
             "email's numbers.",
    "subscribers": "Import, export, look up and erase subscribers.",
    "validate": "Check sequence and broadcast files (default: the project's sequences/ and broadcasts/); "
                "exit 1 on any error.",
}


class _Commands(click.Group):
    """A group that imports a command's module when the command is looked up (COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click writes it, but a command not imported yet stands in with its SUMMARIES line."""
        commands = [(name, self.commands.get(name) or click.Command(name, help=SUMMARIES[name]))
                    for name in self.list_commands(ctx)]
        commands = [(name, command) for name, command in commands if not command.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section(gettext("Commands")):  # as click words it
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in commands])


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The project folder (with sequences/ and templates/).")
@click.version_option(package_name="funnel-engine")
@click.pass_context
def main(ctx: click.Context, project: Path) -> None:
    """funnel-engine: email funnels from sequence files."""
    ctx.obj = Context(project)
