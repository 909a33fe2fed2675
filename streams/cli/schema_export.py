"""``corridor schemas export``: the event families' JSON Schemas as files."""

from __future__ import annotations

from pathlib import Path

import click

from streams.cli.base import InputError, cli, setup


@cli.group("schemas")
def schemas_group() -> None:
    """JSON Schemas of the event families."""


@schemas_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(directory: Path) -> None:
    """Write one JSON Schema per topic, <topic>.json, into DIRECTORY."""
    from schemas.export import export_schemas

    setup()
    try:
        written = export_schemas(directory)
    except OSError as exc:
        raise InputError(f"cannot write schemas to {directory}: {exc.strerror or exc}") from None
    for path in written:
        click.echo(str(path))
