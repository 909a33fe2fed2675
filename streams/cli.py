"""The ``corridor`` command: one click group, one small function per verb."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import orjson
from pydantic import ValidationError

from schemas.validation import RecordError, RejectReason, ValidationRules, validate_record
from streams.logs import configure_logging
from streams.settings import FAMILIES, Settings, get_settings
from streams.simulator import Scenario

#: Events validated (and published) per round; bounds memory for any input size.
CHUNK_EVENTS = 5000
T = TypeVar("T")


class InputError(click.ClickException):
    """A file that cannot be read or written: exit code 2, like a usage error."""

    exit_code = 2


def _setup() -> Settings:
    """Settings from the environment (a bad value is a usage error) with logging configured."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        raise click.UsageError(f"invalid CORRIDOR_* setting: {exc}") from None
    configure_logging(settings)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Corridor Monitor: event streams of the land-sea trade corridor, its air links and data channel."""


def main() -> None:
    cli()


# --- stream processing -------------------------------------------------------------------


@cli.command()
def worker() -> None:
    """Run one stream worker: consume the four family topics, serve /metrics on CORRIDOR_WEB_PORT.

    Several workers with the same CORRIDOR_APP_ID form one consumer group and split the
    partitions. SIGTERM or Ctrl-C checkpoints the state and stops cleanly.
    """
    from streams.worker import build_worker

    settings = _setup()
    build_worker(settings).execute_from_commandline()


# --- broker and topics -------------------------------------------------------------------


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
    from streams.broker import BrokerError, EmbeddedBroker, embedded_schema_dir

    settings = _setup()
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
    from streams.admin import CREATED, EXISTS, create_topics

    settings = _setup()
    outcome = _run_against_broker(settings, create_topics(settings, partitions))
    for topic, status in outcome.items():
        click.echo(f"{topic}: {status}")
    if any(status not in (CREATED, EXISTS) for status in outcome.values()):
        raise click.ClickException("some topics exist with another partition count; recreate them to change it")


@topics.command("list")
def topics_list() -> None:
    """List every topic of the cluster with its partition count."""
    from streams.admin import list_topics

    settings = _setup()
    for topic, partitions in _run_against_broker(settings, list_topics(settings)).items():
        click.echo(f"{topic}\t{partitions}")


def _run_against_broker(settings: Settings, work: Coroutine[Any, Any, T]) -> T:
    from aiokafka.errors import KafkaConnectionError

    try:
        return asyncio.run(work)
    except KafkaConnectionError:
        raise click.ClickException(f"no Kafka broker answered at {settings.bootstrap}") from None


# --- schemas -----------------------------------------------------------------------------


@cli.group("schemas")
def schemas_group() -> None:
    """JSON Schemas of the event families."""


@schemas_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(directory: Path) -> None:
    """Write one JSON Schema per topic, <topic>.json, into DIRECTORY."""
    from schemas.export import export_schemas

    _setup()
    try:
        written = export_schemas(directory)
    except OSError as exc:
        raise InputError(f"cannot write schemas to {directory}: {exc.strerror or exc}") from None
    for path in written:
        click.echo(str(path))


# --- validate and publish ----------------------------------------------------------------


@dataclass
class _Tally:
    """What a validate or publish run found, as the ``--json`` summary reports it."""

    numbering: str = "line"  #: "line" for JSON Lines, "item" for a JSON array
    valid: int = 0
    invalid: int = 0
    published: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    undelivered: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, number: int, error: RecordError) -> None:
        self.invalid += 1
        self.errors.append(
            {
                "line": number,
                "reason": str(error.reason),
                "message": error.message,
                "field_errors": [asdict(field_error) for field_error in error.field_errors],
            }
        )

    def summary(self, published: bool) -> dict[str, Any]:
        result: dict[str, Any] = {"valid": self.valid, "invalid": self.invalid, "published": self.published}
        if published:
            result["undelivered"] = len(self.undelivered)
        result["numbering"] = self.numbering
        result["errors"] = self.errors + self.undelivered
        return result


@dataclass
class _Chunk:
    numbers: list[int]  #: line (or item) number of each object
    objects: list[Any]
    consumed: int  #: input bytes (or items) this chunk covers, for the progress bar


def _chunks(stream: IO[bytes], family: str, rules: ValidationRules, tally: _Tally) -> Iterator[_Chunk]:
    """Parse JSON Lines, or one JSON array, from ``stream``; unparsable lines go to ``tally``."""
    lines = iter(stream)
    number, consumed, seen_content = 0, 0, False
    numbers: list[int] = []
    objects: list[Any] = []
    for line in lines:
        number += 1
        consumed += len(line)
        text = line.strip()
        if not text:
            continue
        if not seen_content and text.startswith(b"["):
            tally.numbering = "item"
            yield from _array_chunks(line + b"".join(lines), number, tally)
            return
        seen_content = True
        try:
            objects.append(orjson.loads(text))
            numbers.append(number)
        except orjson.JSONDecodeError:
            # Judged as a worker would judge it: bad UTF-8, bad JSON, or JSON that only
            # a laxer parser reads (NaN, say) and the schema then rules on.
            result = validate_record(family, text, rules)
            for error in result.errors:
                tally.reject(number, error)
            numbers += [number] * len(result.events)
            objects += result.events
        if len(objects) >= CHUNK_EVENTS:
            yield _Chunk(numbers, objects, consumed)
            numbers, objects, consumed = [], [], 0
    yield _Chunk(numbers, objects, consumed)


def _array_chunks(document: bytes, first_line: int, tally: _Tally) -> Iterator[_Chunk]:
    try:
        items = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        # Nothing can be numbered by item in a broken array: point at its line.
        tally.numbering = "line"
        line = first_line + exc.lineno - 1
        message = f"not a valid JSON array: {exc.msg} at line {line} column {exc.colno}"
        tally.reject(line, RecordError(None, RejectReason.INVALID_JSON, message, (), b""))
        yield _Chunk([], [], len(document))
        return
    for start in range(0, len(items), CHUNK_EVENTS):
        chunk = items[start : start + CHUNK_EVENTS]
        share = len(document) * len(chunk) // len(items)
        yield _Chunk(list(range(start + 1, start + len(chunk) + 1)), chunk, share)
    if not items:
        yield _Chunk([], [], len(document))


def _record_rejections(tally: _Tally, numbers: list[int], rejections: Iterable[RecordError]) -> None:
    for rejection in rejections:
        tally.reject(numbers[rejection.index or 0], rejection)


def _open_input(file: str) -> IO[bytes]:
    if file == "-":
        return sys.stdin.buffer
    try:
        return open(file, "rb")  # noqa: SIM115 - closed by the caller's ``with``
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None


def _input_size(stream: IO[bytes]) -> int | None:
    """Size of a regular file; None for pipes and terminals."""
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


@contextmanager
def _progress(stream: IO[bytes], label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; yields ``advance(bytes)``."""
    if not sys.stderr.isatty():
        yield lambda _consumed: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=_input_size(stream))
        yield lambda consumed: bar.advance(task, consumed)


