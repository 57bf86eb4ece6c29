"""What the quick commands import: the libraries a command does not use stay out of its process.

Pinned by the modules loaded, not by timing: `funnel --version` and `--help` need click alone;
`subscribers show` reads the project and the database, and nothing of the daemon's (issue 14:
importing is most of what these commands spend, docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Cli, write

# What `--version` and `--help` must not import: the settings' pydantic, the store's SQLAlchemy,
# the sequence files' YAML and the templates' Jinja, and any command's module.
_NOT_FOR_THE_GROUP = ("sqlalchemy", "sqlmodel", "pydantic", "jinja2", "yaml", "engine.config",
                      "engine.project", "engine.store", "engine.sequences", "engine.mail")
# What `subscribers show` must not import: the daemon, the web app, sending, the migrations, and
# the ORM (the tables are Core tables: engine/store/tables.py).
_NOT_FOR_SHOW = ("fastapi", "starlette", "uvicorn", "alembic", "apscheduler", "aiosmtplib", "dkim",
                 "cryptography", "dns", "rich", "engine.daemon", "engine.web", "engine.store.migrate",
                 "sqlmodel", "sqlalchemy.orm")


def _imported(args: list[str], unwanted: tuple[str, ...], env: dict[str, str] | None = None) -> list[str]:
    """Which of `unwanted` (packages or modules) a fresh process has imported after `funnel ARGS`."""
    code = f"""if True:
        import json, sys
        from engine.cli.main import main
        try:
            main({args!r}, standalone_mode=False)
        except SystemExit as stop:
            assert not stop.code, stop.code
        loaded = [u for u in {unwanted!r} if any(m == u or m.startswith(u + ".") for m in sys.modules)]
        print(json.dumps(loaded))
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})})
    result: list[str] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_version_imports_click_alone() -> None:
    assert _imported(["--version"], _NOT_FOR_THE_GROUP) == []


def test_help_imports_no_command() -> None:
    assert _imported(["--help"], (*_NOT_FOR_THE_GROUP, "engine.cli.")) == []


def test_subscribers_show_imports_nothing_of_the_daemon(sqlite_cli: Cli, tmp_path: Path) -> None:
    write(tmp_path / "people.csv", "email,name\nann@example.com,Ann Lee\n")
    assert sqlite_cli("subscribers", "import", "people.csv", "--funnel", "minimal").exit_code == 0
    args = ["--project", str(sqlite_cli.project), "subscribers", "show", "ann@example.com"]
    assert _imported(args, _NOT_FOR_SHOW, {"FUNNEL_DATABASE_URL": sqlite_cli.db_url}) == []


# What the authoring commands must not import: they read files, not the database or the settings.
_NOT_FOR_AUTHORING = ("sqlalchemy", "alembic", "fastapi", "apscheduler", "aiosmtplib", "dkim", "cryptography",
                      "rich", "engine.config", "engine.store", "engine.daemon", "engine.web")


def test_validate_preview_and_simulate_import_no_database(project: Path) -> None:
    for args in (["validate"], ["preview", "minimal", "o2"], ["simulate", "minimal"]):
        assert _imported(["--project", str(project), *args], _NOT_FOR_AUTHORING) == [], args
