"""The engine of ``corridor run`` and ``corridor simulate``: broker, topics, a worker, the simulator and the live view.

``corridor run`` starts what is missing and stops what it started, in reverse order:
the embedded broker (only when ``CORRIDOR_KAFKA_BOOTSTRAP`` is unset and nothing answers
on ``127.0.0.1:CORRIDOR_BROKER_PORT``), the topics, one worker process, the HTTP ingest
process (when ``CORRIDOR_INGEST_TOKENS`` is set), the simulator in this process, and a view
of the worker's /metrics: a live table on a terminal, one log line every few seconds otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from schemas.families import FAMILY_NAMES
from streams.cli.base import local_url
from streams.cli.view import RunInfo, Snapshot, format_duration, render, summary_fields, summary_line
from streams.kafka.admin import CREATED, EXISTS, create_topics
from streams.kafka.broker import BrokerError, EmbeddedBroker, broker_answers
from streams.process import MetricsUnavailable, corridor_command, fetch_metrics, start_corridor, stop_process, tail
from streams.sdk.producer import Publisher, PublishReport
from streams.settings import Settings
from streams.sim.simulator import DEFAULT_HISTORY, Scenario, SimulationConfig, pause, replay_start, run_simulation

log = logging.getLogger("corridor.run")

#: How often the live view re-reads the worker's /metrics.
REFRESH_S = 1.0
#: How often a run without a terminal logs its summary line.
SUMMARY_EVERY_S = 5.0
#: How long the worker may take to stop on SIGTERM before it is killed.
WORKER_STOP_TIMEOUT_S = 30.0
#: How long the simulator may take to flush what it is sending when asked to stop.
SIMULATOR_STOP_TIMEOUT_S = 10.0
_SCRAPE_TIMEOUT_S = 2.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class RunError(Exception):
    """A run that could not start, or that ended because a part of it failed: the message says which."""


# --- the simulator, publishing through the SDK ------------------------------------------------


@dataclass
class PublishTally:
    """What became of the simulated events handed to the SDK, per family."""

    published: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAMILY_NAMES, 0))
    invalid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAMILY_NAMES, 0))
    undelivered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAMILY_NAMES, 0))
    first_problem: str | None = None  #: the first rejection or delivery error, for the report

    def add(self, report: PublishReport) -> None:
        self.published[report.family] += report.delivered
        self.invalid[report.family] += report.invalid
        self.undelivered[report.family] += report.undelivered
        if self.first_problem is None and not report.ok:
            outcome = next(outcome for outcome in report.outcomes if outcome.status != "delivered")
            reason = outcome.error or (outcome.rejection.message if outcome.rejection else outcome.status)
            self.first_problem = f"{report.family}: {outcome.status}: {reason}"

    @property
    def total_published(self) -> int:
        return sum(self.published.values())

    @property
    def total_invalid(self) -> int:
        return sum(self.invalid.values())

    @property
    def total_undelivered(self) -> int:
        return sum(self.undelivered.values())

    def summary(self) -> str:
        """A table of events published, invalid and undelivered per family, with totals."""
        rows: list[tuple[str, str | int, str | int, str | int]] = [("family", "published", "invalid", "undelivered")]
        rows += [(f, self.published[f], self.invalid[f], self.undelivered[f]) for f in FAMILY_NAMES]
        rows.append(("total", self.total_published, self.total_invalid, self.total_undelivered))
        lines = [f"{row[0]:<12}{row[1]:>12}{row[2]:>10}{row[3]:>13}" for row in rows]
        if self.first_problem:
            lines.append(f"first problem: {self.first_problem}")
        return "\n".join(lines)


async def publish_simulation(
    settings: Settings,
    config: SimulationConfig,
    tally: PublishTally,
    *,
    speed: float,
    duration: timedelta | None,
    stop: asyncio.Event,
    give_up_when_undelivered: bool,
    on_batch: Callable[[str, list[dict[str, Any]]], Any] | None = None,
) -> None:
    """Run the simulator, publishing with the producer SDK and counting each event's outcome in ``tally``.

    With ``give_up_when_undelivered`` the first undelivered batch stops the run: the SDK
    has already retried the broker for ``CORRIDOR_PUBLISH_RETRY_TIMEOUT_S``.
    """
    async with Publisher(settings) as publisher:

        async def publish(family: str, events: list[dict[str, Any]]) -> PublishReport:
            report = await publisher.publish(family, events)
            tally.add(report)
            if report.undelivered:
                log.warning("simulated events not delivered",
                            extra={"family": family, "undelivered": report.undelivered, "problem": tally.first_problem})
                if give_up_when_undelivered:
                    stop.set()
            return report

        await run_simulation(config, publish, speed=speed, duration=duration, stop=stop, on_batch=on_batch)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP set ``stop`` while the block runs (the loop must be running)."""
    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def simulate(
    settings: Settings, config: SimulationConfig, *, speed: float, duration: timedelta | None, progress: bool
) -> PublishTally:
    """``corridor simulate``: publish until ``duration`` is simulated, a signal arrives or the broker stays away."""
    if not await broker_answers(settings.bootstrap):
        raise RunError(f"no Kafka broker answered at {settings.bootstrap}: start one with `corridor broker`, "
                       "or use `corridor run`, which starts one")
    await _ensure_topics(settings)
    tally = PublishTally()
    stop = asyncio.Event()
    with _stop_on_signals(stop), _simulation_progress(config, speed, duration, tally, enabled=progress) as on_batch:
        await publish_simulation(settings, config, tally, speed=speed, duration=duration, stop=stop,
                                 give_up_when_undelivered=True, on_batch=on_batch)
    return tally


