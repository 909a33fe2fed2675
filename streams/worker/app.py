"""The faust app: each family's records in batches straight from the consumer, state tables,
/metrics, /healthz and /readyz.

Exactness without Kafka transactions (see docs/architecture.md): each source
partition's state carries the offset of the last record it applied. The state is made
durable as a checkpoint in a changelogged table, and a partition's offset may be committed
past a record only after the checkpoint holding it was confirmed. After a crash the
partition state comes back from its last checkpoint and the consumer resumes at the
committed offset, which is never past it; records the checkpoint already holds are skipped
by offset, every later one is applied once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

import faust
from aiokafka.errors import KafkaConnectionError
from faust.types import TP, StoreT, TableT
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.families import DEADLETTER_TOPIC, FAMILIES, FAMILY_NAMES
from streams.core.checkpoint import Checkpoint, CheckpointUnreadable, chunks_for, plan_checkpoint, read_checkpoint
from streams.core.clock import Clock, SystemClock
from streams.core.processor import DeadLetter, FamilyProcessor, RecordOutcome, rejected_reasons
from streams.core.registry import Registry
from streams.core.sequence import OffsetSequence
from streams.core.state import PartitionState, StateView
from streams.core.wire import Headers
from streams.kafka.admin import BROKER_CHECK_TIMEOUT_S, BrokerProbe, cluster_id, ensure_topics
from streams.kafka.client import ssl_context
from streams.kafka.profile import PROFILES, BrokerFlavor, BrokerProfile, broker_profile
from streams.settings import Settings
from streams.worker.deadletter import dead_letter_headers, dead_letter_value
from streams.worker.faust_compat import (
    App,
    Consumer,
    Record,
    acting_for,
    committed_offset,
    set_producer_batch_size,
    track_producer_topics,
)
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


#: This process in the ``owner`` label; each period of ownership adds a number to it.
_PROCESS_TOKEN = secrets.token_hex(4)
_ownerships = itertools.count(1)


def _next_owner() -> str:
    return f"{_PROCESS_TOKEN}-{next(_ownerships)}"


#: Waiting for a broker: attempts back off from the first to the last delay; one log line at
#: most per interval says that the worker still waits.
BROKER_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 5.0)
BROKER_WAIT_LOG_INTERVAL_S = 30.0
#: How often the worker looks whether a lost broker connection still awaits its cluster check.
CLUSTER_CHECK_INTERVAL_S = 1.0


class ExportPhase(Enum):
    """Where a partition's series stands in one period of ownership (see ``PartitionExport``)."""

    STARTING = "starting"  # the restored view, held; confirmed views wait
    STARTING_REVOKED = "starting-revoked"  # revoked while STARTING: the restored view finishes its hold
    LIVE = "live"  # each confirmed view as it comes
    ENDING = "ending"  # revoked: the final view, held; views confirmed late wait their turn
    GONE = "gone"  # revoked, and no longer shown


