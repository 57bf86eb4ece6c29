"""Schema migrations (Alembic): `funnel db upgrade`, and `funnel run` on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def upgrade(db_engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (the newest by default); a no-op when it is there."""
    with db_engine.begin() as conn:
        command.upgrade(_config(conn), revision)


def current_revision(db_engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with db_engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this version of the engine ships."""
    with_nothing = Config()
    with_nothing.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(with_nothing).get_current_head()


def revision(db_engine: Engine, message: str) -> None:
    """Write a new migration from the difference between the tables and the database (developers)."""
    with db_engine.begin() as conn:
        command.revision(_config(conn), message=message, autogenerate=True)
