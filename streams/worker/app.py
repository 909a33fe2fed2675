"""The faust app of a corridor worker, wired: each family's records in batches straight from the
consumer, its state table, /metrics, /healthz and /readyz.

Exactness without Kafka transactions (see docs/architecture.md): each source
partition's state carries the offset of the last record it applied. The state is made
durable as a checkpoint in a changelogged table, and a partition's offset may be committed
past a record only after the checkpoint holding it was confirmed
(``streams/worker/checkpoint.py``). After a crash the partition state comes back from its
last checkpoint and the consumer resumes at the committed offset, which is never past it;
records the checkpoint already holds are skipped by offset, every later one is applied once
(``streams/worker/family.py``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import TP
from faust.types.auth import CredentialsT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.families import DEADLETTER_TOPIC, FAMILIES, FAMILY_NAMES
from streams.core.clock import Clock, SystemClock
from streams.core.journeys import OVERDUE_PATH, overdue_report
from streams.core.processor import FamilyProcessor, rejected_reasons
from streams.core.registry import Registry
from streams.core.state import PartitionState
from streams.kafka.admin import BrokerProbe, state_table
from streams.kafka.client import ssl_context
from streams.kafka.profile import PROFILES, BrokerFlavor
from streams.settings import Settings
from streams.worker.adapters import ConsumerOffsets, DeadLetterTopic, TableChangelog
from streams.worker.cluster import CLUSTER_CHECK_INTERVAL_S, ClusterWatch
from streams.worker.family import FamilyWorker
from streams.worker.faust_compat import App, Consumer, restored_generation, track_producer_topics
from streams.worker.metrics import (
    CorridorCollector,
    EventDelays,
    ExportedPartition,
    WorkerCollector,
    WorkerHealth,
    WorkerStatus,
    build_registry,
)
from streams.worker.sensor import WorkerSensor

log = logging.getLogger("corridor.worker")

SHIPMENTS = "shipments"


class CorridorApp:
    """The faust app of a corridor worker and the state it exports."""

    def __init__(self, settings: Settings, *, registry: Registry | None = None, clock: Clock | None = None,
                 families: Sequence[str] = FAMILY_NAMES) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.registry = registry or Registry.load(settings.registry_file)
        self.families = tuple(families)
        self.app = App(
            settings.app_id,
            broker=[f"kafka://{host}" for host in settings.bootstrap.split(",")],
            broker_credentials=_credentials(settings),
            store=_store_url(settings.store),
            datadir=str(settings.state_dir),
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication,
            table_standby_replicas=settings.standby_replicas,
            broker_rebalance_timeout=settings.rebalance_timeout_s,
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=settings.heartbeat_interval_s,
            broker_commit_interval=settings.checkpoint_interval_s,
            # Apache Kafka's profile; the embedded broker's replaces it once it answers (``ClusterWatch``).
            producer_max_batch_size=PROFILES[BrokerFlavor.KAFKA].producer_max_batch_size,
            producer_linger_ms=0,
            web_bind=settings.web_host,
            web_port=settings.web_port,
            # The port serves /metrics, /healthz and /readyz; faust's own pages (its router,
            # table contents, statistics and graphs) stay off.
            web_router_enabled=False,
            web_tables_enabled=False,
            web_stats_enabled=False,
            web_graph_enabled=False,
            web_metrics_enabled=False,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            recovery_consistency_check=PROFILES[BrokerFlavor.KAFKA].recovery_consistency_check,
        )
        self.delays = EventDelays(self.families)
        self.health = WorkerHealth(self.families, send_topics=(DEADLETTER_TOPIC,))
        self.dead_letters = self.app.topic(DEADLETTER_TOPIC, key_serializer="raw", value_serializer="raw",
                                           partitions=settings.topic_partitions)
        self.workers: dict[str, FamilyWorker] = {}
        self.changelogs: dict[str, TableChangelog] = {}
        for family in self.families:
            self._add_family(family)
        #: The consumer generation of the group's latest assignment, and its partitions of each family while
        #: their state is not restored yet (None once it is): the recovery of that generation restores them.
        self._generation: int | None = None
        self._unrestored: dict[str, set[int]] | None = None
        self.app.sensors.add(WorkerSensor(self.health))
        self.collector = CorridorCollector(self, self.families, rejected_reasons(), clock=self.clock)
        self.metrics_registry = build_registry(
            self.collector, WorkerCollector(self, self.delays, self.health), process=True
        )
        #: Set once the first assignment's state is restored.
        self.restored = asyncio.Event()
        self._assigned_at = time.monotonic()
        self.broker_reachable = BrokerProbe(settings)
        # faust's signal types do not admit coroutine receivers, which faust awaits all the same.
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self._add_pages()
        # Partitions with no new records get their due checkpoint from this timer: a quarter
        # interval late at most, not a whole one.
        self.app.timer(settings.checkpoint_interval_s / 4)(self._checkpoint_idle)
        self.app.before_drain = self._checkpoint_all
        self.cluster = ClusterWatch(settings, self.app, self._consumer, topics=self._topics,
                                    compacted=self._changelog_topics, rebase=self._rebase)
        self.app.before_kafka = self.cluster.wait_for_broker
        self.app.on_reconnect = self.cluster.check
        # A broker that came back idle sends no record to check it on.
        self.app.timer(CLUSTER_CHECK_INTERVAL_S)(self.cluster.check)
        for worker in self.workers.values():
            worker.checkpoints.check_cluster = self.cluster.check

    def _consumer(self) -> Consumer:
        consumer = self.app.consumer
        if not isinstance(consumer, Consumer):
            raise TypeError(f"the app's consumer is a {type(consumer).__name__}, not the worker's own Consumer")
        return consumer

    def _changelog_topics(self) -> list[str]:
        return [changelog.topic for changelog in self.changelogs.values()]

    def _topics(self) -> dict[str, int]:
        """Every topic the worker reads or writes, with its partitions."""
        names = [DEADLETTER_TOPIC, *(worker.topic for worker in self.workers.values()), *self._changelog_topics()]
        return dict.fromkeys(names, self.settings.topic_partitions)

    def _rebase(self, cluster: str) -> None:
        for worker in self.workers.values():
            worker.rebase(cluster)

    def owned_states(self, family: str) -> list[PartitionState]:
        worker = self.workers.get(family)
        return worker.owned_states() if worker else []

    def exported(self, family: str) -> list[ExportedPartition]:
        worker = self.workers.get(family)
        return worker.exported(time.monotonic()) if worker else []

    def status(self) -> WorkerStatus:
        now = time.monotonic()
        restoring = {family: len((self._unrestored or {}).get(family, ())) for family in self.workers}
        ages = {
            (family, partition): age
            for family, worker in self.workers.items()
            for partition, age in worker.checkpoint_ages(now).items()
        }
        profile = self.cluster.profile
        lag = self.consumer_lag()
        return WorkerStatus(
            lag=lag,
            restoring=restoring,
            restore_seconds=now - self._assigned_at if any(restoring.values()) else 0.0,
            checkpoint_age=ages,
            broker=profile.flavor if profile is not None else "unknown",
            lag_seconds=self.consumer_lag_seconds(lag),
        )

    def consumer_lag(self) -> dict[tuple[str, int], int]:
        """Records not yet applied per owned partition; a partition whose end offset is unknown is left out."""
        lag: dict[tuple[str, int], int] = {}
        consumer = self.app.consumer
        for worker in self.workers.values():
            for partition, owned in worker.partitions.items():
                highwater = consumer.highwater(TP(worker.topic, partition))
                if highwater is not None:
                    lag[(worker.topic, partition)] = max(highwater - owned.state.offset - 1, 0)
        return lag

    def consumer_lag_seconds(self, lag: dict[tuple[str, int], int]) -> dict[tuple[str, int], float]:
        """The age of the oldest record not yet applied (an upper bound) per owned partition with a known
        ``lag``; each partition seen with no lag is noted as caught up now (``OwnedPartition.lag_seconds``)."""
        now = self.clock.now()
        ages: dict[tuple[str, int], float] = {}
        for worker in self.workers.values():
            for partition, owned in worker.partitions.items():
                records = lag.get((worker.topic, partition))
                if records is None:
                    continue
                if records <= 0:
                    owned.seen_caught_up(now)
                age = owned.lag_seconds(records, now)
                if age is not None:
                    ages[(worker.topic, partition)] = age
        return ages

    def restoring(self) -> bool:
        """Whether the group's latest assignment is not restored yet (or the first assignment is pending)."""
        return not self.restored.is_set() or self._unrestored is not None

    def _add_family(self, family: str) -> None:
        settings = self.settings
        # Consumed in batches (faust_compat.Consumer), never through faust's streams; no faust
        # acknowledgements either: commits follow confirmed checkpoints.
        topic = self.app.topic(FAMILIES[family].topic, key_serializer="raw", value_serializer="raw",
                               partitions=settings.topic_partitions, acks=False)
        table = self.app.Table(
            state_table(family),
            partitions=settings.topic_partitions,
            # bytes keys and values: faust serialises them raw, in the changelog and on recovery.
            key_type=bytes,
            value_type=bytes,
        )
        processor = FamilyProcessor(family, settings, self.registry)
        changelog = self.changelogs[family] = TableChangelog(table)
        worker = FamilyWorker(family, processor, changelog, ConsumerOffsets(FAMILIES[family].topic, self._consumer),
                              DeadLetterTopic(self.dead_letters), settings, self.clock, self.delays, self.health)
        self.workers[family] = worker
        table.on_recover(self._restore_assigned)
        self.app.consume_in_batches(topic, worker.handle_batch)

    async def _restore_assigned(self) -> None:
        """Take the partitions of the group's latest assignment, once faust's recovery restored their state.

        faust also calls this at the end of a recovery that a newer rebalance overtook, and the assignor
        then already holds the new assignment, whose partitions that recovery never read: taken now, they
        would start empty and be read again from their first record, their series rising by all they ever
        counted. So only the recovery of the latest assignment's generation takes partitions, and only
        those of that assignment still held (``_on_revoked``).
        """
        unrestored = self._unrestored
        if unrestored is None or restored_generation(self.app) != self._generation:
            return
        self._unrestored = None
        restored = 0
        for family, worker in self.workers.items():
            partitions = unrestored.get(family, set())
            worker.assign(partitions)
            for partition in sorted(partitions - worker.partitions.keys()):
                worker.load(partition)
                restored += 1
        if restored:
            # From the assignment: the changelog read by faust plus the partition states built here.
            log.info("state restored", extra={"partitions": restored,
                                              "seconds": round(time.monotonic() - self._assigned_at, 3)})
        self.restored.set()

    async def _on_assigned(self, app: faust.App, assigned: set[TP], **_: object) -> None:
        self._assigned_at = time.monotonic()
        # Before the first checkpoint or dead letter is sent (see track_producer_topics).
        track_producer_topics(self.app, [DEADLETTER_TOPIC, *self._changelog_topics()])
        # Taken, and their records applied, only once restored (``_restore_assigned``): until then the
        # worker drops what is fetched of them, read again from the committed offsets after the recovery.
        self._generation = self.app.consumer_generation_id
        self._unrestored = {worker.family: {tp.partition for tp in assigned if tp.topic == worker.topic}
                            for worker in self.workers.values()}

    async def _on_revoked(self, app: faust.App, revoked: set[TP], **_: object) -> None:
        for worker in self.workers.values():
            gone = {tp.partition for tp in revoked if tp.topic == worker.topic}
            worker.assigned -= gone
            if self._unrestored is not None:
                self._unrestored[worker.family] -= gone
            worker.forget(gone)

    async def _checkpoint_idle(self) -> None:
        for worker in self.workers.values():
            worker.checkpoint_due()

    async def _checkpoint_all(self) -> None:
        started = time.monotonic()
        await asyncio.gather(*(worker.flush() for worker in self.workers.values()))
        log.info("state checkpointed", extra={"seconds": round(time.monotonic() - started, 3)})

    def _add_pages(self) -> None:
        async def metrics(view: View, request: Request) -> Response:
            # Always 200: partitions still restoring are simply not exported yet.
            return view.bytes(generate_latest(self.metrics_registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(view: View, request: Request) -> Response:
            return view.text("ok\n")  # answering at all shows the event loop is alive

        async def readyz(view: View, request: Request) -> Response:
            if self.cluster.waiting is not None:
                return view.text(f"{self.cluster.waiting}\n", status=503)
            if self.restoring():
                return view.text("restoring partition state\n", status=503)
            if not await self.broker_reachable():
                return view.text(f"no Kafka broker answers at {self.settings.bootstrap}\n", status=503)
            return view.text("ready\n")

        async def overdue(view: View, request: Request) -> Response:
            # The exception list: the overdue shipments of the partitions this worker owns (live state).
            return view.json(self.overdue_shipments())

        self.app.page("/metrics")(metrics)
        self.app.page("/healthz")(healthz)
        self.app.page("/readyz")(readyz)
        self.app.page(OVERDUE_PATH)(overdue)

    def overdue_shipments(self) -> dict[str, Any]:
        """What ``/shipments/overdue`` answers (docs/metrics.md, "The overdue list")."""
        worker = self.workers.get(SHIPMENTS)
        books = [] if worker is None else [
            (partition, owned.state.journeys) for partition, owned in sorted(worker.partitions.items())
            if owned.state.journeys is not None
        ]
        report = overdue_report(books, self.clock.now(), self.settings.overdue_list_limit)
        return {"worker": self.settings.worker_id or f"{socket.gethostname()}:{self.settings.web_port}", **report}


def _store_url(store: str) -> str:
    if store.startswith(("memory:", "rocksdb:")):
        return store
    raise ValueError(f"CORRIDOR_STORE={store!r}: use memory:// or rocksdb://")


def _credentials(settings: Settings) -> CredentialsT | None:
    if settings.kafka_sasl_mechanism is None:
        if settings.kafka_security_protocol == "SSL":
            return faust.SSLCredentials(ssl_context(settings))
        return None
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password,
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=ssl_context(settings),
    )


def build_worker(settings: Settings, corridor: CorridorApp | None = None) -> faust.Worker:
    """A faust worker for the corridor app; SIGTERM and SIGINT stop it cleanly."""
    corridor = corridor or CorridorApp(settings)
    worker = faust.Worker(
        corridor.app,
        loglevel=settings.log_level.lower(),
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    if not sys.stderr.isatty():
        worker.spinner = None  # its terminal escape codes would land in log files
    return worker
