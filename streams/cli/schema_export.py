"""``corridor schemas export|register``: the event families' JSON Schemas as files, or in a Schema Registry."""

from __future__ import annotations

from pathlib import Path

import click

from streams.cli.base import InputError, cli, setup
from streams.kafka.schema_registry import (
    COMPATIBILITY_LEVELS,
    DEFAULT_COMPATIBILITY,
    RegistryError,
    SchemaRegistry,
    register_schemas,
)

#: ``--compatibility`` value that sets no level: each subject keeps the one it has (or the registry's default).
KEEP = "KEEP"


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
@click.option("--compatibility", type=click.Choice((*COMPATIBILITY_LEVELS, KEEP), case_sensitive=False),
              default=DEFAULT_COMPATIBILITY, show_default=True,
              help="Compatibility level each subject is set to before its schema is registered, so the registry "
                   "refuses a schema that could not read what producers already wrote; KEEP sets none (each "
                   "subject keeps its level, or the registry's default).")
def schemas_register(url: str, subject_suffix: str, compatibility: str) -> None:
    """Register each topic's JSON Schema (as `schemas export` writes it) as the <topic>-value subject.

    Each subject is set to BACKWARD compatibility first (see --compatibility): version 2 of the shipment
    contract, which only adds optional fields, registers over version 1.
    """
    setup()
    level = None if compatibility.upper() == KEEP else compatibility.upper()
    try:
        register_schemas(SchemaRegistry(url), subject_suffix, level,
                         registered=lambda done: click.echo(f"{done.subject}\tid {done.schema_id}"))
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None
