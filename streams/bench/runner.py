"""One bench run: fresh corridor topics for each group of stages, the events published, then each stage measured.

The worker's topics have fixed names, so each group of stages gets topics of its own
(``clusters.py``): a fresh embedded broker on free loopback ports, or, with a cluster given
(``--bootstrap``), the corridor topics deleted and created again there. A group's events
are all written before anything reads them, and each stage reads them from the first offset:

1. the envelopes: the aiokafka + pydantic loop (a subprocess); ``corridor worker``; its
   memory; then, with the same worker, latency at a fixed rate;
2. the single events: the aiokafka + pydantic loop, then the bare faust agent (subprocesses);
   a fresh ``corridor worker``;
3. shipments spread over 10 and then over 1,000 known routes, each on topics of its own and
   counted by a fresh ``corridor worker`` whose registry holds exactly those routes;
4. shipments each departing (a journey the worker keeps in flight per shipment), then the same
   shipments clearing customs (no journey), each on topics of its own and counted by a fresh
   ``corridor worker``; the journeys checked on /metrics (``corridor_shipments_in_transit``), the
   workers' memory compared, and the journey records of the first one's changelog measured.

A stage that does not count exactly the events published within its time limit fails the run
(:class:`BenchError`); nothing asserts a speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.families import FAMILY_NAMES
from schemas.shipments import Milestone, ShipmentEvent
from streams.bench.clusters import APP_PREFIX, ClusterError, Clusters, EmbeddedBrokers, SharedCluster, broker_kind
from streams.bench.events import (
    Envelopes,
    EventSource,
    OwnShipments,
    Record,
    Reshape,
    RouteSpread,
    envelope_bytes,
    registry_with_routes,
    shipment_routes,
    single_records,
)
from streams.bench.measure import (
    JOURNEY_RECORDS,
    NewestValues,
    PipelineCounts,
    Sent,
    Slot,
    cpu_seconds_of,
    gauge_total,
    memory_of,
    restored_at,
    visibility_latencies,
    weighted_percentile,
)
from streams.bench.report import (
    BASELINE_AIOKAFKA,
    BASELINE_AIOKAFKA_SINGLE,
    BASELINE_FAUST,
    LABELS,
    PIPELINE_BATCHED,
    PIPELINE_JOURNEYS,
    PIPELINE_NO_JOURNEYS,
    PIPELINE_ROUTES_FEW,
    PIPELINE_ROUTES_MANY,
    PIPELINE_SINGLE,
    ROUTE_COUNTS,
    STAGES,
    BenchReport,
    Latency,
    Memory,
    Throughput,
)
from streams.core.families import SHIPMENTS_IN_TRANSIT
from streams.kafka.admin import changelog_topic, list_topics
from streams.kafka.broker import split_bootstrap
from streams.kafka.client import client_options
from streams.process import WorkerProcess, tail
from streams.settings import Settings

#: Consumer group timeouts of the workers and the faust agent: a new group's first join waits
#: for the rebalance timeout on the embedded broker, and the bench does not count that wait.
GROUP_TIMEOUTS = {"CORRIDOR_REBALANCE_TIMEOUT_S": 3.0, "CORRIDOR_SESSION_TIMEOUT_S": 6.0,
                  "CORRIDOR_HEARTBEAT_INTERVAL_S": 1.0}
#: How often a throughput stage reads the worker's /metrics (and its memory) while the end is
#: far, and once it is near: the resolution of the end. A scrape costs the worker 5 to 10 ms of
#: its event loop (a 75 KB text), so frequent reads would slow down what they measure.
SLOW_POLL_S = 0.5
POLL_S = 0.1
#: The end is near when, at the rate counted so far, it is due within this many seconds.
NEAR_END_S = 1.5
#: How often the latency stage reads /metrics: its resolution.
LATENCY_POLL_S = 0.05
#: The latency stage publishes every this many seconds.
LATENCY_TICK_S = 0.05
#: How long a worker or a faust app may take to start and join its group (not measured).
STARTUP_ALLOWANCE_S = 120.0
#: Events generated and published at a time.
PUBLISH_CHUNK = 20_000
WORKER_STOP_TIMEOUT_S = 30.0
#: A worker whose counts do not move for this long while events are missing has failed (it shows
#: new counts at every checkpoint, once a second by default).
STALL_S = 60.0
#: A changelog read from its start ends at the first fetch this long that brings nothing once past the end
#: offsets the broker reported.
CHANGELOG_IDLE_S = 0.2


class BenchError(RuntimeError):
    """A stage that could not run or did not count what was published: the message says which and why."""


class StepProgress(Protocol):
    """Where a run reports how far it got: the step under way, and its progress (total None: unknown)."""

    def step(self, description: str, done: float, total: float | None) -> None: ...


class NoProgress:
    def step(self, description: str, done: float, total: float | None) -> None:
        pass


@dataclass(frozen=True)
class BenchConfig:
    """What one run measures and on how many events."""

    events: int = 500_000  #: events in envelopes, for the worker and the aiokafka loop
    single_events: int = 60_000  #: single-event records, for the worker and both baselines
    latency_rate: int = 10_000  #: events per second offered in the latency stage
    latency_seconds: float = 10.0  #: how long they are offered (fewer when ``events`` is smaller)
    route_events: int = 200_000  #: shipments for each worker of the routes stage
    journey_shipments: int = 200_000  #: shipments for each worker of the journeys stage
    seed: int = 0
    stages: frozenset[str] = frozenset(STAGES)
    #: An existing cluster every stage runs on (its corridor topics recreated); None: fresh embedded brokers.
    bootstrap: str | None = None

    def __post_init__(self) -> None:
        if unknown := self.stages - set(STAGES):
            raise ValueError(f"unknown stages {sorted(unknown)}; expected some of {', '.join(STAGES)}")
        if not self.stages:
            raise ValueError("no stage left to run")
        if min(self.events, self.single_events, self.route_events, self.journey_shipments,
               self.latency_rate) < 1 or self.latency_seconds <= 0:
            raise ValueError("event counts, rate and duration must be positive")
        if self.bootstrap is not None:
            try:
                addresses = split_bootstrap(self.bootstrap)
            except ValueError:
                addresses = []
            if not addresses or any(not 0 < port < 65536 for _, port in addresses):
                raise ValueError(f"--bootstrap {self.bootstrap!r}: expected HOST:PORT[,HOST:PORT...]")

    @property
    def latency_events(self) -> int:
        return min(round(self.latency_rate * self.latency_seconds), self.events)

    def timeout(self, events: int) -> float:
        """How long a stage may take to count ``events``: a minute, plus a millisecond per event."""
        return 60.0 + events / 1000


@dataclass
class Published:
    """What one publishing step wrote: events per stream, records, JSON bytes of the events."""

    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAMILY_NAMES, 0))
    records: int = 0
    event_bytes: int = 0

    @property
    def total(self) -> int:
        return sum(self.events.values())

    def add(self, record: Record) -> None:
        self.events[record.family] += record.events
        self.records += 1
        self.event_bytes += envelope_bytes(record)


async def run_bench(settings: Settings, config: BenchConfig, progress: StepProgress | None = None,
                    workdir: Path | None = None) -> BenchReport:
    """Run every stage of ``config``; BenchError when one fails. ``workdir`` keeps the logs (default: a temporary
    directory, removed afterwards)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="corridor-bench-")))
        workdir.mkdir(parents=True, exist_ok=True)
        return await _Run(settings, config, progress or NoProgress(), workdir).execute()