@dataclass(slots=True)
class PartitionExport:
    """What the metrics show of a partition during one period of ownership: its series.

    A moved partition's new series must begin where the previous owner's ended, and end where
    the next owner's begins, each end sampled by every scraper; else ``increase()`` misses
    what moved with it. So the restored view is shown for ``hold_s`` (two scrape intervals)
    from when the partition was taken, and the final view (its last confirmed checkpoint) for
    ``hold_s`` from when it first shows: after the restored view's hold if it was revoked
    during it.
    """

    #: The ``owner`` label: a new value each time the partition is taken.
    owner: str
    #: What the metrics show: the restored state at first, then views of confirmed checkpoints.
    shown: StateView
    #: ``shown`` is held until then (while STARTING, STARTING_REVOKED or ENDING).
    hold_until: float
    hold_s: float
    phase: ExportPhase = ExportPhase.STARTING
    #: The view of the last confirmed checkpoint, waiting for the hold on ``shown`` to end.
    waiting: StateView | None = None

    @property
    def latest(self) -> StateView:
        """The view of the last confirmed checkpoint (the restored state if none was confirmed)."""
        return self.waiting if self.waiting is not None else self.shown

    def confirmed(self, view: StateView) -> None:
        """A checkpoint was confirmed: shown at once while LIVE, else once the hold on ``shown`` ends."""
        if self.phase is ExportPhase.LIVE:
            self.shown = view
        else:
            self.waiting = view

    def revoked(self, now: float) -> None:
        """LIVE -> ENDING, the final view held from now; STARTING -> STARTING_REVOKED."""
        if self.phase is ExportPhase.LIVE:
            self.phase, self.hold_until = ExportPhase.ENDING, now + self.hold_s
        elif self.phase is ExportPhase.STARTING:
            self.phase = ExportPhase.STARTING_REVOKED

    def given_back(self) -> None:
        """Taken again with nothing applied elsewhere meanwhile: the series goes on where it was.

        STARTING_REVOKED -> STARTING (the restored view finishes its hold); ENDING or GONE -> LIVE.
        """
        if self.phase is ExportPhase.STARTING_REVOKED:
            self.phase = ExportPhase.STARTING
        else:
            self.phase, self.shown, self.waiting = ExportPhase.LIVE, self.latest, None

    def advance(self, now: float, *, checkpointing: bool) -> None:
        """Once the hold on ``shown`` is over: STARTING -> LIVE, showing the latest confirmed view;
        STARTING_REVOKED or ENDING -> ENDING, showing a view confirmed meanwhile, held in its turn;
        with none to show and no checkpoint in flight (it may change the final view) -> GONE."""
        if now < self.hold_until or self.phase in (ExportPhase.LIVE, ExportPhase.GONE):
            return
        if self.phase is ExportPhase.STARTING:
            self.phase, self.shown, self.waiting = ExportPhase.LIVE, self.latest, None
        elif self.waiting is not None:
            self.phase, self.shown, self.waiting = ExportPhase.ENDING, self.waiting, None
            self.hold_until = now + self.hold_s
        elif not checkpointing:
            self.phase = ExportPhase.GONE


