"""The ``corridor`` click group and what its verbs share: settings and logging, errors, common options."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import ValidationError

from streams.cli.logs import configure_logging
from streams.settings import Settings, get_settings
from streams.sim.simulator import Scenario

if TYPE_CHECKING:
    from streams.alerting.thresholds import Thresholds

T = TypeVar("T")


class InputError(click.ClickException):
    """A file that cannot be read or written: exit code 2, like a usage error."""

    exit_code = 2


def setup() -> Settings:
    """Settings from the environment (a bad value is a usage error) with logging configured."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        raise click.UsageError(f"invalid CORRIDOR_* setting: {exc}") from None
    configure_logging(settings)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="corridor-monitor", prog_name="corridor", message="%(prog)s %(version)s")
def cli() -> None:
    """Corridor Monitor: event streams of the land-sea trade corridor, its air links and data channel."""


def main() -> None:
    cli()


def local_url(host: str, port: int, path: str) -> str:
    """Where a server of this machine bound to ``host`` (``CORRIDOR_*_HOST``) answers on ``port`` at ``path``."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - bound to every interface, so loopback answers
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def run_against_broker(settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    from aiokafka.errors import KafkaConnectionError

    try:
        return asyncio.run(work)
    except KafkaConnectionError:
        raise click.ClickException(f"no Kafka broker answered at {settings.bootstrap}") from None


# Shared by `corridor simulate` and `corridor run`.
scenario_option = click.option(
    "--scenario",
    type=click.Choice([scenario.value for scenario in Scenario]),
    default="baseline",
    show_default=True,
    help="baseline: the pre-2020 corridor; covid-2020: 2 weekly flights, road traffic halved; "
    "drop: baseline until a route loses most of its TEU; congestion: baseline until sailings from the Qinzhou "
    "hub leave late (2 days); delays: baseline until sea legs take longer (2 days).",
)
speed_option = click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    help="Simulated seconds per wall-clock second while the past is replayed (3600: a simulated week in 168 s).",
)


# Shared by `corridor alerts render|config` and `corridor dashboards build`.
thresholds_file_option = click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="YAML file of thresholds, selectors and labels (the keys `corridor alerts config` prints) over the "
    "profile's; deploy/config/thresholds.yaml has every key.",
)


def load_thresholds(profile: str = "default", config: Path | None = None) -> Thresholds:
    """The profile's thresholds with the file ``config`` over them; a file they refuse is a usage error."""
    from streams.alerting.config import ConfigError, load
    from streams.alerting.thresholds import PROFILES

    if config is None:
        return PROFILES[profile]
    try:
        return load(config, PROFILES[profile])
    except ConfigError as error:
        raise click.BadParameter(str(error), param_hint="'--config'") from None
