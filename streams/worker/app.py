"""The faust app: one agent per event family, state tables, /metrics.

Exactness without Kafka transactions (see docs/architecture.md): each source
partition's state carries the offset of the last record it applied. The state is made
durable as a checkpoint in a changelogged table, and a record's offset is acknowledged
(so may be committed) only after the checkpoint holding it was written. After a crash the
partition state comes back from its last checkpoint and the consumer resumes at the
committed offset, which is never past it; records the checkpoint already holds are skipped
by offset, every later one is applied once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.types import TP, EventT, StoreT, StreamT, TableT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.families import DEADLETTER_TOPIC, FAMILIES, FAMILY_NAMES
from streams.core.checkpoint import Checkpoint, CheckpointUnreadable, chunks_for, plan_checkpoint, read_checkpoint
from streams.core.clock import Clock, SystemClock
from streams.core.processor import FamilyProcessor, rejected_reasons
from streams.core.registry import Registry
from streams.core.sequence import OffsetSequence
from streams.core.state import PartitionState
from streams.kafka.client import ssl_context
from streams.settings import Settings
from streams.worker.deadletter import dead_letter_headers, dead_letter_value
from streams.worker.faust_compat import App, Consumer, acting_for, committed_offset
from streams.worker.metrics import CorridorCollector, EventDelays, WorkerHealth, build_registry

log = logging.getLogger("corridor.worker")


@dataclass(slots=True)
class OwnedPartition:
    """A source partition this worker owns: its state and the records no checkpoint holds yet."""

    state: PartitionState
    unacked: list[EventT] = field(default_factory=list)
    last_checkpoint: float = 0.0
    #: Dedup chunks per bucket that may be in the changelog (for the tombstones of expired buckets).
    chunk_counts: dict[int, int] = field(default_factory=dict)
    #: The checkpoint being written, if any (its result: whether it was confirmed); one at a time.
    writing: asyncio.Future[bool] | None = None
    sequence: OffsetSequence = field(default_factory=OffsetSequence)


class Changelog:
    """Writes checkpoints to a table's changelog and, once the broker confirmed them, to its store."""

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self.table = table

    async def write(self, checkpoint: Checkpoint) -> int:
        """Send the records in order; returns the changelog offset of the last once all are confirmed."""
        topic = self.table.changelog_topic
        sent = [
            await topic.send(key=key, value=value, partition=checkpoint.partition,
                             key_serializer="raw", value_serializer="raw", force=True)
            for key, value in checkpoint.records
        ]
        confirmed = await asyncio.gather(*sent)
        return confirmed[-1].offset

    def store(self, checkpoint: Checkpoint, changelog_offset: int, stand_in: EventT) -> None:
        """Apply confirmed records to the local store, then remember how far the changelog is held.

        The store never holds what the changelog lacks, so faust's recovery, which reads
        the changelog from the stored offset on, always ends with the changelog's state.
        """
        data = cast(StoreT[bytes, bytes], self.table.data)  # TableT types its store as a plain mapping
        with acting_for(stand_in):
            for key, value in checkpoint.records:
                if value is not None:
                    data[key] = value
                elif key in data:
                    del data[key]
            data.set_persisted_offset(TP(self.table.changelog_topic.get_topic_name(), checkpoint.partition),
                                      changelog_offset)

    def get(self, key: bytes) -> bytes | None:
        return self.table.data.get(key)