class _Run:
    def __init__(self, settings: Settings, config: BenchConfig, progress: StepProgress, workdir: Path) -> None:
        self.settings = settings
        self.config = config
        self.progress = progress
        self.workdir = workdir
        self.token = secrets.token_hex(3)
        self.report = BenchReport(
            config.events, config.single_events, config.seed,
            route_events=config.route_events if "routes" in config.stages else None,
            journey_shipments=config.journey_shipments if "journeys" in config.stages else None,
        )
        self.source = EventSource(config.seed)

    def wants(self, *stages: str) -> bool:
        return any(stage in self.config.stages for stage in stages)

    async def execute(self) -> BenchReport:
        config = self.config
        self.report.environment = {"python": platform.python_version(), "platform": platform.platform(),
                                   "cpus": os.cpu_count(), "load_before": _load()}
        clusters: Clusters = (EmbeddedBrokers(self.settings, self._announce) if config.bootstrap is None
                              else SharedCluster(self.settings, config.bootstrap, self._announce))
        try:
            await self._stages(clusters)
        except Exception:
            # The stage's error says more than one of tidying up after it. An interrupted run leaves
            # its topics to the next run, which deletes them with the corridor topics.
            with contextlib.suppress(ClusterError):
                await clusters.close()
            raise
        await self._tidy(clusters)
        self.report.environment["load_after"] = _load()
        return self.report

    async def _stages(self, clusters: Clusters) -> None:
        config = self.config
        in_envelopes = single = Published()
        if self.wants("batched", "aiokafka", "latency"):
            async with self._fresh(clusters) as bootstrap:
                if self.wants("batched", "aiokafka"):
                    in_envelopes = await self._publish(bootstrap, config.events, envelopes=True)
                if self.wants("aiokafka"):
                    await self._baseline(BASELINE_AIOKAFKA, bootstrap, in_envelopes)
                if self.wants("batched", "latency"):
                    worker = _Worker(bootstrap, self.workdir / "worker-envelopes", self._app_id("envelopes"))
                    with worker:
                        measured, counts = await self._drain(worker, in_envelopes,
                                                             "corridor worker on the envelopes")
                        if self.wants("batched"):
                            self.report.throughput[PIPELINE_BATCHED] = measured
                        if self.wants("latency"):
                            self.report.latency = await self._latency(worker, bootstrap, counts)
        if self.wants("single", "aiokafka", "faust"):
            async with self._fresh(clusters) as bootstrap:
                single = await self._publish(bootstrap, config.single_events, envelopes=False)
                if self.wants("aiokafka"):
                    await self._baseline(BASELINE_AIOKAFKA_SINGLE, bootstrap, single)
                if self.wants("faust"):
                    await self._baseline(BASELINE_FAUST, bootstrap, single)
                if self.wants("single"):
                    worker = _Worker(bootstrap, self.workdir / "worker-single", self._app_id("single"))
                    with worker:
                        self.report.throughput[PIPELINE_SINGLE], _ = await self._drain(
                            worker, single, "corridor worker on the single events")
        published_events = in_envelopes.total + single.total
        self.report.event_json_bytes = ((in_envelopes.event_bytes + single.event_bytes) / published_events
                                        if published_events else None)
        if self.wants("routes"):
            for key, count in zip((PIPELINE_ROUTES_FEW, PIPELINE_ROUTES_MANY), ROUTE_COUNTS, strict=True):
                self.report.throughput[key] = await self._routes(clusters, count)
        if self.wants("journeys"):
            await self._journeys(clusters)

    async def _tidy(self, clusters: Clusters) -> None:
        try:
            await clusters.close()
        except ClusterError as exc:
            raise BenchError(f"every stage ran, but {exc}") from None

    def _announce(self, description: str) -> None:
        self.progress.step(description, 0, None)

    def _app_id(self, name: str) -> str:
        """A fresh app id (consumer group, changelog names) for one of this run's apps."""
        return f"{APP_PREFIX}{self.token}-{name}"

    # --- topics and publishing ---

    @contextlib.asynccontextmanager
    async def _fresh(self, clusters: Clusters) -> AsyncIterator[str]:
        """Fresh corridor topics for a group of stages (the broker's kind noted on the first)."""
        try:
            async with clusters.fresh() as bootstrap:
                if self.report.broker is None:
                    self.report.broker = await broker_kind(self._settings_for(bootstrap),
                                                           shared=self.config.bootstrap is not None)
                yield bootstrap
        except ClusterError as exc:
            raise BenchError(str(exc)) from None

    def _settings_for(self, bootstrap: str) -> Settings:
        return self.settings.model_copy(update={"kafka_bootstrap": bootstrap})

    async def _publish(self, bootstrap: str, count: int, *, envelopes: bool,
                       source: EventSource | None = None, reshape: Reshape | None = None) -> Published:
        """Write ``count`` fresh events of ``source`` (the run's mix by default), in envelopes or one per record,
        and wait for every acknowledgement. ``reshape`` changes the events before they are sent."""
        kind = "envelopes" if envelopes else "single-event records"
        description = f"publishing {count:,} events in {kind}"
        source = source or self.source
        published = Published()
        batcher = Envelopes()
        # Envelopes as the SDK sends them; single events batched by the producer as any client would.
        producer = AIOKafkaProducer(
            **client_options(self._settings_for(bootstrap)),
            linger_ms=5 if envelopes else 10,
            max_batch_size=self.settings.publish_batch_bytes + 64 * 1024 if envelopes else 256 * 1024,
            max_request_size=max(1_048_576, 2 * self.settings.publish_batch_bytes),
        )
        await producer.start()
        try:
            made = 0
            while made < count:
                events = source.take(min(PUBLISH_CHUNK, count - made), time.time())
                made += len(events)
                if reshape is not None:
                    events = reshape.apply(events)
                records = batcher.add(events) if envelopes else list(single_records(events))
                if made == count:
                    records += batcher.flush()
                await self._send(producer, records, published)
                self.progress.step(description, made, count)
        finally:
            await producer.stop()
        return published

    @staticmethod
    async def _send(producer: AIOKafkaProducer, records: list[Record], published: Published) -> None:
        deliveries = [await producer.send(record.topic, record.value, key=record.key) for record in records]
        await asyncio.gather(*deliveries)
        for record in records:
            published.add(record)

    # --- baselines ---

    async def _baseline(self, key: str, bootstrap: str, published: Published) -> None:
        """Run one baseline over everything ``published`` at ``bootstrap``; its throughput goes in the report."""
        kind = "faust" if key == BASELINE_FAUST else "aiokafka"
        description = LABELS[key]
        total = published.total
        timeout = self.config.timeout(total)
        command = [sys.executable, "-m", "streams.bench.baselines", kind, "--bootstrap", bootstrap,
                   "--expect", str(total), "--timeout", str(timeout + (STARTUP_ALLOWANCE_S if kind == "faust" else 0))]
        if kind == "aiokafka":
            command += ["--partitions", str(self.settings.topic_partitions)]
        else:
            timeouts = ",".join(str(GROUP_TIMEOUTS[f"CORRIDOR_{name}_S"]) for name in
                                ("REBALANCE_TIMEOUT", "SESSION_TIMEOUT", "HEARTBEAT_INTERVAL"))
            command += ["--app-id", self._app_id("faust"), "--group-timeouts", timeouts]
        log_path = self.workdir / f"{key}.log"
        self.progress.step(description, 0, total)
        with open(log_path, "wb") as log:
            process = await asyncio.create_subprocess_exec(
                *command, stdin=subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log,
                start_new_session=True,
            )
        result: dict[str, float] | None = None
        error = None
        try:
            if process.stdout is None:
                raise RuntimeError("the baseline's output is not piped")
            async with asyncio.timeout(timeout + STARTUP_ALLOWANCE_S):
                async for raw in process.stdout:
                    try:
                        line = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        continue  # not the protocol's: a library printing
                    if "counted" in line:
                        self.progress.step(description, line["counted"], total)
                    elif "error" in line:
                        error = line["error"]
                    elif "seconds" in line:
                        result = line
                await process.wait()
        except TimeoutError:
            error = f"no result within {timeout + STARTUP_ALLOWANCE_S:g}s"
        finally:
            await _reap(process)
        if result is None:
            end = tail(log_path)
            raise BenchError(f"the {description} failed: {error or f'exit code {process.returncode}'}"
                             + (f"; the end of its log:\n{end}" if end else ""))
        counted = int(result["events"])
        start = "first record handed to the loop" if kind == "aiokafka" else "first record handed to the agent"
        # The baselines count events, not per stream: what they counted is all that was published.
        self.report.throughput[key] = Throughput(
            counted, float(result["seconds"]), start, dict(published.events),
            dict(published.events) if counted == total else {"all": counted}, cpu_seconds=result.get("cpu_seconds"))

    # --- the worker ---

    async def _routes(self, clusters: Clusters, count: int) -> Throughput:
        """A fresh worker whose registry knows ``count`` shipment routes, on shipments spread over them all."""
        routes = shipment_routes(count)
        directory = self.workdir / f"worker-routes-{count}"
        directory.mkdir(parents=True, exist_ok=True)
        registry = directory / "registry.json"
        registry.write_bytes(registry_with_routes(routes))
        # Shipments only, the same templates for every route count: only the routes differ.
        source = EventSource(self.config.seed, mix={"shipments": 1})
        async with self._fresh(clusters) as bootstrap:
            published = await self._publish(bootstrap, self.config.route_events, envelopes=True, source=source,
                                            reshape=RouteSpread(routes))
            worker = _Worker(bootstrap, directory, self._app_id(f"routes-{count}"),
                             {"CORRIDOR_REGISTRY_FILE": str(registry)})
            with worker:
                measured, _ = await self._drain(worker, published, f"corridor worker on {count:,} routes")
        return measured

    async def _journeys(self, clusters: Clusters) -> None:
        """Shipments each departing, so that every one opens a journey the worker keeps in flight; then the same
        shipments clearing customs, which open none. A fresh worker and fresh topics each; the first must show
        every shipment in transit and the second none, and the first one's changelog is measured."""
        shipments = self.config.journey_shipments
        for key, milestone, in_transit in ((PIPELINE_JOURNEYS, Milestone.DEPARTED.value, shipments),
                                           (PIPELINE_NO_JOURNEYS, Milestone.CUSTOMS_CLEARED.value, 0)):
            source = EventSource(self.config.seed, mix={"shipments": 1})
            app_id = self._app_id(f"journeys-{milestone.replace('_', '-')}")
            async with self._fresh(clusters) as bootstrap:
                published = await self._publish(bootstrap, shipments, envelopes=True, source=source,
                                                reshape=OwnShipments(milestone))
                worker = _Worker(bootstrap, self.workdir / f"worker-journeys-{milestone}", app_id)
                description = f"corridor worker on shipments {milestone.replace('_', ' ')}"
                with worker:
                    self.report.throughput[key], _ = await self._drain(worker, published, description)
                    shown = await asyncio.to_thread(worker.gauge, SHIPMENTS_IN_TRANSIT.name)
                    if shown != in_transit:
                        raise BenchError(
                            f"the {description} shows {'nothing' if shown is None else f'{shown:,g}'} in "
                            f"{SHIPMENTS_IN_TRANSIT.name}, but {in_transit:,} shipments are in transit; the end of "
                            f"its log:\n{worker.log_tail(10)}")
                if in_transit:
                    self.report.journey_changelog_bytes = await self._journey_changelog_bytes(bootstrap, app_id)

    async def _journey_changelog_bytes(self, bootstrap: str, app_id: str) -> int:
        """The bytes of the journey records the worker of ``app_id`` left in its shipments changelog, the newest
        value of each key (what a compacted changelog keeps, and the ``memory://`` store holds)."""
        settings = self._settings_for(bootstrap)
        topic = changelog_topic(app_id, ShipmentEvent.family)
        partitions = (await list_topics(settings)).get(topic)
        if not partitions:
            raise BenchError(f"the worker's changelog {topic} is not on the cluster")
        self.progress.step(f"reading {topic}", 0, None)
        consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            assigned = [TopicPartition(topic, partition) for partition in range(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning()
            # A lower bound on the embedded broker (its quirk 2), so the read goes on until a fetch brings nothing.
            ends = await consumer.end_offsets(assigned)
            newest = NewestValues(JOURNEY_RECORDS)
            timeout = self.config.timeout(self.config.journey_shipments)
            deadline = time.monotonic() + timeout
            while True:
                batch = await consumer.getmany(timeout_ms=round(CHANGELOG_IDLE_S * 1000))
                for records in batch.values():
                    for record in records:
                        newest.add(record.key, record.value)
                if not batch and all([await consumer.position(part) >= ends[part] for part in assigned]):
                    return newest.total
                if time.monotonic() > deadline:
                    raise BenchError(f"the worker's changelog {topic} was still being read after {timeout:g}s")
        finally:
            await consumer.stop()

    async def _drain(self, worker: _Worker, published: Published, description: str
                     ) -> tuple[Throughput, PipelineCounts]:
        """Wait until the worker shows every published event on /metrics; the throughput from its start
        (state restored, in its log) to the first scrape that showed them all, and its memory."""
        expected = published.events
        total = published.total
        self.progress.step(f"{description}: starting", 0, total)
        deadline = time.monotonic() + STARTUP_ALLOWANCE_S + self.config.timeout(total)
        samples: list[tuple[float, int, float | None]] = []  # (when, resident bytes, CPU seconds)
        received: dict[str, int] = {}
        stall = _Stall(worker)
        poll = POLL_S
        while True:
            worker.check_alive()
            memory = memory_of(worker.pid)
            if memory is not None:
                samples.append((time.time(), memory[0], cpu_seconds_of(worker.pid)))
            started = worker.restored_at()
            scraped = await asyncio.to_thread(worker.scrape) if started is not None else None
            if scraped is not None and started is not None:
                at, counts = scraped
                received = counts.received_by_stream()
                self.progress.step(description, counts.total_received, total)
                stall.see(counts.total_received, f"the {description} counted {_per_stream(received)} of "
                                                 f"{_per_stream(expected)} events")
                # Every event is valid and unique: one not accepted was rejected or taken for a duplicate.
                if counts.accepted_by_stream() != received or all(
                        received.get(stream, 0) >= expected[stream] for stream in FAMILY_NAMES):
                    break
                poll = POLL_S if _near_end(started, at, counts.total_received, total) else SLOW_POLL_S
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the {description} counted {_per_stream(received)} of {_per_stream(expected)} events within "
                    f"{STARTUP_ALLOWANCE_S + self.config.timeout(total):g}s; the end of its log:\n{worker.log_tail()}")
            await asyncio.sleep(poll)
        accepted = counts.accepted_by_stream()
        if any(received.get(s, 0) != expected[s] or accepted.get(s, 0) != expected[s] for s in FAMILY_NAMES):
            raise BenchError(f"the {description} received {_per_stream(received)} and accepted "
                             f"{_per_stream(accepted)} events, but {_per_stream(expected)} were published; "
                             f"the end of its log:\n{worker.log_tail(10)}")
        start_label = "worker log: state restored"
        seconds = at - started
        at_end, cpu_at_end = memory_of(worker.pid), cpu_seconds_of(worker.pid)
        # The last sample before the start: the worker as started, before any event.
        at_start = [sample for sample in samples if sample[0] <= started][-1:] or samples[:1]
        footprint = Memory(at_start[0][1], at_end[1], total, at_end[0]) if at_end is not None and at_start else None
        cpu_at_start = at_start[0][2] if at_start else None
        cpu = cpu_at_end - cpu_at_start if cpu_at_end is not None and cpu_at_start is not None else None
        return Throughput(total, seconds, start_label, dict(expected), accepted, footprint, cpu), counts

    async def _latency(self, worker: _Worker, bootstrap: str, before: PipelineCounts) -> Latency:
        """Publish envelopes at a fixed rate; each record's latency from its send to the first scrape counting it."""
        config = self.config
        total = config.latency_events
        per_tick = max(1, round(config.latency_rate * LATENCY_TICK_S))
        description = f"latency at {config.latency_rate:,} events/s"
        scrapes: list[tuple[float, Mapping[Slot, int]]] = []
        stop = asyncio.Event()

        async def scrape_until_stopped() -> None:
            while not stop.is_set():
                scraped = await asyncio.to_thread(worker.scrape)
                if scraped is not None:
                    scrapes.append((scraped[0], scraped[1].accepted))
                await asyncio.sleep(LATENCY_POLL_S)

        producer = AIOKafkaProducer(**client_options(self._settings_for(bootstrap)),
                                    linger_ms=self.settings.publish_linger_ms,
                                    max_batch_size=self.settings.publish_batch_bytes + 64 * 1024,
                                    max_request_size=max(1_048_576, 2 * self.settings.publish_batch_bytes))
        await producer.start()
        scraper = asyncio.create_task(scrape_until_stopped())
        try:
            queued: list[tuple[asyncio.Future[object], float, Record]] = []
            loop = asyncio.get_running_loop()
            began = loop.time()
            made = tick = 0
            while made < total:
                await asyncio.sleep(max(0.0, began + tick * LATENCY_TICK_S - loop.time()))
                events = self.source.take(min(per_tick, total - made), time.time())
                made += len(events)
                tick += 1
                # Each tick's events as one publish call of the SDK: grouped by key into envelopes.
                batcher = Envelopes()
                for record in batcher.add(events) + batcher.flush():
                    sent_at = time.time()
                    queued.append((await producer.send(record.topic, record.value, key=record.key), sent_at, record))
                self.progress.step(description, made, total)
            deliveries = await asyncio.gather(*(delivery for delivery, _, _ in queued))
            sent = [Sent(record.family, delivery.partition, delivery.offset, sent_at, record.events)  # type: ignore[attr-defined]
                    for delivery, (_, sent_at, record) in zip(deliveries, queued, strict=True)]
            wanted = dict(before.accepted)
            for landed in sent:
                slot = (landed.stream, landed.partition)
                wanted[slot] = wanted.get(slot, 0) + landed.events
            deadline = time.monotonic() + config.timeout(total)
            stall = _Stall(worker)
            while not scrapes or any(scrapes[-1][1].get(slot, 0) < count for slot, count in wanted.items()):
                worker.check_alive()
                if scrapes:
                    stall.see(sum(scrapes[-1][1].values()), "the worker counted part of the latency stage's events")
                if time.monotonic() > deadline:
                    raise BenchError(f"the worker did not count the {total:,} events of the latency stage within "
                                     f"{config.timeout(total):g}s; the end of its log:\n{worker.log_tail()}")
                await asyncio.sleep(LATENCY_POLL_S)
        finally:
            stop.set()
            await scraper
            await producer.stop()
        latencies = visibility_latencies(sent, before.accepted, scrapes)
        return Latency(
            rate=config.latency_rate, seconds=total / config.latency_rate, events=total,
            p50=weighted_percentile(latencies, 0.5), p99=weighted_percentile(latencies, 0.99),
            max=max(latency for latency, _ in latencies), poll_s=LATENCY_POLL_S,
        )


class _Worker(WorkerProcess):
    """A ``corridor worker`` of the bench in ``directory``: its own app id, state directory, web port and JSON log,
    read for the moment its start ended."""

    def __init__(self, bootstrap: str, directory: Path, app_id: str, settings: Mapping[str, str] | None = None) -> None:
        super().__init__(
            bootstrap, directory / "state", directory / "worker.log", app_id,
            # The bench is the scraper: moved partitions' views need not be held longer than its polls.
            scrape_interval_s=POLL_S,
            env={**{name: str(value) for name, value in GROUP_TIMEOUTS.items()},
                 "CORRIDOR_LOG_FORMAT": "json", "CORRIDOR_LOG_LEVEL": "INFO", **(settings or {})},
            stop_timeout_s=WORKER_STOP_TIMEOUT_S,
        )
        self._restored_at: float | None = None

    def check_alive(self) -> None:
        code = self.process.poll() if self.process is not None else None
        if self.process is None or code is not None:
            raise BenchError(f"the worker exited with code {code}; the end of its log:\n{self.log_tail()}")

    def scrape(self) -> tuple[float, PipelineCounts] | None:
        """The pipeline counts of /metrics and when they were read (the middle of the request); None while the
        worker does not answer."""
        sent = time.time()
        text = self.metrics_text(timeout_s=10)
        if text is None:
            return None
        return (sent + time.time()) / 2, PipelineCounts.parse(text)

    def gauge(self, name: str) -> float | None:
        """The sum of the gauge ``name`` on the worker's /metrics; None while the worker does not answer."""
        text = self.metrics_text(timeout_s=10)
        return None if text is None else gauge_total(text, name)

    def restored_at(self) -> float | None:
        """When the worker's state was first restored (from its log): the end of its start."""
        if self._restored_at is None:
            with open(self.log_path, errors="replace") as log:
                self._restored_at = restored_at(log)
        return self._restored_at


class _Stall:
    """Fails a wait on a worker whose count has not moved for STALL_S seconds (a crashed agent, a stuck partition)."""

    def __init__(self, worker: _Worker) -> None:
        self.worker = worker
        self.count = -1
        self.since = time.monotonic()

    def see(self, count: int, progress: str) -> None:
        now = time.monotonic()
        if count != self.count:
            self.count, self.since = count, now
        elif now - self.since > STALL_S:
            raise BenchError(f"{progress}, then nothing more for {STALL_S:g}s; the end of its log:\n"
                             f"{self.worker.log_tail()}")


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Stop a baseline process this run started, if it still runs."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), WORKER_STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _near_end(started: float, now: float, counted: int, total: int) -> bool:
    """Whether the last event is due within NEAR_END_S at the rate counted since ``started`` (not yet known
    while nothing is counted)."""
    if counted <= 0 or now <= started:
        return False
    return (total - counted) / (counted / (now - started)) <= NEAR_END_S


def _per_stream(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{stream} {counts.get(stream, 0):,}" for stream in FAMILY_NAMES)


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
