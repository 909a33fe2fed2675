"""``corridor schemas export|register``: the event families' JSON Schemas as files, or in a Schema Registry."""

from __future__ import annotations

from pathlib import Path

import click

from streams.cli.base import InputError, cli, setup
from streams.kafka.schema_registry import COMPATIBILITY_LEVELS, RegistryError, SchemaRegistry, register_schemas


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


@schemas_group.command("register")
@click.option("--url", required=True, metavar="URL",
              help="The Schema Registry, e.g. http://registry:8081; credentials as https://KEY:SECRET@host.")
@click.option("--subject-suffix", default="-value", show_default=True,
              help="Each subject is the topic name followed by this (Confluent's TopicNameStrategy for values).")
@click.option("--compatibility", type=click.Choice(COMPATIBILITY_LEVELS, case_sensitive=False),
              help="Set each subject's compatibility level before registering.")
def schemas_register(url: str, subject_suffix: str, compatibility: str | None) -> None:
    """Register each topic's JSON Schema (as `schemas export` writes it) as the <topic>-value subject."""
    setup()
    try:
        register_schemas(SchemaRegistry(url), subject_suffix, compatibility and compatibility.upper(),
                         registered=lambda done: click.echo(f"{done.subject}\tid {done.schema_id}"))
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