class FamilyWorker:
    """The state of one family's partitions and the checkpoints that make it durable."""

    def __init__(self, family: str, processor: FamilyProcessor, table: TableT[bytes, bytes], dead_letters: faust.TopicT,
                 settings: Settings, clock: Clock, delays: EventDelays, health: WorkerHealth,
                 consumer: Callable[[], Consumer]) -> None:
        self.family = family
        self.topic = FAMILIES[family].topic
        self.processor = processor
        self.changelog = Changelog(table)
        self.dead_letters = dead_letters
        self.interval = settings.checkpoint_interval_s
        self.clock = clock
        self.delays = delays
        self.health = health
        self._consumer = consumer
        self.partitions: dict[int, OwnedPartition] = {}
        #: Partitions of the family topic the consumer group gave this worker.
        self.assigned: set[int] = set()

    def committed(self, tp: TP) -> int | None:
        return committed_offset(self._consumer(), tp)

    async def seek(self, tp: TP, offset: int) -> None:
        # seek_wait moves the position from the consumer's own thread and waits until it moved.
        await self._consumer().seek_wait({tp: offset})

    def owned_states(self) -> list[PartitionState]:
        return [owned.state for owned in self.partitions.values()]

    def load(self, partition: int) -> OwnedPartition:
        """The partition's state from its last checkpoint (empty when it has none)."""
        try:
            state = read_checkpoint(partition, self.changelog.get, self.processor.restore_state)
        except CheckpointUnreadable as exc:
            # Starting empty is the only way on: the worker then reads the partition again from
            # its first record (streams/core/sequence.py), and reports what the topic no longer has.
            log.error("checkpoint unreadable, starting the partition empty: %s", exc,
                      extra={"topic": self.topic, "partition": partition})
            state = None
        if state is None:
            state = self.processor.new_state()
        sizes = state.dedup.bucket_sizes()
        owned = self.partitions[partition] = OwnedPartition(
            state, last_checkpoint=time.monotonic(), chunk_counts={b: chunks_for(n) for b, n in sizes.items()},
        )
        return owned

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.partitions.pop(partition, None)

    def handle(self, event: EventT) -> None:
        """Apply one record and dead-letter what it rejected."""
        message = event.message
        partition = message.partition
        if partition not in self.assigned:
            return  # fetched before its partition was revoked: its next owner reads it
        owned = self.partitions.get(partition) or self.load(partition)
        decision = owned.sequence.decide(owned.state.offset, message.offset)
        if decision.seek_to is not None:
            self._seek_back(partition, owned, decision.seek_to, message.offset)
        if decision.hole is not None:
            self._passed_hole(partition, *decision.hole)
        if not decision.apply:
            return
        raw = message.value or b""  # a tombstone is a record without bytes: dead-lettered as unparseable
        try:
            outcome = self.processor.process(owned.state, partition, message.offset, message.timestamp, raw)
        except Exception as exc:
            # A record that breaks the processor must not stop the stream: it is dead-lettered.
            log.exception("failed to process record",
                          extra={"topic": self.topic, "partition": partition, "offset": message.offset})
            outcome = self.processor.fail(owned.state, partition, message.offset, raw, exc)
        for letter in outcome.dead_letters:
            log.warning(
                "rejected record",
                extra={"topic": self.topic, "partition": partition, "offset": message.offset,
                       "index": letter.index, "reason": letter.reason, "error": letter.message},
            )
            value, truncation = dead_letter_value(letter)
            self.dead_letters.send_soon(
                key=self.topic.encode(), value=value, headers=dead_letter_headers(self.topic, letter) + truncation,
            )
        if outcome.accepted_event_times:
            self.delays.observe_many(self.family, self.clock.now(), outcome.accepted_event_times)
        owned.unacked.append(event)
        if time.monotonic() - owned.last_checkpoint >= self.interval:
            self.checkpoint(partition, owned)

    def _seek_back(self, partition: int, owned: OwnedPartition, offset: int, delivered: int) -> None:
        log.warning("offsets %d-%d of %s partition %d were not delivered before offset %d: reading them again",
                    offset, delivered - 1, self.topic, partition, delivered,
                    extra={"topic": self.topic, "partition": partition, "offset": offset})

        async def seek() -> None:
            try:
                await self.seek(TP(self.topic, partition), offset)
            finally:
                owned.sequence.sought()

        asyncio.ensure_future(seek())

    def _passed_hole(self, partition: int, first: int, last: int) -> None:
        """Offsets that hold no records: harmless, unless the group had committed them (a state gap)."""
        committed = self.committed(TP(self.topic, partition))
        if committed is None or committed <= first:
            log.info("offsets %d-%d of %s partition %d hold no records (removed by retention, or transaction "
                     "markers)", first, last, self.topic, partition)
            return
        self.health.state_gaps[self.family] += 1
        log.error(
            "state gap: offsets %d-%d of %s partition %d were committed, but no checkpoint holds them and the topic "
            "no longer has them; the totals miss those records",
            first, min(last, committed - 1), self.topic, partition,
            extra={"topic": self.topic, "partition": partition, "first_missing": first,
                   "last_missing": min(last, committed - 1)},
        )

    def checkpoint(self, partition: int, owned: OwnedPartition) -> asyncio.Future[bool] | None:
        """Start writing everything applied so far, unless a checkpoint of the partition is under way.

        Records are acknowledged (so their offsets may be committed) only once the broker
        confirmed every record of the checkpoint holding them.
        """
        if owned.writing is not None or not owned.unacked:
            return owned.writing
        owned.state.expire(self.clock.now())
        checkpoint = plan_checkpoint(partition, owned.state, owned.chunk_counts)
        events, owned.unacked = owned.unacked, []
        owned.last_checkpoint = time.monotonic()
        owned.writing = asyncio.ensure_future(self._write(owned, checkpoint, events))
        return owned.writing

    async def _write(self, owned: OwnedPartition, checkpoint: Checkpoint, events: list[EventT]) -> bool:
        partition = checkpoint.partition
        try:
            changelog_offset = await self.changelog.write(checkpoint)
        except Exception as exc:
            owned.unacked[:0] = events
            self.health.checkpoint_failures[self.family] += 1
            log.error("checkpoint write failed, retrying at the next interval: %r", exc,
                      extra={"topic": self.topic, "partition": partition, "offset": checkpoint.offset})
            return False
        finally:
            owned.writing = None
        if self.partitions.get(partition) is not owned:
            return False  # revoked meanwhile: its next owner restores from the changelog
        self.changelog.store(checkpoint, changelog_offset, events[-1])
        owned.state.dedup.mark_durable(checkpoint.dedup_sizes)
        owned.chunk_counts = checkpoint.chunk_counts
        ack = self._consumer().ack_checkpointed
        for event in events:
            ack(event.message)
        log.debug("checkpoint", extra={"topic": self.topic, "partition": partition, "offset": checkpoint.offset,
                                       "acked": len(events)})
        return True

    def checkpoint_due(self) -> None:
        now = time.monotonic()
        for partition, owned in list(self.partitions.items()):
            if now - owned.last_checkpoint >= self.interval:
                self.checkpoint(partition, owned)

    async def flush(self, attempts: int = 3) -> None:
        """Checkpoint every partition and wait until the broker confirmed it all.

        Gives a partition up after ``attempts`` failed writes: its unconfirmed records are
        let go unacknowledged (faust waits for every record it handed out to be acknowledged
        or dropped), and are read again after the seek to the committed offset that follows.
        """
        for partition, owned in list(self.partitions.items()):
            failures = 0
            while self.partitions.get(partition) is owned and (owned.writing or owned.unacked):
                writing = owned.writing or self.checkpoint(partition, owned)
                if writing is not None and not await writing:
                    failures += 1
                    if failures >= attempts:
                        owned.unacked.clear()
                        break
                    await asyncio.sleep(self.interval)


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
            # One record per produce batch: the embedded broker reports end offsets
            # from the last batch's base offset, which would cut changelog recovery short.
            producer_max_batch_size=1,
            producer_linger_ms=0,
            web_bind=settings.web_host,
            web_port=settings.web_port,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
        )
        self.delays = EventDelays(self.families)
        self.health = WorkerHealth(self.families)
        self.dead_letters = self.app.topic(DEADLETTER_TOPIC, key_serializer="raw", value_serializer="raw",
                                           partitions=settings.topic_partitions)
        self.workers: dict[str, FamilyWorker] = {}
        for family in self.families:
            self._add_family(family)
        self.collector = CorridorCollector(
            self, self.families, rejected_reasons(), clock=self.clock, delays=self.delays, lag=self.consumer_lag,
            health=self.health,
        )
        self.metrics_registry = build_registry(self.collector)
        self.restored = asyncio.Event()
        self._assigned_at = time.monotonic()
        # faust's signal types do not admit coroutine receivers, which faust awaits all the same.
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self._add_metrics_page()
        self.app.timer(settings.checkpoint_interval_s)(self._checkpoint_idle)
        self.app.before_drain = self._checkpoint_all

    def _consumer(self) -> Consumer:
        consumer = self.app.consumer
        if not isinstance(consumer, Consumer):
            raise TypeError(f"the app's consumer is a {type(consumer).__name__}, not the worker's own Consumer")
        return consumer

    def owned_states(self, family: str) -> list[PartitionState]:
        worker = self.workers.get(family)
        return worker.owned_states() if worker else []

    def consumer_lag(self) -> dict[tuple[str, int], int]:
        lag: dict[tuple[str, int], int] = {}
        consumer = self.app.consumer
        for worker in self.workers.values():
            for partition, owned in worker.partitions.items():
                highwater = consumer.highwater(TP(worker.topic, partition)) or 0
                lag[(worker.topic, partition)] = max(highwater - owned.state.offset - 1, 0)
        return lag

    def _add_family(self, family: str) -> None:
        settings = self.settings
        topic = self.app.topic(FAMILIES[family].topic, key_serializer="raw", value_serializer="raw",
                               partitions=settings.topic_partitions)
        table = self.app.Table(
            f"state-{family}",
            partitions=settings.topic_partitions,
            # bytes keys and values: faust serialises them raw, in the changelog and on recovery.
            key_type=bytes,
            value_type=bytes,
        )
        processor = FamilyProcessor(family, settings, self.registry)
        worker = FamilyWorker(family, processor, table, self.dead_letters, settings, self.clock, self.delays,
                              self.health, self._consumer)
        self.workers[family] = worker
        table.on_recover(self._restore_assigned)

        async def consume(stream: StreamT[bytes]) -> None:
            async for event in stream.noack().events():  # type: ignore[attr-defined]
                worker.handle(event)

        consume.__name__ = f"consume_{family}"
        self.app.agent(topic, name=f"corridor.{family}")(consume)

    async def _restore_assigned(self) -> None:
        restored = 0
        for tp in self.app.assignor.assigned_actives():
            for worker in self.workers.values():
                if tp.topic == worker.topic and tp.partition not in worker.partitions:
                    worker.load(tp.partition)
                    restored += 1
        if restored:
            # From the assignment: the changelog read by faust plus the partition states built here.
            log.info("state restored", extra={"partitions": restored,
                                              "seconds": round(time.monotonic() - self._assigned_at, 3)})
        self.restored.set()

    async def _on_assigned(self, app: Any, assigned: set[TP], **_: Any) -> None:
        self._assigned_at = time.monotonic()
        for worker in self.workers.values():
            worker.assigned = {tp.partition for tp in assigned if tp.topic == worker.topic}

    async def _on_revoked(self, app: Any, revoked: set[TP], **_: Any) -> None:
        for worker in self.workers.values():
            gone = {tp.partition for tp in revoked if tp.topic == worker.topic}
            worker.assigned -= gone
            worker.forget(gone)

    async def _checkpoint_idle(self) -> None:
        for worker in self.workers.values():
            worker.checkpoint_due()

    async def _checkpoint_all(self) -> None:
        started = time.monotonic()
        await asyncio.gather(*(worker.flush() for worker in self.workers.values()))
        log.info("state checkpointed", extra={"seconds": round(time.monotonic() - started, 3)})

    def _add_metrics_page(self) -> None:
        async def metrics(view: Any, request: Any) -> Any:
            if not self.restored.is_set():
                return view.text("state is being restored\n", status=503)
            return view.bytes(generate_latest(self.metrics_registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        self.app.page("/metrics")(metrics)


def _store_url(store: str) -> str:
    if store.startswith(("memory:", "rocksdb:")):
        return store
    raise ValueError(f"CORRIDOR_STORE={store!r}: use memory:// or rocksdb://")


def _credentials(settings: Settings) -> Any:
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