@dataclass(slots=True)
class OwnedPartition:
    """A source partition this worker owns: its state and the records no checkpoint holds yet."""

    state: PartitionState
    #: What the metrics show of it; still shown a while once revoked (see ``FamilyWorker.forget``).
    export: PartitionExport
    #: Records applied (or skipped as held) since the last checkpoint started: not committable yet.
    pending: int = 0
    #: When the oldest of the ``pending`` records was applied, and of the checkpoint being written.
    pending_since: float | None = None
    writing_since: float | None = None
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

    def store(self, checkpoint: Checkpoint, changelog_offset: int) -> None:
        """Apply confirmed records to the local store, then remember how far the changelog is held.

        The store never holds what the changelog lacks, so faust's recovery, which reads
        the changelog from the stored offset on, always ends with the changelog's state.
        """
        data = cast(StoreT[bytes, bytes], self.table.data)  # TableT types its store as a plain mapping
        with acting_for(checkpoint.partition):
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
        #: How long a moved partition's first and last views are held (see ``PartitionExport``).
        self.hold_s = 2 * settings.scrape_interval_s
        self.clock = clock
        self.delays = delays
        self.health = health
        self._consumer = consumer
        self.partitions: dict[int, OwnedPartition] = {}
        #: Partitions of the family topic the consumer group gave this worker.
        self.assigned: set[int] = set()
        #: Revoked partitions by (partition, owner): shown until their series end, and the latest
        #: of each kept in case the group gives it back.
        self.released: dict[tuple[int, str], OwnedPartition] = {}
        #: The cluster the broker is (see ``rebase``), and what checks it again before a checkpoint
        #: write when a connection to the broker was lost.
        self.cluster: str | None = None
        self.check_cluster: Callable[[], Awaitable[None]] | None = None

    def committed(self, tp: TP) -> int | None:
        return committed_offset(self._consumer(), tp)

    async def seek(self, tp: TP, offset: int) -> None:
        # seek_wait moves the position from the consumer's own thread and waits until it moved.
        await self._consumer().seek_wait({tp: offset})

    def owned_states(self) -> list[PartitionState]:
        return [owned.state for owned in self.partitions.values()]

    def exported(self, now: float) -> list[ExportedPartition]:
        """What the metrics show at ``now`` (monotonic): each owned partition's view, and revoked
        partitions' views until their series end."""
        for owned in [*self.partitions.values(), *self.released.values()]:
            owned.export.advance(now, checkpointing=owned.writing is not None)
        shown = [ExportedPartition(p, owned.export.owner, owned.export.shown) for p, owned in self.partitions.items()]
        shown += [ExportedPartition(p, owned.export.owner, owned.export.shown, revoked=True)
                  for (p, _), owned in self.released.items() if owned.export.phase is not ExportPhase.GONE]
        return sorted(shown, key=lambda part: part.partition)

    def checkpoint_ages(self, now: float) -> dict[int, float]:
        ages = {}
        for partition, owned in self.partitions.items():
            waiting = [since for since in (owned.pending_since, owned.writing_since) if since is not None]
            ages[partition] = now - min(waiting) if waiting else 0.0
        return ages

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
        previous = next((owned for (p, _), owned in reversed(self.released.items()) if p == partition), None)
        if previous is not None and previous.export.latest.offset == state.offset:
            # Given back with nothing applied since its last confirmed view: its series go on as they were.
            del self.released[partition, previous.export.owner]
            export = previous.export
            export.given_back()
        else:
            # Series of an earlier ownership still end on their own (see ``forget``).
            export = PartitionExport(_next_owner(), state.view(), hold_until=time.monotonic() + self.hold_s,
                                     hold_s=self.hold_s)
        owned = self.partitions[partition] = OwnedPartition(
            state, export, last_checkpoint=time.monotonic(),
            chunk_counts={b: chunks_for(n) for b, n in sizes.items()},
        )
        self._follow_cluster(partition, owned)
        return owned

    def rebase(self, cluster: str) -> None:
        """The broker is now ``cluster``, a new one: its topics and changelog start empty.

        What the partitions counted stays counted (aggregates and dedup index are kept, so a
        producer resending an event it could not confirm is not counted twice); their position
        goes back to before the first record, so every record the new cluster holds is applied,
        and the next checkpoint writes the whole state to the new changelog. Offsets committed
        in the old topics mean nothing in the new ones and are dropped.
        """
        self.cluster = cluster
        for partition, owned in self.partitions.items():
            self._follow_cluster(partition, owned)

    def _follow_cluster(self, partition: int, owned: OwnedPartition) -> None:
        """Rebase ``owned`` if it was read in another cluster than the broker's (state from a checkpoint too)."""
        state = owned.state
        if state.cluster is None or self.cluster is None:
            state.cluster = state.cluster or self.cluster  # not known until now: nothing to compare
            return
        if state.cluster == self.cluster:
            return
        log.warning("%s partition %d was read up to offset %d in cluster %s; the broker is now cluster %s, "
                    "whose topic starts empty: reading it from its first record, totals kept",
                    self.topic, partition, state.offset, state.cluster, self.cluster,
                    extra={"topic": self.topic, "partition": partition, "offset": state.offset})
        state.offset = -1
        state.cluster = self.cluster
        state.dedup.mark_durable({})  # the new changelog holds none of it
        owned.sequence = OffsetSequence()
        owned.chunk_counts = {}
        if not owned.pending:
            # Not in the new changelog yet: due for a checkpoint though no record was applied.
            owned.pending, owned.pending_since = 1, time.monotonic()
        self._consumer().forget_commits(TP(self.topic, partition))
        self.checkpoint(partition, owned)
        # The consumer would go on from its position in the old topic, past records of the new one.
        asyncio.ensure_future(self._seek_to_start(partition))

    async def _seek_to_start(self, partition: int) -> None:
        try:
            await self.seek(TP(self.topic, partition), 0)
        except Exception as exc:
            # Given up meanwhile: its next owner starts from the group's committed offsets, none yet.
            log.warning("seek to the start of %s partition %d failed: %r", self.topic, partition, exc)

    def forget(self, partitions: set[int]) -> None:
        """Give partitions up (revoked); the next owner restores them from the changelog.

        Each one's final view (its last checkpoint) is still shown for two scrape intervals,
        after its restored view finished its own hold: its series ends where the next owner's
        begins, so what was applied after the previous scrape is not lost to ``increase()``.
        """
        for partition in partitions:
            owned = self.partitions.pop(partition, None)
            if owned is not None:
                owned.export.revoked(time.monotonic())
                self.released[partition, owned.export.owner] = owned

    def assign(self, partitions: set[int]) -> None:
        """The group's new assignment: revoked partitions are let go once their series ended, but for
        the latest ownership of each partition it gives back."""
        self.assigned = partitions
        latest = {p: owned for (p, _), owned in self.released.items()}
        self.released = {(p, owner): owned for (p, owner), owned in self.released.items()
                         if owned.export.phase is not ExportPhase.GONE or (p in partitions and latest[p] is owned)}

    def handle_batch(self, partition: int, records: Sequence[Record]) -> None:
        """Apply one fetch of a partition's records, in offset order, and dead-letter what they rejected."""
        if partition not in self.assigned:
            return  # fetched before its partition was revoked: its next owner reads it
        owned = self.partitions.get(partition) or self.load(partition)
        sequence = owned.sequence
        held = owned.state.offset  # as it will be after the records taken so far
        run: list[tuple[int, float, bytes]] = []
        headers: dict[int, Headers] = {}  # only of records that carry any: plain records pay nothing
        for record in records:
            offset = record.offset
            decision = sequence.decide(held, offset)
            if decision.seek_to is not None:
                self._seek_back(partition, owned, decision.seek_to, offset)
            if decision.hole is not None:
                self._passed_hole(partition, *decision.hole)
            if not decision.apply:
                break  # records were passed over: the rest of the fetch waits for the seek back
            # A tombstone is a record without bytes: dead-lettered as unparseable.
            run.append((offset, record.timestamp / 1000.0, record.value or b""))
            if record.headers:
                headers[offset] = record.headers
            held = max(held, offset)
        if not run:
            return
        try:
            outcomes = self.processor.process_many(owned.state, partition, run, headers)
        except Exception:
            # The state is as it was: one record at a time finds the one at fault.
            outcomes = [self._process_one(owned.state, partition, *item, headers.get(item[0])) for item in run]
        accepted_times: list[float] = []
        for (offset, _, _), outcome in zip(run, outcomes, strict=True):
            if outcome.dead_letters:
                self._dead_letter(partition, offset, outcome.dead_letters)
            accepted_times += outcome.accepted_event_times
        if accepted_times:
            self.delays.observe_many(self.family, self.clock.now(), accepted_times)
        if not owned.pending:
            owned.pending_since = time.monotonic()
        owned.pending += len(run)
        if time.monotonic() - owned.last_checkpoint >= self.interval:
            self.checkpoint(partition, owned)

    def _process_one(self, state: PartitionState, partition: int, offset: int, timestamp: float,
                     raw: bytes, headers: Headers | None) -> RecordOutcome:
        try:
            return self.processor.process(state, partition, offset, timestamp, raw, headers)
        except Exception as exc:
            # A record that breaks the processor must not stop the stream: it is dead-lettered.
            log.exception("failed to process record", extra={"topic": self.topic, "partition": partition,
                                                             "offset": offset})
            return self.processor.fail(state, partition, offset, raw, exc)

    def _dead_letter(self, partition: int, offset: int, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            log.warning(
                "rejected record",
                extra={"topic": self.topic, "partition": partition, "offset": offset,
                       "index": letter.index, "reason": letter.reason, "error": letter.message},
            )
            value, truncation = dead_letter_value(letter)
            self.dead_letters.send_soon(
                key=self.topic.encode(), value=value, headers=dead_letter_headers(self.topic, letter) + truncation,
            )

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

        The partition's offset may be committed past the records it holds only once the broker
        confirmed every record of the checkpoint.
        """
        if owned.writing is not None or not owned.pending:
            return owned.writing
        owned.state.expire(self.clock.now())
        checkpoint = plan_checkpoint(partition, owned.state, owned.chunk_counts)
        view = owned.state.view()
        records, owned.pending = owned.pending, 0
        owned.writing_since, owned.pending_since = owned.pending_since, None
        owned.last_checkpoint = time.monotonic()
        owned.writing = asyncio.ensure_future(self._write(owned, checkpoint, view, records, owned.state.cluster))
        return owned.writing

    async def _write(self, owned: OwnedPartition, checkpoint: Checkpoint, view: StateView, records: int,
                     cluster: str | None) -> bool:
        partition = checkpoint.partition
        try:
            if self.check_cluster is not None:
                await self.check_cluster()
            changelog_offset = await self.changelog.write(checkpoint) if owned.state.cluster == cluster else -1
        except Exception as exc:
            owned.pending += records
            owned.pending_since, owned.writing_since = owned.writing_since, None
            self.health.checkpoint_failures[self.family] += 1
            log.error("checkpoint write failed, retrying at the next interval: %r", exc,
                      extra={"topic": self.topic, "partition": partition, "offset": checkpoint.offset})
            return False
        finally:
            owned.writing = None
        owned.writing_since = None
        if owned.state.cluster != cluster:
            # Planned before the broker came back as a new cluster (``rebase``): its offsets count
            # in topics that are gone, so it moves nothing; the rebased state is due instead.
            owned.pending += records
            return False
        if self.partitions.get(partition) is not owned:
            # Revoked meanwhile: its next owner restores from the changelog. The revoked
            # partition's series still end with what is now durable (see ``forget``), unless
            # it was taken again meanwhile and its series are the new ownership's.
            if self.released.get((partition, owned.export.owner)) is owned:
                owned.export.confirmed(view)
            return False
        self.changelog.store(checkpoint, changelog_offset)
        owned.export.confirmed(view)
        owned.state.dedup.mark_durable(checkpoint.dedup_sizes)
        owned.chunk_counts = checkpoint.chunk_counts
        # The next record to read after a restart is the first one the checkpoint does not hold.
        self._consumer().commit_up_to(TP(self.topic, partition), checkpoint.offset + 1)
        log.debug("checkpoint", extra={"topic": self.topic, "partition": partition, "offset": checkpoint.offset,
                                       "records": records})
        return True

    def checkpoint_due(self) -> None:
        now = time.monotonic()
        for partition, owned in list(self.partitions.items()):
            if now - owned.last_checkpoint >= self.interval:
                self.checkpoint(partition, owned)

    async def flush(self, attempts: int = 3) -> None:
        """Checkpoint every partition and wait until the broker confirmed it all.

        Gives a partition up after ``attempts`` failed writes: its unconfirmed records are
        not committed, and are read again from the committed offset by the partition's next
        owner (or by this worker after a restart).
        """
        for partition, owned in list(self.partitions.items()):
            failures = 0
            while self.partitions.get(partition) is owned and (owned.writing or owned.pending):
                writing = owned.writing or self.checkpoint(partition, owned)
                if writing is not None and not await writing:
                    failures += 1
                    if failures >= attempts:
                        owned.pending = 0
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
            # Apache Kafka's profile; the embedded broker's replaces it once it answers (``_use_profile``).
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
        #: What the broker that answers needs (streams/kafka/profile.py); known once it answered.
        self.profile: BrokerProfile | None = None
        self.delays = EventDelays(self.families)
        self.health = WorkerHealth(self.families)
        self.dead_letters = self.app.topic(DEADLETTER_TOPIC, key_serializer="raw", value_serializer="raw",
                                           partitions=settings.topic_partitions)
        self.workers: dict[str, FamilyWorker] = {}
        for family in self.families:
            self._add_family(family)
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
        #: The cluster the broker is: a new one means its topics started again from nothing (``_check_cluster``).
        self.cluster: str | None = None
        #: Why the worker is not ready while no broker answers: at start, and while the cluster is
        #: checked again after a lost connection.
        self.waiting: str | None = "connecting to Kafka"
        self._cluster_check = asyncio.Lock()
        self.app.before_kafka = self._wait_for_broker
        self.app.on_reconnect = self._check_cluster
        # A broker that came back idle sends no record to check it on.
        self.app.timer(CLUSTER_CHECK_INTERVAL_S)(self._check_cluster)
        for worker in self.workers.values():
            worker.check_cluster = self._check_cluster

    def _consumer(self) -> Consumer:
        consumer = self.app.consumer
        if not isinstance(consumer, Consumer):
            raise TypeError(f"the app's consumer is a {type(consumer).__name__}, not the worker's own Consumer")
        return consumer

    def owned_states(self, family: str) -> list[PartitionState]:
        worker = self.workers.get(family)
        return worker.owned_states() if worker else []

    def exported(self, family: str) -> list[ExportedPartition]:
        worker = self.workers.get(family)
        return worker.exported(time.monotonic()) if worker else []

    def status(self) -> WorkerStatus:
        now = time.monotonic()
        restoring = {family: len(worker.assigned - worker.partitions.keys()) for family, worker in self.workers.items()}
        ages = {
            (family, partition): age
            for family, worker in self.workers.items()
            for partition, age in worker.checkpoint_ages(now).items()
        }
        return WorkerStatus(
            lag=self.consumer_lag(),
            restoring=restoring,
            restore_seconds=now - self._assigned_at if any(restoring.values()) else 0.0,
            checkpoint_age=ages,
            broker=self.profile.flavor if self.profile is not None else "unknown",
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

    def restoring(self) -> bool:
        """Whether some assigned partition has no restored state yet (or the first assignment is pending)."""
        return not self.restored.is_set() or any(
            worker.assigned - worker.partitions.keys() for worker in self.workers.values()
        )

    async def _wait_for_broker(self, waiter: Service) -> None:
        """At start, before any Kafka client: wait until the cluster answers (the probes answer meanwhile)."""
        started = time.monotonic()
        while True:
            cluster = await self._answering_cluster(waiter)
            if waiter.should_stop:
                return
            try:
                profile = await broker_profile(self.settings)
                break
            except KafkaConnectionError as exc:  # gone again between the two questions: asked again
                log.warning("%s", exc)
                await waiter.sleep(BROKER_RETRY_DELAYS_S[0])
        self._use_profile(profile)
        if profile.rebase_new_cluster:
            self._set_cluster(cluster)
        effective = self.broker_settings()
        log.info("Kafka broker at %s answered after %.1fs (cluster %s): %s", self.settings.bootstrap,
                 time.monotonic() - started, cluster, ", ".join(f"{k} {v}" for k, v in effective.items()),
                 extra=effective)

    def broker_settings(self) -> dict[str, object]:
        """What the worker runs with for the broker that answered, read back from faust and the consumer."""
        return {
            "broker": self.profile.flavor.value if self.profile is not None else "unknown",
            "producer_max_batch_size": self.app.producer.max_batch_size,
            "recovery_consistency_check": self.app.conf.recovery_consistency_check,
            "rebase_new_cluster": self._consumer().watch_clusters,
        }

    def _use_profile(self, profile: BrokerProfile) -> None:
        """Set what differs between brokers before any Kafka client starts (streams/kafka/profile.py)."""
        self.profile = profile
        set_producer_batch_size(self.app, profile.producer_max_batch_size)
        self.app.conf.recovery_consistency_check = profile.recovery_consistency_check
        self._consumer().watch_clusters = profile.rebase_new_cluster

    async def _check_cluster(self) -> None:
        """After a broker connection closed: is the broker still the cluster the partitions were read from?

        A real Kafka cluster keeps its id, its topics and the group's offsets across restarts,
        and nothing changes. A new cluster (the embedded broker restarted, keeping nothing) has
        its topics created, and every partition is rebased (``FamilyWorker.rebase``).
        """
        if self.profile is None or not self.profile.rebase_new_cluster:
            return  # not answered yet, or a broker that keeps its log: a restart is the same cluster
        async with self._cluster_check:
            consumer = self._consumer()
            closes = consumer.connection_closes
            if not consumer.cluster_unchecked:
                return
            cluster = await self._answering_cluster(self.app)
            if self.app.should_stop:
                return
            if cluster is not None and cluster != self.cluster:
                log.warning("the Kafka broker at %s came back as a new cluster (%s, was %s): its topics start "
                            "empty", self.settings.bootstrap, cluster, self.cluster)
                while True:
                    try:
                        await self._create_topics()
                        break
                    except Exception as exc:
                        log.error("creating the topics in the new cluster failed, trying again: %r", exc)
                        await self.app.sleep(BROKER_RETRY_DELAYS_S[-1])
                        if self.app.should_stop:
                            return
                self._set_cluster(cluster)
            consumer.cluster_checked(closes)

    def _set_cluster(self, cluster: str | None) -> None:
        self.cluster = cluster
        if cluster is not None:
            for worker in self.workers.values():
                worker.rebase(cluster)

    async def _create_topics(self) -> None:
        partitions = self.settings.topic_partitions
        changelogs = [worker.changelog.table.changelog_topic.get_topic_name() for worker in self.workers.values()]
        topics = dict.fromkeys([DEADLETTER_TOPIC, *(worker.topic for worker in self.workers.values()), *changelogs],
                               partitions)
        for topic, outcome in (await ensure_topics(self.settings, topics, compacted=changelogs)).items():
            log.info("topic %s: %s", topic, outcome)

    async def _answering_cluster(self, waiter: Service) -> str | None:
        """The id of the cluster at the bootstrap address, asked until it answers or ``waiter`` stops."""
        bootstrap = self.settings.bootstrap
        started, logged_at = time.monotonic(), float("-inf")
        attempt = 0
        while True:
            attempt += 1
            try:
                # aiokafka logs every refused connection at ERROR: one line below says it all.
                with _silenced("aiokafka"):
                    cluster = await asyncio.wait_for(cluster_id(self.settings), BROKER_CHECK_TIMEOUT_S)
                self.waiting = None
                return cluster
            except Exception as exc:
                delay = BROKER_RETRY_DELAYS_S[min(attempt, len(BROKER_RETRY_DELAYS_S)) - 1]
                reason = _describe(exc)
                self.waiting = f"waiting for a Kafka broker at {bootstrap}: attempt {attempt} failed ({reason})"
                if time.monotonic() - logged_at >= BROKER_WAIT_LOG_INTERVAL_S:
                    logged_at = time.monotonic()
                    log.warning(
                        "waiting for a Kafka broker at %s: attempt %d failed after %.0fs (%s); next attempt in "
                        "%gs, then every %gs. Check that the broker is running and reachable from this host, and "
                        "CORRIDOR_KAFKA_BOOTSTRAP and its SASL/TLS settings",
                        bootstrap, attempt, logged_at - started, reason, delay, BROKER_RETRY_DELAYS_S[-1],
                    )
                await waiter.sleep(delay)
                if waiter.should_stop:
                    return None

    def _add_family(self, family: str) -> None:
        settings = self.settings
        # Consumed in batches (faust_compat.Consumer), never through faust's streams; no faust
        # acknowledgements either: commits follow confirmed checkpoints.
        topic = self.app.topic(FAMILIES[family].topic, key_serializer="raw", value_serializer="raw",
                               partitions=settings.topic_partitions, acks=False)
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
        self.app.consume_in_batches(topic, worker.handle_batch)

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
        # Before the first checkpoint or dead letter is sent (see track_producer_topics).
        track_producer_topics(self.app, [DEADLETTER_TOPIC, *(worker.changelog.table.changelog_topic.get_topic_name()
                                                              for worker in self.workers.values())])
        for worker in self.workers.values():
            worker.assign({tp.partition for tp in assigned if tp.topic == worker.topic})

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

    def _add_pages(self) -> None:
        async def metrics(view: Any, request: Any) -> Any:
            # Always 200: partitions still restoring are simply not exported yet.
            return view.bytes(generate_latest(self.metrics_registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(view: Any, request: Any) -> Any:
            return view.text("ok\n")  # answering at all shows the event loop is alive

        async def readyz(view: Any, request: Any) -> Any:
            if self.waiting is not None:
                return view.text(f"{self.waiting}\n", status=503)
            if self.restoring():
                return view.text("restoring partition state\n", status=503)
            if not await self.broker_reachable():
                return view.text(f"no Kafka broker answers at {self.settings.bootstrap}\n", status=503)
            return view.text("ready\n")

        self.app.page("/metrics")(metrics)
        self.app.page("/healthz")(healthz)
        self.app.page("/readyz")(readyz)


@contextmanager
def _silenced(logger: str) -> Iterator[None]:
    def drop(record: logging.LogRecord) -> bool:
        return False

    target = logging.getLogger(logger)
    target.addFilter(drop)
    try:
        yield
    finally:
        target.removeFilter(drop)


def _describe(error: BaseException) -> str:
    name, text = type(error).__name__, str(error)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


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
