"""``corridor alerts``: the Prometheus alert rules, rendered from their thresholds."""

from __future__ import annotations

from pathlib import Path

import click

from streams.cli.base import cli


@cli.group("alerts")
def alerts_group() -> None:
    """Alert rules: render them from the thresholds in streams/alerting/thresholds.py."""


@alerts_group.command("render")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("deploy/prometheus/alerts"))
@click.option("--profile", type=click.Choice(["default", "test"]), default="default", show_default=True,
              help="Threshold set: default for production, test with short durations for live tests.")
def alerts_render(directory: Path, profile: str) -> None:
    """Write one rule file per area into DIRECTORY [default: deploy/prometheus/alerts]."""
    from streams.alerting.rules import write
    from streams.alerting.thresholds import PROFILES

    for path in write(directory, PROFILES[profile]):
        click.echo(str(path))
