"""``corridor topics create`` and ``corridor topics list``."""

from __future__ import annotations

import click

from streams.cli.base import cli, run_against_broker, setup


@cli.group()
def topics() -> None:
    """Create and list topics."""


@topics.command("create")
@click.option(
    "--partitions",
    type=click.IntRange(1, 1024),
    help="Partitions per topic [default: CORRIDOR_TOPIC_PARTITIONS, 4].",
)
def topics_create(partitions: int | None) -> None:
    """Create the four family topics and the dead-letter topic; existing ones are left alone."""
    from streams.kafka.admin import CREATED, EXISTS, create_topics

    settings = setup()
    outcome = run_against_broker(settings, create_topics(settings, partitions))
    for topic, status in outcome.items():
        click.echo(f"{topic}: {status}")
    if any(status not in (CREATED, EXISTS) for status in outcome.values()):
        raise click.ClickException("some topics exist with another partition count; recreate them to change it")


@topics.command("list")
def topics_list() -> None:
    """List every topic of the cluster with its partition count."""
    from streams.kafka.admin import list_topics

    settings = setup()
    for topic, partitions in run_against_broker(settings, list_topics(settings)).items():
        click.echo(f"{topic}\t{partitions}")
