"""``corridor run``: the main job; its engine is :mod:`streams.cli.engine`."""

from __future__ import annotations

import sys

import click

from streams.cli.base import cli, scenario_option, setup, speed_option
from streams.sim.simulator import Scenario


@cli.command("run")
@click.option(
    "--simulate/--no-simulate",
    default=True,
    show_default=True,
    help="Publish simulated traffic from this process (the last 7 days replayed, then live).",
)
@scenario_option
@speed_option
def run_command(simulate: bool, scenario: str, speed: float) -> None:
    """The main job: broker, topics, one worker, the simulator and a live view of the worker's /metrics.

    Starts the embedded broker when CORRIDOR_KAFKA_BOOTSTRAP is unset and nothing answers
    on 127.0.0.1:CORRIDOR_BROKER_PORT, creates the topics, runs `corridor worker` as a
    child process (and `corridor ingest` when CORRIDOR_INGEST_TOKENS is set) and, by
    default, the simulator. On a terminal the view refreshes every second; otherwise a
    summary line is logged every few seconds. Ctrl-C (or SIGTERM)
    stops the simulator, the ingest, the worker and the broker it started, in that order.
    Exit 1 when a part fails, such as the worker or the ingest exiting.
    """
    from streams.cli.engine import RunError, RunOptions, run_corridor

    settings = setup()
    options = RunOptions(speed=speed, simulate=simulate, scenario=Scenario(scenario))
    try:
        run_corridor(settings, options, interactive=sys.stdout.isatty())
    except RunError as exc:
        raise click.ClickException(str(exc)) from None
