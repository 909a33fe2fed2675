"""``corridor bench``: throughput, memory and latency of the worker against baselines, on fresh embedded brokers
or on an existing cluster whose corridor topics it recreates."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from streams.bench.report import STAGES
from streams.cli.base import cli, setup

if TYPE_CHECKING:
    from streams.bench.report import BenchReport
    from streams.bench.runner import StepProgress


@cli.command("bench")
@click.option("--events", type=click.IntRange(min=1), default=500_000, show_default=True,
              help="Events published in envelopes of 500 for the worker and the aiokafka loop.")
@click.option("--single-events", type=click.IntRange(min=1), default=60_000, show_default=True,
              help="Events published one per record for the worker, the aiokafka loop and the faust agent "
                   "(fewer than --events: the single-event path is the slow one).")
@click.option("--latency-rate", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Events per second offered while latency is measured.")
@click.option("--latency-seconds", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="How long they are offered (shorter when --events holds fewer events).")
@click.option("--route-events", type=click.IntRange(min=1), default=200_000, show_default=True,
              help="Shipments published for each of the two workers of the routes stage (10 and 1,000 known routes).")
@click.option("--journey-shipments", type=click.IntRange(min=1), default=200_000, show_default=True,
              help="Shipments published for each of the two workers of the journeys stage (each departing: one "
                   "journey kept in flight per shipment; then the same clearing customs: none).")
@click.option("--only", "only", multiple=True, type=click.Choice(STAGES),
              help="Run only this stage (repeatable).")
@click.option("--skip", "skip", multiple=True, type=click.Choice(STAGES), help="Leave this stage out (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the events and their mix.")
@click.option("--bootstrap", metavar="HOST:PORT[,HOST:PORT]", default=None,
              help="Run every stage, the baselines' too, on this existing cluster instead of fresh embedded brokers. "
                   "It DELETES the corridor topics there (with their events) and every corridor-bench-* topic, and "
                   "creates the corridor topics again, before each group of stages and once more at the end: for a "
                   "test bed, never a cluster whose topics matter. Needs --recreate-topics; plain-text listeners only.")
@click.option("--recreate-topics", is_flag=True,
              help="Confirm that --bootstrap may delete and recreate the corridor topics on that cluster.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--keep-logs", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the workers' and baselines' logs in this directory.")
def bench_command(events: int, single_events: int, latency_rate: int, latency_seconds: float, route_events: int,
                  journey_shipments: int, only: tuple[str, ...], skip: tuple[str, ...], seed: int,
                  bootstrap: str | None, recreate_topics: bool, as_json: bool, keep_logs: Path | None) -> None:
    """Measure the worker end to end against a plain aiokafka + pydantic loop and a bare faust agent.

    Starts an embedded broker on free loopback ports for each group of stages (with
    --bootstrap: recreates the corridor topics on that cluster instead), publishes the events
    (the simulator's corridor traffic with fresh ids, dated just before they are sent), then
    measures in turn: batched, the worker on envelopes of 500 events, from the end of its
    start (state restored) to the first /metrics that counts every event; latency,
    event-to-metric at a fixed rate, same worker; single, a fresh worker on one event per
    record; aiokafka, the plain loop on both; faust, the bare agent on the single events;
    routes, shipments over 10 and over 1,000 known routes, a fresh worker and fresh topics
    each; journeys, shipments each departing (one journey in flight per shipment) against the
    same shipments clearing customs (none), a fresh worker and fresh topics each, for the events/s
    and the bytes per shipment in flight. Each with the CPU time it used; also the worker's peak
    memory and bytes per event.
    docs/benchmarks.md says what each number measures.

    Exit 0 when every stage counted exactly what was published (no speed is asserted), 1
    when one failed or ran out of time. Worker settings come from CORRIDOR_* as for
    `corridor worker` (CORRIDOR_CHECKPOINT_INTERVAL_S, CORRIDOR_STORE, ...); the brokers
    (without --bootstrap), app ids and ports are the bench's own. The report says which
    kind of broker it ran on.

    \b
    corridor bench                                   # 500,000 events, a minute or two
    corridor bench --events 2000000 --only batched   # memory at scale
    corridor bench --events 20000 --single-events 5000 --latency-seconds 2 --route-events 5000 \\
        --journey-shipments 3000 --json
    corridor bench --skip faust --skip single        # envelopes only
    corridor bench --bootstrap 127.0.0.1:9092 --recreate-topics   # on a test bed's Kafka
    """
    import asyncio

    from aiokafka.errors import KafkaError

    from streams.bench.runner import BenchConfig, BenchError, run_bench

    settings = setup()
    _check_cluster(bootstrap, recreate_topics, settings.kafka_security_protocol)
    stages = frozenset(only or STAGES) - set(skip)
    try:
        config = BenchConfig(events=events, single_events=single_events, latency_rate=latency_rate,
                             latency_seconds=latency_seconds, route_events=route_events,
                             journey_shipments=journey_shipments, seed=seed,
                             stages=stages, bootstrap=bootstrap)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    # SIGTERM unwinds like Ctrl-C: the workers, baselines and brokers this command started are stopped.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    with _progress(enabled=sys.stderr.isatty()) as progress:
        try:
            report = asyncio.run(run_bench(settings, config, progress, keep_logs))
        except BenchError as error:
            raise click.ClickException(str(error)) from None
        except KafkaError as error:
            raise click.ClickException(f"the broker failed: {error!r}") from None
    if as_json:
        import orjson

        click.echo(orjson.dumps(report.to_json()).decode())
    else:
        _print(report)


def _check_cluster(bootstrap: str | None, recreate_topics: bool, security_protocol: str) -> None:
    """--bootstrap destroys the events of the corridor topics there: only with --recreate-topics, never it alone."""
    if bootstrap is None:
        if recreate_topics:
            raise click.UsageError("--recreate-topics goes with --bootstrap (without it the bench starts brokers of "
                                   "its own)")
        return
    if not recreate_topics:
        raise click.UsageError(f"--bootstrap deletes the corridor topics at {bootstrap}, with their events, and "
                               "creates them again: add --recreate-topics to confirm (a test bed, never production)")
    if security_protocol != "PLAINTEXT":
        raise click.UsageError(f"--bootstrap needs a plain-text listener: the baselines connect without "
                               f"CORRIDOR_KAFKA_SECURITY_PROTOCOL={security_protocol}")


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[StepProgress | None]:
    """A progress bar on stderr (a terminal only): the step under way and how far it got."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description:<58}"), BarColumn(), TextColumn("{task.fields[count]}"),
               TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None, count="")

        class Steps:
            def step(self, description: str, done: float, total: float | None) -> None:
                count = f"{done:,.0f} of {total:,.0f}" if total else ""
                if bar.tasks[task].description != description:
                    bar.reset(task, description=description, total=total, completed=int(done), count=count)
                else:
                    bar.update(task, total=total, completed=done, count=count)

        yield Steps()


def _print(report: BenchReport) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from streams.bench.report import COLUMNS

    table = Table(title="corridor bench", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "measured" else "right")
    for row in report.rows():
        table.add_row(*row)
    # Without a terminal (a pipe, a file) rich would wrap the table at 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 132)
    console.print(table)
    for line in report.notes():
        console.print(line, highlight=False, soft_wrap=True)