@contextlib.contextmanager
def _simulation_progress(
    config: SimulationConfig, speed: float, duration: timedelta | None, tally: PublishTally, enabled: bool
) -> Iterator[Callable[[str, list[dict[str, Any]]], None] | None]:
    """A progress bar on stderr (simulated time reached, events published); yields the ``on_batch`` hook."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    # An endless run shows the replay of its history; the bar stays full once it is live.
    span = (duration or DEFAULT_HISTORY).total_seconds()
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[published]}"),
               TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"simulating {config.scenario} at {speed:g}x", total=span, published="")

        def on_batch(_family: str, events: list[dict[str, Any]]) -> None:
            reached = (datetime.fromisoformat(events[-1]["event_time"]) - config.start).total_seconds()
            published = ", ".join(f"{family} {count:,}" for family, count in tally.published.items())
            bar.update(task, completed=min(max(reached, bar.tasks[task].completed), span), published=published)

        yield on_batch


async def _ensure_topics(settings: Settings) -> None:
    """Create the corridor topics when missing; a topic with another partition count is an error."""
    try:
        outcome = await create_topics(settings)
    except KafkaError as exc:
        raise RunError(f"cannot create the corridor topics on {settings.bootstrap}: {exc}") from None
    wrong = {topic: status for topic, status in outcome.items() if status not in (CREATED, EXISTS)}
    if wrong:
        raise RunError("; ".join(f"{topic} {status}" for topic, status in wrong.items()))


# --- corridor run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    """What ``corridor run`` runs besides the worker."""

    speed: float  #: simulated seconds per wall-clock second while the last week is replayed
    simulate: bool = True  #: publish simulated traffic from this process
    scenario: Scenario = Scenario.BASELINE
    seed: int = 0


def metrics_url(settings: Settings) -> str:
    """Where the worker's /metrics can be read on this machine."""
    return local_url(settings.web_host, settings.web_port, "/metrics")


def ingest_url(settings: Settings) -> str:
    """Where the HTTP ingest takes events on this machine (one path per family)."""
    return local_url(settings.ingest_host, settings.ingest_port, "/v1/events/{family}")


def read_metrics(url: str) -> tuple[str | None, str]:
    """The text /metrics serves and "", or None and why there is none yet."""
    try:
        return fetch_metrics(url, _SCRAPE_TIMEOUT_S), ""
    except MetricsUnavailable as exc:
        if exc.status == 503:
            return None, "the worker is restoring its state"
        if exc.status is not None:
            return None, f"{url} answered HTTP {exc.status}"
        return None, "waiting for the worker to join its group and serve /metrics"


