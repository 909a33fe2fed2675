"""One family's partitions: which the worker owns, their records applied in offset order, and
what the metrics show of them.

Records reach :meth:`FamilyWorker.handle_batch` one fetch of one partition at a time. Their
order is kept by ``streams/core/sequence.py`` (step 3 of docs/architecture.md), the state
becomes durable through ``streams/worker/checkpoint.py`` (steps 4-7), and everything the
worker needs from Kafka comes through the protocols of ``streams/worker/seams.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from schemas.families import FAMILIES
from streams.core.checkpoint import CheckpointUnreadable, chunks_for, read_checkpoint
from streams.core.clock import Clock
from streams.core.processor import DeadLetter, FamilyProcessor, RecordOutcome
from streams.core.sequence import OffsetSequence
from streams.core.state import PartitionState
from streams.core.wire import Headers
from streams.settings import Settings
from streams.worker.checkpoint import Checkpoints
from streams.worker.deadletter import dead_letter_headers, dead_letter_value
from streams.worker.metrics import EventDelays, ExportedPartition, WorkerHealth
from streams.worker.partition import (
    ExportPhase,
    OwnedPartition,
    PartitionExport,
    continues,
    next_owner,
    unwritten_owner,
)
from streams.worker.seams import ChangelogWriter, DeadLetterSink, OffsetGate, Record

log = logging.getLogger("corridor.worker")


class FamilyWorker:
    """The state of one family's partitions and the checkpoints that make it durable."""

    def __init__(self, family: str, processor: FamilyProcessor, changelog: ChangelogWriter, offsets: OffsetGate,
                 dead_letters: DeadLetterSink, settings: Settings, clock: Clock, delays: EventDelays,
                 health: WorkerHealth) -> None:
        self.family = family
        self.topic = FAMILIES[family].topic
        self.processor = processor
        self.changelog = changelog
        self.offsets = offsets
        self.dead_letters = dead_letters
        self.checkpoints = Checkpoints(family, self.topic, changelog, offsets, health, clock,
                                       settings.checkpoint_interval_s)
        #: How long a moved partition's first and last views are held (see ``PartitionExport``).
        self.hold_s = 2 * settings.scrape_interval_s
        #: This worker's stable name in its ``owner`` labels (``CORRIDOR_WORKER_ID``), if it has one.
        self.worker_id = settings.worker_id
        self.clock = clock
        self.delays = delays
        self.health = health
        self.partitions: dict[int, OwnedPartition] = {}
        #: Partitions of the family topic the consumer group gave this worker.
        self.assigned: set[int] = set()
        #: Revoked partitions by (partition, owner): shown until their series end, and the latest
        #: of each kept in case the group gives it back.
        self.released: dict[tuple[int, str], OwnedPartition] = {}
        #: The cluster the broker is (see ``rebase``).
        self.cluster: str | None = None

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
        return {partition: owned.age(now) for partition, owned in self.partitions.items()}

    def checkpoint(self, partition: int) -> asyncio.Future[bool] | None:
        """Start a checkpoint of the partition now (see ``Checkpoints.checkpoint``)."""
        return self.checkpoints.checkpoint(partition, self.partitions[partition])

    def checkpoint_due(self) -> None:
        self.checkpoints.due(self.partitions.items())

    async def flush(self) -> None:
        await self.checkpoints.flush(self.partitions.items())

    def load(self, partition: int) -> OwnedPartition:
        """Take the partition, its state from its last checkpoint (empty when it has none)."""
        checkpointed = True
        try:
            state = read_checkpoint(partition, self.changelog.get, self.processor.restore_state)
            checkpointed = state is not None
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
            previous.handed_on()
            export = previous.export
        else:
            # Series of an earlier ownership still end on their own (see ``forget``).
            series = state.series if checkpointed else unwritten_owner(self.worker_id)
            export = PartitionExport(self._owner(partition, series), state.view(),
                                     hold_until=time.monotonic() + self.hold_s, hold_s=self.hold_s)
        state.series = export.owner
        owned = self.partitions[partition] = OwnedPartition(
            state, export, last_checkpoint=time.monotonic(),
            chunk_counts={b: chunks_for(n) for b, n in sizes.items()},
        )
        self._follow_cluster(partition, owned)
        return owned

    def _owner(self, partition: int, series: str | None) -> str:
        """The ``owner`` label of a new period of ownership: ``series``, where this worker may go on with it
        (``continues``) and no earlier period of this process still shows it, else a new value."""
        if series is not None and continues(series, self.worker_id):
            ended = self.released.get((partition, series))
            if ended is None or ended.export.phase is ExportPhase.GONE:
                self.released.pop((partition, series), None)
                return series
        return next_owner(self.worker_id)

    def forget(self, partitions: set[int]) -> None:
        """Give partitions up (revoked); the next owner restores them from the changelog.

        Each one's final view (its last checkpoint) is still shown for two scrape intervals,
        after its restored view finished its own hold: its series ends where the next owner's
        begins, so what was applied after the previous scrape is not lost to ``increase()``.
        """
        for partition in partitions:
            owned = self.partitions.pop(partition, None)
            if owned is not None:
                owned.revoked(time.monotonic())
                self.released[partition, owned.export.owner] = owned

    def assign(self, partitions: set[int]) -> None:
        """The group's new assignment: revoked partitions are let go once their series ended, but for
        the latest ownership of each partition it gives back."""
        self.assigned = partitions
        latest = {p: owned for (p, _), owned in self.released.items()}
        self.released = {(p, owner): owned for (p, owner), owned in self.released.items()
                         if owned.export.phase is not ExportPhase.GONE or (p in partitions and latest[p] is owned)}

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
        if state.journeys is not None:
            state.journeys.written_nowhere()
        owned.sequence = OffsetSequence()
        owned.chunk_counts = {}
        owned.rebased(time.monotonic())
        self.offsets.forget_commits(partition)
        self.checkpoints.checkpoint(partition, owned)
        # The consumer would go on from its position in the old topic, past records of the new one.
        asyncio.ensure_future(self._seek_to_start(partition))

    async def _seek_to_start(self, partition: int) -> None:
        try:
            await self.offsets.seek(partition, 0)
        except Exception as exc:
            # Given up meanwhile: its next owner starts from the group's committed offsets, none yet.
            log.warning("seek to the start of %s partition %d failed: %r", self.topic, partition, exc)

    def handle_batch(self, partition: int, records: Sequence[Record]) -> None:
        """Apply one fetch of a partition's records, in offset order, and dead-letter what they rejected."""
        if partition not in self.assigned:
            return  # fetched before its partition was revoked: its next owner reads it
        owned = self.partitions.get(partition) or self.load(partition)
        sequence = owned.sequence
        held = owned.state.offset  # as it will be after the records taken so far
        run: list[tuple[int, float, bytes]] = []
        headers: dict[int, Headers] = {}  # only of records that carry any: plain records pay nothing
        last_timestamp_ms = -1  # of the last record taken; -1: none, or it carries no timestamp
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
            last_timestamp_ms = record.timestamp
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
        owned.applied(len(run), time.monotonic())
        if last_timestamp_ms >= 0:
            owned.last_record_time = last_timestamp_ms / 1000.0
        if time.monotonic() - owned.last_checkpoint >= self.checkpoints.interval_s:
            self.checkpoints.checkpoint(partition, owned)

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
            self.dead_letters.send(self.topic.encode(), value, dead_letter_headers(self.topic, letter) + truncation)

    def _seek_back(self, partition: int, owned: OwnedPartition, offset: int, delivered: int) -> None:
        log.warning("offsets %d-%d of %s partition %d were not delivered before offset %d: reading them again",
                    offset, delivered - 1, self.topic, partition, delivered,
                    extra={"topic": self.topic, "partition": partition, "offset": offset})

        async def seek() -> None:
            try:
                await self.offsets.seek(partition, offset)
            finally:
                owned.sequence.sought()

        asyncio.ensure_future(seek())

    def _passed_hole(self, partition: int, first: int, last: int) -> None:
        """Offsets that hold no records: harmless, unless the group had committed them (a state gap)."""
        committed = self.offsets.committed(partition)
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
