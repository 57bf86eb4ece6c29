"""The operator's commands: run the daemon, upgrade the database."""

from __future__ import annotations

import asyncio
import sys
import time

import click

from engine.cli.main import Context, main, pass_project
from engine.config import database_url
from engine.daemon import heap
from engine.daemon.listen import CannotListen, bound_port, listen
from engine.daemon.pool import WorkerPool
from engine.daemon.runner import Runner
from engine.daemon.wiring import build_daemon, open_database
from engine.errors import EngineError, SequenceFileError
from engine.logs import label_lines, setup_logging
from engine.store.migrate import current_revision, head_revision
from engine.store.migrate import upgrade as migrate

# `funnel run`'s exit statuses (docs/operations.md, "Start-up failures and exit codes").
EXIT_CANNOT_START = 1  # the settings, the sequence files or the database: the line says which
EXIT_CANNOT_LISTEN = 3  # the address: a port in use, one below 1024, an address this machine lacks


class _CannotStart(click.ClickException):
    """One line on stderr ("Error: ..."), no traceback; exit status 1."""

    exit_code = EXIT_CANNOT_START


class _CannotListen(_CannotStart):
    """The address cannot be listened on; exit status 3."""

    exit_code = EXIT_CANNOT_LISTEN


@main.command()
@click.option("--host", help="Address to listen on (default: setting 'host', 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port to listen on (default: setting 'port', 8000)."
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=1.0),
    default=1.0,
    show_default=True,
    help="Run the clock this many times faster (demos, end-to-end tests); "
    "uses funnel-demo.db unless FUNNEL_DATABASE_URL is set.",
)
@click.option("--force", is_flag=True, help="Allow --time-scale with a transport that really sends.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Processes that tick and send, this one included (default: setting 'workers', 1); "
    "each keeps smtp_connections open.",
)
@pass_project
def run(
    obj: Context, host: str | None, port: int | None, time_scale: float, force: bool, workers: int | None
) -> None:
    """Run the daemon: scheduler, sending and the HTTP server, until SIGTERM."""
    try:
        settings = obj.settings
    except EngineError as error:
        raise _CannotStart(str(error)) from error
    overrides = {k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None}
    settings = settings.model_copy(update=overrides)
    if time_scale != 1.0 and settings.transport != "outbox" and not force:
        raise click.UsageError(
            f"--time-scale {time_scale:g} would send real mail {time_scale:g} times faster than "
            f"planned through transport '{settings.transport}'; use the outbox transport "
            "(FUNNEL_TRANSPORT=outbox) or add --force"
        )
    setup_logging(settings.log_level)
    if settings.workers > 1:
        label_lines(worker=1)  # the extra workers are 2..N
    # The socket first: a port in use fails here, before the database, threads or scheduler start.
    try:
        sock = listen(settings.host, settings.port)
    except CannotListen as error:
        raise _CannotListen(str(error)) from error
    try:
        settings = settings.model_copy(update={"port": bound_port(sock)})  # --port 0: the one picked
        daemon = build_daemon(settings, obj.root, time_scale=time_scale)
    except SequenceFileError as error:
        sock.close()
        for line in error.errors:
            click.echo(str(line), err=True)
        raise _CannotStart(
            "the sequence files have errors; fix them (funnel validate) and start again"
        ) from error
    except EngineError as error:
        sock.close()
        raise _CannotStart(str(error)) from error
    except OSError as error:  # a project folder it cannot write (the secret, the outbox)
        sock.close()
        raise _CannotStart(
            f"cannot start: {error.strerror or error} ({error.filename or 'a file'}); make the project "
            "folder writable for this user, or run from a folder you own"
        ) from error
    pool = WorkerPool(settings, obj.root, time_scale, daemon.metrics) if settings.workers > 1 else None
    heap.settle()  # what start-up built lives as long as the process: out of the collector's way
    sys.exit(asyncio.run(Runner(daemon, sock, pool=pool).run()))


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@pass_project
def upgrade(obj: Context) -> None:
    """Create or migrate the database to this version's schema (funnel run does it too)."""
    try:
        db_engine = open_database(obj.settings, obj.root, migrate=False)
        before = current_revision(db_engine)
        migrate(db_engine)
        after = current_revision(db_engine)
        db_engine.dispose()
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    url = database_url(obj.settings, obj.root)
    shown = url if url.startswith("sqlite") else url.split("@")[-1]
    if before == after:
        click.echo(f"database {shown} is up to date (revision {after}, newest {head_revision()})")
    else:
        click.echo(f"database {shown} upgraded from revision {before or 'none (empty)'} to {after}")


@db.command()
@click.option("--check", is_flag=True,
              help="Only compare the stats tallies with a recount from the rows (reads only: safe "
                   "beside running daemons).")
@pass_project
def recount(obj: Context, check: bool) -> None:
    """Count the stats tallies afresh from the rows (docs/stats.md, "Cost"); --check only compares."""
    from engine.store import tallies

    db_engine = obj.database()
    began = time.monotonic()
    if check:
        with db_engine.connect() as conn:
            found = tallies.differences(conn)
        for line in found:
            click.echo(line)
        if found:
            click.echo(f"the stats tallies differ from a recount in {len(found)} places; "
                       "run `funnel db recount` (writers wait while it counts)", err=True)
            sys.exit(1)
        click.echo(f"the stats tallies equal a recount from the rows ({time.monotonic() - began:.1f} s)")
        return
    with db_engine.begin() as conn:
        tallies.replace_totals(conn)
    click.echo(f"the stats tallies were counted afresh from the rows ({time.monotonic() - began:.1f} s)")