def _report(tally: _Tally, as_json: bool, published: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(tally.summary(published)).decode())
        return
    for error in tally.errors:
        click.echo(f"{tally.numbering} {error['line']}: {error['reason']}: {error['message']}", err=True)
        if len(error["field_errors"]) > 1:
            for item in error["field_errors"]:
                click.echo(f"    {item['field'] or 'event'}: {item['message']}", err=True)
    if tally.undelivered:
        first, last = tally.undelivered[0], tally.undelivered[-1]
        click.echo(
            f"{len(tally.undelivered)} valid events not delivered ({tally.numbering}s {first['line']}"
            f"-{last['line']}): {first['message']}",
            err=True,
        )
    summary = f"{tally.valid} valid, {tally.invalid} invalid"
    click.echo(f"{summary}, {tally.published} published" if published else summary)


def _exit_code(tally: _Tally) -> int:
    return 1 if tally.invalid or tally.undelivered else 0


family_argument = click.argument("family", type=click.Choice(FAMILIES))
file_argument = click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of text.")


@cli.command()
@family_argument
@file_argument
@json_option
def validate(family: str, file: str, as_json: bool) -> None:
    """Check FILE (JSON Lines or a JSON array; - for stdin) against FAMILY's event schema."""
    from streams.producer import validate_events

    settings = _setup()
    rules = ValidationRules.from_settings(settings)
    tally = _Tally()
    with _open_input(file) as stream, _progress(stream, f"validating {family}") as advance:
        for chunk in _chunks(stream, family, rules, tally):
            result = validate_events(family, chunk.objects, rules)
            tally.valid += len(result.events)
            _record_rejections(tally, chunk.numbers, result.errors)
            advance(chunk.consumed)
    tally.errors.sort(key=lambda error: error["line"])
    _report(tally, as_json, published=False)
    click.get_current_context().exit(_exit_code(tally))


