"""`funnel init`: start a new project folder."""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli.main import Context, main, pass_project
from engine.errors import EngineError, display_path
from engine.project.scaffold import STARTER_FUNNEL, create_project


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that are there already.")
@pass_project
def init(obj: Context, directory: Path | None, force: bool) -> None:
    """Create a new project in DIRECTORY (default: --project, or this folder).

    One small funnel to edit (sequences/home-bakery.yaml and its templates), a commented
    funnel.toml, a .gitignore, and the JSON Schema wired into editors.
    """
    root = directory if directory is not None else obj.root
    try:
        created = create_project(root, force=force)
    except (EngineError, OSError) as error:
        raise click.ClickException(str(error)) from error
    replaced = set(created.overwritten)
    click.echo(f"Created a new project in {root}:")
    for path in created.files:
        click.echo(f"  {path}{'  (overwritten)' if path in replaced else ''}")
    click.echo("\nNext:")
    if root.resolve() != Path.cwd().resolve():
        click.echo(f"  cd {_shell_word(display_path(root))}")
    click.echo("  funnel validate                              # check the funnel and its templates")
    click.echo(f"  funnel simulate {STARTER_FUNNEL} --answer baked=never   # the emails one subscriber gets")
    click.echo("  funnel run                                   # the daemon: emails go to outbox/")


def _shell_word(text: str) -> str:
    """`text` as one shell word (quoted only when it needs to be)."""
    if text and all(ch.isalnum() or ch in "-_./~+" for ch in text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"
