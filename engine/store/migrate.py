"""Schema migrations (Alembic): `funnel db upgrade`, and `funnel run` on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine

from engine.store.db import DatabaseError, shown_url

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


class NewerSchema(DatabaseError):
    """The database was migrated by a newer version of the engine than this one."""


def upgrade(db_engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (the newest by default); a no-op when it is there.

    NewerSchema when a newer version of the engine migrated the database past what this
    version ships: this version must not write into a schema it does not know.
    """
    found = current_revision(db_engine)
    if found is not None and not _ships(found):
        raise NewerSchema(
            f"the database {shown_url(db_engine)} is at schema revision {found}, which this version "
            f"of funnel-engine does not know (its newest is {head_revision()}): a newer version "
            "migrated it; run that version, or restore a backup taken before the upgrade (docs/deploy.md)"
        )
    with db_engine.begin() as conn:
        command.upgrade(_config(conn), revision)


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _ships(revision: str) -> bool:
    """Whether this version of the engine has migration `revision`."""
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:  # "Can't locate revision identified by ..."
        return False


def current_revision(db_engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with db_engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this version of the engine ships."""
    return _scripts().get_current_head()


def revision(db_engine: Engine, message: str) -> None:
    """Write a new migration from the difference between the tables and the database (developers)."""
    with db_engine.begin() as conn:
        command.revision(_config(conn), message=message, autogenerate=True)