@cli.command()
@family_argument
@file_argument
@json_option
def publish(family: str, file: str, as_json: bool) -> None:
    """Validate FILE (JSON Lines or a JSON array; - for stdin) and publish FAMILY's valid events in batches."""
    settings = _setup()
    tally = _Tally()
    with _open_input(file) as stream, _progress(stream, f"publishing {family}") as advance:
        asyncio.run(_publish_chunks(settings, family, stream, tally, advance))
    tally.errors.sort(key=lambda error: error["line"])
    _report(tally, as_json, published=True)
    click.get_current_context().exit(_exit_code(tally))


async def _publish_chunks(
    settings: Settings, family: str, stream: IO[bytes], tally: _Tally, advance: Callable[[int], None]
) -> None:
    from streams.producer import DELIVERED, INVALID, Publisher, validate_events

    gave_up: str | None = None  # once a round went undelivered, later rounds are only validated
    async with Publisher(settings) as publisher:
        for chunk in _chunks(stream, family, publisher.rules, tally):
            if gave_up is not None:
                result = validate_events(family, chunk.objects, publisher.rules)
                _record_rejections(tally, chunk.numbers, result.errors)
                rejected = {error.index for error in result.errors}
                for index, number in enumerate(chunk.numbers):
                    if index not in rejected:
                        tally.valid += 1
                        tally.undelivered.append(_undelivered(number, f"not sent after earlier failures: {gave_up}"))
                advance(chunk.consumed)
                continue
            report = await publisher.publish(family, chunk.objects)
            for number, outcome in zip(chunk.numbers, report.outcomes, strict=True):
                if outcome.status == DELIVERED:
                    tally.valid += 1
                    tally.published += 1
                elif outcome.status == INVALID:
                    tally.reject(number, outcome.rejection)  # type: ignore[arg-type]
                else:
                    tally.valid += 1
                    gave_up = outcome.error or "not acknowledged"
                    tally.undelivered.append(_undelivered(number, gave_up))
            advance(chunk.consumed)


def _undelivered(number: int, message: str) -> dict[str, Any]:
    return {"line": number, "reason": "undelivered", "message": message, "field_errors": []}


# --- the main job and the simulator ------------------------------------------------------

scenario_option = click.option(
    "--scenario",
    type=click.Choice([scenario.value for scenario in Scenario]),
    default="baseline",
    show_default=True,
    help="baseline: the pre-2020 corridor; covid-2020: 2 weekly flights, road traffic halved; "
    "drop: baseline until a route loses most of its TEU.",
)
speed_option = click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    help="Simulated seconds per wall-clock second while the past is replayed (3600: a simulated week in 168 s).",
)


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
def simulate_command(
    scenario: str,
    speed: float,
    duration: float | None,
    seed: int,
    drop_route: str,
    drop_fraction: float,
    drop_after: float,
) -> None:
    """Publish simulated corridor traffic (all four families) to the broker, then print what was sent.

    The simulated span is replayed SPEED times faster than real time and dated so that it
    ends now: no event lies in the future. Events go through the producer SDK to
    CORRIDOR_KAFKA_BOOTSTRAP (or 127.0.0.1:CORRIDOR_BROKER_PORT); missing topics are
    created. Ctrl-C stops early. Exit 0 when every event was delivered, 1 otherwise.

    \b
    corridor simulate --duration 86400 --speed 36000      # one day in 2.4 s
    corridor simulate --scenario drop --drop-fraction 0.5  # a week, then live
    """
    from datetime import timedelta

    from streams.run import RunError, run_simulate
    from streams.simulator import SimulationConfig, replay_start

    settings = _setup()
    span = timedelta(seconds=duration) if duration is not None else None
    try:
        config = SimulationConfig(
            Scenario(scenario),
            seed=seed,
            start=replay_start(speed, span),
            drop_route=drop_route,
            drop_fraction=drop_fraction,
            drop_after=timedelta(seconds=drop_after),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        tally = run_simulate(settings, config, speed=speed, duration=span, progress=sys.stderr.isatty())
    except RunError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(tally.summary())
    click.get_current_context().exit(1 if tally.total_undelivered or tally.total_invalid else 0)


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
    child process and, by default, the simulator. On a terminal the view refreshes every
    second; otherwise a summary line is logged every few seconds. Ctrl-C (or SIGTERM)
    stops the simulator, the worker and the broker it started, in that order. Exit 1 when
    a part fails, such as the worker exiting.
    """
    from streams.run import RunError, RunOptions, run_corridor

    settings = _setup()
    options = RunOptions(speed=speed, simulate=simulate, scenario=Scenario(scenario))
    try:
        run_corridor(settings, options, interactive=sys.stdout.isatty())
    except RunError as exc:
        raise click.ClickException(str(exc)) from None
