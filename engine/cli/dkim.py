"""`funnel dkim keygen DOMAIN`: a new DKIM key, the DNS record to publish and the settings line to add."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from engine.cli.main import Context, main, pass_project
from engine.mail.dkimkeys import KeyType, generate, parse_entries, private_pem, read_key
from engine.mail.doctor import quoted


@main.group()
def dkim() -> None:
    """DKIM keys that sign the mail (docs/dkim.md)."""


@dkim.command()
@click.argument("domain")
@click.option(
    "--selector",
    help="The DNS label the key is published under (default: TYPE-YYYYMM, "
    "e.g. rsa-202612); a new one for each new key.",
)
@click.option(
    "--type",
    "key_type",
    type=click.Choice([t.value for t in KeyType]),
    default="rsa",
    show_default=True,
    help="rsa (RSA-2048: every receiver checks it) or ed25519 (RFC 8463: "
    "small and cheap, not checked by all receivers yet; sign with both).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dkim"),
    show_default=True,
    help="Folder for the private key, relative to the project.",
)
@pass_project
def keygen(obj: Context, domain: str, selector: str | None, key_type: str, out: Path) -> None:
    """Make a DKIM key for DOMAIN: write it (mode 0600), print its DNS record and settings line."""
    kind = KeyType(key_type)
    selector = selector or f"{'ed' if kind is KeyType.ED25519 else 'rsa'}-{datetime.now(UTC):%Y%m}"
    try:
        (entry,) = parse_entries(f"{domain} {selector} -")
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    folder = out if out.is_absolute() else obj.root / out
    path = folder / f"{entry.selector}.{entry.domain}.pem"
    private = generate(kind)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL: an existing key (perhaps the one that signs now) is never overwritten; 0600
        # from the start, so the key is not readable by others even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(
            f"{path} exists already; choose another --selector (a new key "
            "needs a new selector) or remove the old file"
        ) from None
    with os.fdopen(fd, "wb") as file:
        file.write(private_pem(private))
    key = read_key(entry, private_pem(private))
    shown = _setting_path(path, obj.root)
    line = f"{entry.domain} {entry.selector} {shown}"
    name = f"{key.record_name}."
    click.echo(
        f"wrote {path} ({'RSA-2048' if kind is KeyType.RSA else 'Ed25519'} private key, mode 0600: "
        "keep it secret and back it up)\n"
    )
    click.echo("1. Publish this TXT record in the DNS of " + entry.domain + ":")
    click.echo(f"   name:  {key.record_name}")
    click.echo(f"   value: {quoted(key.record)}")
    click.echo(f"   zone file line: {name} 3600 IN TXT {quoted(key.record)}\n")
    click.echo("2. Add the key to funnel.toml: to sign with it from the next start,")
    click.echo(f'   dkim_keys = ["{line}"]')
    click.echo("   or, to publish it first and sign with it later (a key rotation, docs/dkim.md),")
    click.echo(f'   dkim_published = ["{line}"]')
    click.echo("   (with a key already there, add the line to the list; in the environment:")
    click.echo(f'   FUNNEL_DKIM_KEYS="{line}", entries separated by ";")\n')
    click.echo("3. Once the record is published, check it: funnel doctor")


def _setting_path(path: Path, root: Path) -> str:
    """The key's path as dkim_keys should name it: relative to the project when it is inside it."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())
