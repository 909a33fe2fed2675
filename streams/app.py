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
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import faust
from faust.streams import _current_event
from faust.types import TP, EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.topics import DEADLETTER_TOPIC, FAMILY_TOPICS
from streams.clock import Clock, SystemClock
from streams.deadletter import dead_letter_headers, dead_letter_value
from streams.metrics import CorridorCollector, EventDelays, build_registry
from streams.processor import FamilyProcessor, rejected_reasons
from streams.registry import Registry
from streams.settings import FAMILIES, Settings
from streams.state import PartitionState

log = logging.getLogger("corridor.worker")


def head_key(partition: int) -> bytes:
    return f"{partition}:head".encode()


def dedup_key(partition: int, bucket: int) -> bytes:
    return f"{partition}:dedup:{bucket}".encode()


@dataclass(slots=True)
class OwnedPartition:
    """A source partition this worker owns: its state and the records not yet checkpointed."""

    state: PartitionState
    unacked: list[EventT] = field(default_factory=list)
    last_checkpoint: float = 0.0
    checkpointed_buckets: set[int] = field(default_factory=set)


class FamilyWorker:
    """The state of one family's partitions and the checkpoints that make it durable."""

    def __init__(self, family: str, processor: FamilyProcessor, table: faust.Table, dead_letters: faust.TopicT,
                 settings: Settings, clock: Clock, delays: EventDelays) -> None:
        self.family = family
        self.topic = FAMILY_TOPICS[family]
        self.processor = processor
        self.table = table
        self.dead_letters = dead_letters
        self.interval = settings.checkpoint_interval_s
        self.clock = clock
        self.delays = delays
        self.partitions: dict[int, OwnedPartition] = {}

    def owned_states(self) -> list[PartitionState]:
        return [owned.state for owned in self.partitions.values()]

    def load(self, partition: int) -> OwnedPartition:
        """The partition's state from its last checkpoint (empty when it has none)."""
        data = self.table.data
        head = data.get(head_key(partition))
        if head is None:
            state = self.processor.new_state()
        else:
            sizes = PartitionState.dedup_sizes_of(head)
            buckets = {b: data[dedup_key(partition, b)] for b in sizes}
            state = self.processor.restore_state(head, buckets)
        owned = self.partitions[partition] = OwnedPartition(
            state, last_checkpoint=time.monotonic(), checkpointed_buckets=set(state.dedup.bucket_sizes())
        )
        return owned

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.partitions.pop(partition, None)

    def handle(self, event: EventT) -> None:
        """Apply one record and dead-letter what it rejected."""
        message = event.message
        partition = message.partition
        owned = self.partitions.get(partition) or self.load(partition)
        try:
            outcome = self.processor.process(owned.state, partition, message.offset, message.timestamp, message.value)
        except Exception as exc:
            # A record that breaks the processor must not stop the stream: it is dead-lettered.
            log.exception("failed to process record",
                          extra={"topic": self.topic, "partition": partition, "offset": message.offset})
            outcome = self.processor.fail(owned.state, partition, message.offset, message.value, exc)
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

    def checkpoint(self, partition: int, owned: OwnedPartition) -> None:
        """Write the partition's dirty dedup buckets, then its head record; then ack what they hold."""
        if not owned.unacked:
            return
        state = owned.state
        state.expire(self.clock.now())
        # faust writes a table key to the changelog partition of the event being processed;
        # from a timer or at shutdown the partition's last record stands in for it.
        token = _current_event.set(weakref.ref(owned.unacked[-1]))
        try:
            table = self.table
            # Buckets first: a head record never names a bucket the changelog lacks.
            for bucket, payload in state.dedup.dirty_buckets().items():
                table[dedup_key(partition, bucket)] = payload
            live = set(state.dedup.bucket_sizes())
            table[head_key(partition)] = state.head_bytes()
            # Expired buckets are deleted only once a head record no longer names them.
            for bucket in owned.checkpointed_buckets - live:
                del table[dedup_key(partition, bucket)]
            owned.checkpointed_buckets = live
            state.dedup.mark_clean()
        finally:
            _current_event.reset(token)
        for event in owned.unacked:
            event.ack()
        log.debug("checkpoint", extra={"topic": self.topic, "partition": partition, "offset": state.offset,
                                       "acked": len(owned.unacked)})
        owned.unacked.clear()
        owned.last_checkpoint = time.monotonic()

    def checkpoint_due(self, force: bool = False) -> None:
        now = time.monotonic()
        for partition, owned in list(self.partitions.items()):
            if force or now - owned.last_checkpoint >= self.interval:
                self.checkpoint(partition, owned)