class CorridorRun:
    """One ``corridor run``: ``await CorridorRun(settings, options, interactive).execute()``."""

    def __init__(self, settings: Settings, options: RunOptions, *, interactive: bool) -> None:
        self.settings = settings
        self.options = options
        self.interactive = interactive
        self.stop = asyncio.Event()
        self.tally = PublishTally()
        self.broker: EmbeddedBroker | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log: Path | None = None
        self.ingest: subprocess.Popen[bytes] | None = None
        self.ingest_log: Path | None = None
        self.simulation: asyncio.Task[None] | None = None
        self.simulation_started = 0.0
        self.started = time.monotonic()

    async def execute(self) -> None:
        """Start everything, watch it until a signal or a failure, stop everything; RunError on failure."""
        failure: str | None = None
        with _stop_on_signals(self.stop):
            try:
                await self._start()
                if not self.stop.is_set():
                    failure = await self._watch()
            finally:
                await self._shutdown()
        if failure:
            raise RunError(failure)

    # --- starting ---

    async def _start(self) -> None:
        settings = self.settings
        if settings.uses_embedded_broker and not await broker_answers(settings.bootstrap):
            broker = EmbeddedBroker(settings.broker_port)
            try:
                await asyncio.to_thread(broker.start)
            except BrokerError as exc:
                raise RunError(f"cannot start the embedded broker: {exc}") from None
            self.broker = broker
            log.info("embedded broker started", extra={"bootstrap": broker.bootstrap, "pid": broker.pid})
        await _ensure_topics(settings)
        if self.stop.is_set():  # a signal while the broker started
            return
        # The live view reads /metrics every REFRESH_S: moved partitions need not be held longer.
        self.worker, self.worker_log = self._start_child("worker", {"CORRIDOR_SCRAPE_INTERVAL_S": str(REFRESH_S)})
        log.info("worker started", extra={"pid": self.worker.pid, "app_id": settings.app_id})
        if settings.ingest_tokens is not None:  # without tokens it would refuse every request
            self.ingest, self.ingest_log = self._start_child("ingest", {})
            log.info("ingest started", extra={"pid": self.ingest.pid, "url": ingest_url(settings)})
        if self.options.simulate:
            self.simulation_started = time.monotonic()
            self.simulation = asyncio.create_task(self._simulate(), name="simulator")
        if not self.interactive:
            for name, value in self._addresses().items():
                print(f"{name:<10} {value}", flush=True)

    def _start_child(self, verb: str, defaults: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path | None]:
        """``corridor VERB`` as a child process (``defaults`` under the environment), and the file its log goes
        to, if any."""
        # The live view owns the terminal: the child's log goes to a file, one per run.
        log_path = self.settings.state_dir / f"{verb}.log" if self.interactive else None
        # In a session of its own: Ctrl-C on a terminal reaches this process only, which stops the children in order.
        return start_corridor(corridor_command(verb), log_path=log_path, defaults=defaults, append=False), log_path

    async def _simulate(self) -> None:
        options = self.options
        config = SimulationConfig(options.scenario, seed=options.seed, start=replay_start(options.speed, None))
        await publish_simulation(self.settings, config, self.tally, speed=self.options.speed, duration=None,
                                 stop=self.stop, give_up_when_undelivered=False)

    # --- watching ---

    async def _watch(self) -> str | None:
        """Refresh the view until a signal (None) or a failure (its description)."""
        if self.interactive:
            from rich.live import Live

            with Live(render(None, self._info("starting")), auto_refresh=False, redirect_stderr=True) as live:
                return await self._refresh_until_done(lambda renderable: live.update(renderable, refresh=True))
        return await self._refresh_until_done(None)

    async def _refresh_until_done(self, show: Callable[[Any], None] | None) -> str | None:
        """Every second: check the parts; with ``show``, render a fresh view; without, log a summary every 5 s."""
        previous: Snapshot | None = None
        previous_at = last_summary = float("-inf")
        last_status = ""
        while not self.stop.is_set():
            failure = self._failure()
            if failure:
                return failure
            now = time.monotonic()
            if show is not None or now - last_summary >= SUMMARY_EVERY_S:
                snapshot, status = await self._scrape()
                if show is not None:
                    show(render(snapshot, self._info(status), previous, now - previous_at))
                    previous, previous_at = snapshot, now
                elif snapshot is not None:
                    log.info(summary_line(snapshot), extra=summary_fields(snapshot) | self._simulator_fields())
                    last_summary = now
                elif status != last_status:
                    log.info(status)
                last_status = status
            await pause(self.stop, REFRESH_S)
        return None

    async def _scrape(self) -> tuple[Snapshot | None, str]:
        """The worker's metrics now and "running", or None and what the view waits for."""
        text, status = await asyncio.to_thread(read_metrics, metrics_url(self.settings))
        if text is None:
            return None, status
        try:
            return Snapshot.from_text(text), "running"
        except (ValueError, KeyError) as exc:
            return None, f"the worker's /metrics could not be read: {exc}"

    def _started_worker(self) -> subprocess.Popen[bytes]:
        if self.worker is None:
            raise RuntimeError("the worker process has not been started")
        return self.worker

    def _failure(self) -> str | None:
        """Why the run cannot go on: the worker or our broker exited, or the simulator failed."""
        worker = self._started_worker()
        code = worker.poll()
        if code is not None:
            message = f"the worker (pid {worker.pid}) exited with code {code}"
            if self.worker_log is not None:
                message += f"; the end of its log {self.worker_log}:\n{tail(self.worker_log, 20)}"
            return message
        if self.ingest is not None and self.ingest.poll() is not None:
            message = f"the ingest (pid {self.ingest.pid}) exited with code {self.ingest.returncode}"
            if self.ingest_log is not None:
                message += f"; the end of its log {self.ingest_log}:\n{tail(self.ingest_log, 20)}"
            return message
        if self.broker is not None and not self.broker.running:
            return f"the embedded broker on {self.broker.bootstrap} exited"
        if self.simulation is not None and self.simulation.done() and not self.simulation.cancelled():
            error = self.simulation.exception()
            if error is not None:
                return f"the simulator failed: {type(error).__name__}: {error}"
        return None

    def _addresses(self) -> dict[str, str]:
        settings = self.settings
        if self.broker is not None:
            broker = f"{self.broker.bootstrap} (embedded, memory storage, pid {self.broker.pid})"
        else:
            broker = f"{settings.bootstrap} (already running)"
        worker = f"pid {self._started_worker().pid}, consumer group {settings.app_id}"
        if self.worker_log is not None:
            worker += f", log {self.worker_log}"
        if self.ingest is not None:
            ingest = f"{ingest_url(settings)}, pid {self.ingest.pid}"
            if self.ingest_log is not None:
                ingest += f", log {self.ingest_log}"
        else:
            ingest = "off: set CORRIDOR_INGEST_TOKENS to start it (docs/ingest.md)"
        return {"metrics": metrics_url(settings), "broker": broker, "worker": worker, "ingest": ingest,
                "simulator": self._simulator()}

    def _simulator(self) -> str:
        if not self.options.simulate:
            return "off (--no-simulate)"
        options, tally = self.options, self.tally
        described = f"{options.scenario} at {options.speed:g}x, {tally.total_published:,} events published"
        if tally.total_undelivered:
            described += f", {tally.total_undelivered:,} undelivered"
        replay_left = DEFAULT_HISTORY.total_seconds() / options.speed - (time.monotonic() - self.simulation_started)
        if options.speed > 1 and replay_left > 0:
            described += f"; replaying the last {DEFAULT_HISTORY.days} days, live in {format_duration(replay_left)}"
        else:
            described += "; live"
        return described

    def _simulator_fields(self) -> dict[str, float]:
        if not self.options.simulate:
            return {}
        return {"simulated_published": self.tally.total_published,
                "simulated_undelivered": self.tally.total_undelivered}

    def _info(self, status: str) -> RunInfo:
        addresses = self._addresses()
        return RunInfo(
            metrics_url=addresses["metrics"],
            broker=addresses["broker"],
            worker=addresses["worker"],
            simulator=addresses["simulator"],
            ingest=addresses["ingest"],
            status=status,
            uptime_s=time.monotonic() - self.started,
        )

    # --- stopping ---

    async def _shutdown(self) -> None:
        """Stop the simulator, then the ingest, then the worker, then the broker if this run started it."""
        self.stop.set()
        if self.simulation is not None:
            done, _ = await asyncio.wait({self.simulation}, timeout=SIMULATOR_STOP_TIMEOUT_S)
            if not done:
                self.simulation.cancel()
                await asyncio.wait({self.simulation})
            log.info("simulator stopped", extra={"published": self.tally.total_published,
                                                 "undelivered": self.tally.total_undelivered})
        if self.ingest is not None:
            code = await _terminate(self.ingest, "ingest", WORKER_STOP_TIMEOUT_S)
            log.info("ingest stopped", extra={"pid": self.ingest.pid, "code": code})
        if self.worker is not None:
            code = await _terminate(self.worker, "worker", WORKER_STOP_TIMEOUT_S)
            log.info("worker stopped", extra={"pid": self.worker.pid, "code": code})
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)
            log.info("embedded broker stopped", extra={"bootstrap": self.broker.bootstrap})


async def _terminate(process: subprocess.Popen[bytes], name: str, timeout_s: float) -> int:
    """SIGTERM, then SIGKILL after ``timeout_s``; the exit code once reaped."""
    running = process.poll() is None
    code = await asyncio.to_thread(stop_process, process, timeout_s)
    if running and code == -signal.SIGKILL:
        log.warning("%s did not stop in time: killed", name, extra={"pid": process.pid})
    return code


def run_corridor(settings: Settings, options: RunOptions, *, interactive: bool) -> None:
    """Run the main job until a signal; RunError when a part fails."""
    asyncio.run(CorridorRun(settings, options, interactive=interactive).execute())


def run_simulate(
    settings: Settings, config: SimulationConfig, *, speed: float, duration: timedelta | None, progress: bool
) -> PublishTally:
    """``corridor simulate`` from synchronous code."""
    return asyncio.run(simulate(settings, config, speed=speed, duration=duration, progress=progress))


__all__ = [
    "CorridorRun",
    "PublishTally",
    "RunError",
    "RunOptions",
    "ingest_url",
    "metrics_url",
    "publish_simulation",
    "read_metrics",
    "run_corridor",
    "run_simulate",
    "simulate",
]
