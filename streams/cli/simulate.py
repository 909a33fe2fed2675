"""``corridor simulate``: publish simulated corridor traffic to a running broker."""

from __future__ import annotations

import sys

import click

from streams.cli.base import cli, scenario_option, setup, speed_option
from streams.sim.simulator import Scenario


@cli.command("simulate")
@scenario_option
@speed_option
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Simulated seconds to publish, ending now; then exit. [default: the last 7 days, then live until Ctrl-C]",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the simulated traffic.")
@click.option("--drop-route", default="CNCKG-CNQZH-SGSIN", show_default=True, help="drop: the route that loses TEU.")
@click.option(
    "--drop-fraction",
    type=click.FloatRange(0, 1),
    default=0.8,
    show_default=True,
    help="drop: the share of the route's departing TEU that is lost.",
)
@click.option(
    "--drop-after",
    type=click.FloatRange(min=0),
    default=6 * 86400.0,
    show_default=True,
    help="drop: simulated seconds after the start when the drop begins.",
)
@click.option(
    "--drop-for",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="drop: simulated seconds the drop lasts (departures after it are booked and depart as usual). "
    "Default: the route stays cut.",
)
@click.option(
    "--slip-after",
    type=click.FloatRange(min=0),
    default=6 * 86400.0,
    show_default=True,
    help="congestion, delays: simulated seconds after the start from which sailings slip (congestion: "
    "sailings from Qinzhou leave later; delays: sea legs sailing then take longer).",
)
@click.option(
    "--slip-by",
    type=click.FloatRange(min=0, min_open=True),
    default=2 * 86400.0,
    show_default=True,
    help="congestion, delays: how many simulated seconds a sailing slips.",
)
@click.option(
    "--slip-for",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="congestion, delays: simulated seconds during which sailings slip (later ones keep their times). "
    "Default: they keep slipping.",
)
def simulate_command(
    scenario: str,
    speed: float,
    duration: float | None,
    seed: int,
    drop_route: str,
    drop_fraction: float,
    drop_after: float,
    drop_for: float | None,
    slip_after: float,
    slip_by: float,
    slip_for: float | None,
) -> None:
    """Publish simulated corridor traffic (all four families) to the broker, then print what was sent.

    The simulated span is replayed SPEED times faster than real time and dated so that it
    ends now: no event lies in the future. Events go through the producer SDK to
    CORRIDOR_KAFKA_BOOTSTRAP (or 127.0.0.1:CORRIDOR_BROKER_PORT); missing topics are
    created. Ctrl-C stops early. Exit 0 when every event was delivered, 1 otherwise.

    \b
    corridor simulate --duration 86400 --speed 36000      # one day in 2.4 s
    corridor simulate --scenario drop --drop-fraction 0.5  # a week, then live
    corridor simulate --scenario congestion                # Qinzhou's sailings 2 days late from day 6
    """
    from datetime import timedelta

    from streams.cli.engine import RunError, run_simulate
    from streams.sim.simulator import SimulationConfig, replay_start

    settings = setup()
    span = timedelta(seconds=duration) if duration is not None else None
    try:
        config = SimulationConfig(
            Scenario(scenario),
            seed=seed,
            start=replay_start(speed, span),
            drop_route=drop_route,
            drop_fraction=drop_fraction,
            drop_after=timedelta(seconds=drop_after),
            drop_for=None if drop_for is None else timedelta(seconds=drop_for),
            slip_after=timedelta(seconds=slip_after),
            slip_by=timedelta(seconds=slip_by),
            slip_for=None if slip_for is None else timedelta(seconds=slip_for),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        tally = run_simulate(settings, config, speed=speed, duration=span, progress=sys.stderr.isatty())
    except RunError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(tally.summary())
    click.get_current_context().exit(1 if tally.total_undelivered or tally.total_invalid else 0)
