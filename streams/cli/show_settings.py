"""``corridor settings``: the effective settings, as the environment and the defaults make them."""

from __future__ import annotations

import json

import click

from streams.cli.base import cli, setup


@cli.command("settings")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, keyed by the setting's name.")
def settings_command(as_json: bool) -> None:
    """Print every setting's effective value, one CORRIDOR_NAME=value line each; secrets masked.

    The values are those a worker, the ingest or any verb started with this environment
    would use: the CORRIDOR_* variables set, the defaults for the rest. A setting left unset
    is a comment line saying what unset means. Durations are ISO 8601 (PT5M, P7D), as the
    variables take them.
    """
    settings = setup()
    values = settings.model_dump(mode="json")  # SecretStr values come out as '**********'
    if as_json:
        click.echo(json.dumps(values, indent=2, sort_keys=True))
        return
    prefix = settings.model_config.get("env_prefix", "")
    for name, value in sorted(values.items()):
        variable = f"{prefix}{name.upper()}"
        if value is None:
            meaning = type(settings).model_fields[name].description
            click.echo(f"# {variable} unset" + (f": {meaning}" if meaning else ""))
        else:
            click.echo(f"{variable}={value if isinstance(value, str) else json.dumps(value)}")
