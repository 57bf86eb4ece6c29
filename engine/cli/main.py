"""The `funnel` command group and what every command shares: the project folder and settings."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import click

from engine.config import Settings, load_settings
from engine.errors import EngineError
from engine.project.folder import Project
from engine.scheduler.clock import Clock
from engine.store.db import DbEngine


class Context:
    """What the group passes to its commands; settings are read on first use."""

    def __init__(self, project: Path) -> None:
        self.root = project
        self.project = Project(project)
        self.demo_clock: Clock | None = None  # a --time-scale demo's, when its database is open

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
        except EngineError as error:
            raise click.ClickException(str(error)) from error
        click.get_current_context().call_on_close(db_engine.dispose)
        return db_engine

    def clock(self, default: Clock) -> Clock:
        """The time commands write with: an open demo database's own (its daemon runs in the
        future), else `default` (the command module's clock, which tests freeze)."""
        return self.demo_clock or default


pass_project = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The project folder (with sequences/ and templates/).")
@click.version_option(package_name="funnel-engine")
@click.pass_context
def main(ctx: click.Context, project: Path) -> None:
    """funnel-engine: email funnels from sequence files."""
    ctx.obj = Context(project)