class _App(faust.App):
    """faust's App with a hook that runs when the worker stops, before it waits for acks."""

    before_drain: Callable[[], None] | None = None

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        # faust stops its timers before it waits for every consumed record to be acked,
        # so the last records would wait for a checkpoint that never comes.
        if self.before_drain is not None:
            self.before_drain()
        await super()._consumer_wait_empty(consumer, logger)


class CorridorApp:
    """The faust app of a corridor worker and the state it exports."""

    def __init__(self, settings: Settings, *, registry: Registry | None = None, clock: Clock | None = None,
                 families: Sequence[str] = FAMILIES) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.registry = registry or Registry.load(settings.registry_file)
        self.families = tuple(families)
        self.app = _App(
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
        self.dead_letters = self.app.topic(DEADLETTER_TOPIC, key_serializer="raw", value_serializer="raw",
                                           partitions=settings.topic_partitions)
        self.workers: dict[str, FamilyWorker] = {}
        for family in self.families:
            self._add_family(family)
        self.collector = CorridorCollector(
            self, self.families, rejected_reasons(), clock=self.clock, delays=self.delays, lag=self.consumer_lag,
        )
        self.metrics_registry = build_registry(self.collector)
        self.restored = asyncio.Event()
        self._assigned_at = time.monotonic()
        self.app.on_partitions_assigned.connect(self._on_assigned)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self._add_metrics_page()
        self.app.timer(settings.checkpoint_interval_s)(self._checkpoint_idle)
        self.app.before_drain = self._checkpoint_all

    def owned_states(self, family: str) -> list[PartitionState]:
        worker = self.workers.get(family)
        return worker.owned_states() if worker else []

    def consumer_lag(self) -> dict[tuple[str, int], int]:
        lag: dict[tuple[str, int], int] = {}
        consumer = self.app.consumer
        for family, worker in self.workers.items():
            for partition, owned in worker.partitions.items():
                highwater = consumer.highwater(TP(worker.topic, partition)) or 0
                lag[(worker.topic, partition)] = max(highwater - owned.state.offset - 1, 0)
        return lag

    def _add_family(self, family: str) -> None:
        settings = self.settings
        topic = self.app.topic(FAMILY_TOPICS[family], key_serializer="raw", value_serializer="raw",
                               partitions=settings.topic_partitions)
        table = self.app.Table(
            f"state-{family}",
            partitions=settings.topic_partitions,
            # bytes keys and values: faust serialises them raw, in the changelog and on recovery.
            key_type=bytes,
            value_type=bytes,
        )
        processor = FamilyProcessor(family, settings, self.registry)
        worker = FamilyWorker(family, processor, table, self.dead_letters, settings, self.clock, self.delays)
        self.workers[family] = worker
        table.on_recover(self._restore_assigned)

        async def consume(stream: faust.StreamT) -> None:
            async for event in stream.noack().events():
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

    async def _on_revoked(self, app: Any, revoked: set[TP], **_: Any) -> None:
        for worker in self.workers.values():
            worker.forget({tp.partition for tp in revoked if tp.topic == worker.topic})

    async def _checkpoint_idle(self) -> None:
        for worker in self.workers.values():
            worker.checkpoint_due()

    def _checkpoint_all(self) -> None:
        started = time.monotonic()
        for worker in self.workers.values():
            worker.checkpoint_due(force=True)
        log.info("state checkpointed for shutdown", extra={"seconds": round(time.monotonic() - started, 3)})

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
            return faust.SSLCredentials(settings.kafka_client_options()["ssl_context"])
        return None
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password,
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=settings.kafka_client_options().get("ssl_context"),
    )
