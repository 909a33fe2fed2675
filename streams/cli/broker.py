"""``corridor broker``: the embedded broker in the foreground until a signal."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import click

from streams.cli.base import cli, setup


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), help="Port on 127.0.0.1 [default: CORRIDOR_BROKER_PORT, 9092].")
@click.option(
    "--schemas/--no-schemas",
    default=False,
    show_default=True,
    help="Refuse records that fail their topic's JSON Schema (off: the workers dead-letter them instead).",
)
def broker(port: int | None, schemas: bool) -> None:
    """Run the embedded Kafka-compatible broker (memory storage) until Ctrl-C or SIGTERM."""
    from streams.kafka.broker import BrokerError, EmbeddedBroker, embedded_schema_dir

    settings = setup()
    embedded = EmbeddedBroker(port or settings.broker_port, schema_dir=embedded_schema_dir() if schemas else None)
    try:
        embedded.start()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        click.echo(
            f"broker listening on {embedded.bootstrap} (memory storage, schema validation "
            f"{'on' if schemas else 'off'}, pid {embedded.pid}); Ctrl-C stops it"
        )
        _wait_for_stop_signal(lambda: not embedded.running)
        if not embedded.running:
            raise click.ClickException(f"broker on {embedded.bootstrap} exited unexpectedly")
    finally:
        embedded.stop()
    click.echo("broker stopped")


def _wait_for_stop_signal(gave_up: Callable[[], bool]) -> None:
    """Block until SIGINT or SIGTERM arrives, or ``gave_up()`` turns true."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.2) and not gave_up():
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
