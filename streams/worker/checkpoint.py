"""The checkpoint protocol: how a partition's state becomes durable and its offset committable.

The steps are those of docs/architecture.md ("Exactly once without Kafka transactions", and
"Stores" for the local store), in the order they must happen:

- **plan** (step 4): the state, expired to now, as changelog records of bounded size
  (``streams/core/checkpoint.py``), with the view the metrics show once it is durable;
- **write** (step 4): the records, in order, to the partition of the family's changelog;
- **confirm** (step 5): wait until the broker confirmed every one of them; at most one
  checkpoint per partition is in flight, and a refused one is reported and its records are due
  again at the next interval;
- **store** (Stores 1-2): only then apply them to the local store, and then record how far
  the changelog is held locally;
- **commit** (steps 5-6): only then let the consumer commit the partition past the records
  the checkpoint holds (``OffsetGate.commit_up_to``);
- **flush** (step 7): on shutdown and before a rebalance gives partitions up, checkpoint every
  partition and wait for the broker.

A crash between any two steps leaves the changelog holding the previous checkpoint or this one,
and the committed offset no further than the changelog's newest head: a restart restores that
head and reads on from the committed offset, skipping what the head holds (step 3).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from streams.core.checkpoint import Checkpoint, plan_checkpoint
from streams.core.clock import Clock
from streams.core.state import StateView
from streams.worker.metrics import WorkerHealth
from streams.worker.partition import OwnedPartition, PartitionPhase
from streams.worker.seams import ChangelogWriter, OffsetGate

log = logging.getLogger("corridor.worker")


@dataclass(frozen=True, slots=True)
class PlannedCheckpoint:
    """A checkpoint and what it makes durable."""

    records: Checkpoint
    #: What the metrics show of the partition once it is confirmed.
    view: StateView
    #: Records applied (or skipped as held) that it takes.
    applied: int
    #: The cluster whose topics its offsets count in.
    cluster: str | None


class Checkpoints:
    """The checkpoints of one family's partitions, and the commits they allow."""

    def __init__(self, family: str, topic: str, changelog: ChangelogWriter, offsets: OffsetGate,
                 health: WorkerHealth, clock: Clock, interval_s: float) -> None:
        self.family = family
        self.topic = topic
        self.changelog = changelog
        self.offsets = offsets
        self.health = health
        self.clock = clock
        self.interval_s = interval_s
        #: Checks, before a write, which cluster the broker is when a connection to it was lost
        #: (and rebases the partitions when it is a new one).
        self.check_cluster: Callable[[], Awaitable[None]] | None = None

    def checkpoint(self, partition: int, owned: OwnedPartition) -> asyncio.Future[bool] | None:
        """Start a checkpoint of everything applied so far, unless one is in flight or none is due.

        Returns the checkpoint in flight (its result: whether it was confirmed), None if none is.
        """
        if owned.phase is not PartitionPhase.DUE:
            return owned.writing
        planned = self.plan(partition, owned)
        writing = asyncio.ensure_future(self._write(owned, planned))
        owned.started(writing, time.monotonic())
        return writing

    def plan(self, partition: int, owned: OwnedPartition) -> PlannedCheckpoint:
        """Step 4, plan: the records that make the state as it is now durable."""
        owned.state.expire(self.clock.now())
        records = plan_checkpoint(partition, owned.state, owned.chunk_counts)
        return PlannedCheckpoint(records, owned.state.view(), owned.due, owned.state.cluster)

    async def _write(self, owned: OwnedPartition, planned: PlannedCheckpoint) -> bool:
        checkpoint = planned.records
        try:
            if self.check_cluster is not None:
                await self.check_cluster()
            # Step 4, write, and step 5, confirm: every record, in order, confirmed by the broker.
            changelog_offset = (await self.changelog.write(checkpoint)
                                if owned.state.cluster == planned.cluster else -1)
        except asyncio.CancelledError:
            owned.refused(planned.applied)  # stopped mid-write: nothing of it may move commits
            raise
        except Exception as exc:
            owned.refused(planned.applied)
            self.health.checkpoint_failures[self.family] += 1
            log.error("checkpoint write failed, retrying at the next interval: %r", exc,
                      extra={"topic": self.topic, "partition": checkpoint.partition, "offset": checkpoint.offset})
            return False
        if owned.state.cluster != planned.cluster:
            # Planned before the broker came back as a new cluster (``FamilyWorker.rebase``): its
            # offsets count in topics that are gone, so it moves nothing; the rebased state is due instead.
            owned.outdated(planned.applied)
            return False
        owned.confirmed()
        if not owned.owned:
            # Revoked meanwhile: its next owner restores from the changelog and reads on from the
            # committed offset, which this one does not move. The revoked partition's series still
            # end with what is now durable, unless it was taken again meanwhile and its series are
            # the new ownership's.
            if owned.phase is PartitionPhase.REVOKED:
                owned.export.confirmed(planned.view)
            return False
        # Stores 1-2, store: the local store never holds what the changelog lacks.
        self.changelog.store(checkpoint, changelog_offset)
        owned.export.confirmed(planned.view)
        owned.state.dedup.mark_durable(checkpoint.dedup_sizes)
        owned.chunk_counts = checkpoint.chunk_counts
        if checkpoint.journeys is not None and owned.state.journeys is not None:
            owned.state.journeys.mark_durable(checkpoint.journeys)
        # Step 5, commit: the next record to read after a restart is the first one the checkpoint lacks.
        self.offsets.commit_up_to(checkpoint.partition, checkpoint.offset + 1)
        log.debug("checkpoint", extra={"topic": self.topic, "partition": checkpoint.partition,
                                       "offset": checkpoint.offset, "records": planned.applied})
        return True

    def due(self, partitions: Iterable[tuple[int, OwnedPartition]]) -> None:
        """Start the checkpoints that are due: an interval after the last one started."""
        now = time.monotonic()
        for partition, owned in list(partitions):
            if now - owned.last_checkpoint >= self.interval_s:
                self.checkpoint(partition, owned)

    async def flush(self, partitions: Iterable[tuple[int, OwnedPartition]], attempts: int = 3) -> None:
        """Step 7, flush: checkpoint every partition and wait until the broker confirmed it all.

        Gives a partition up after ``attempts`` failed writes: its unconfirmed records are
        not committed, and are read again from the committed offset by the partition's next
        owner (or by this worker after a restart).
        """
        for partition, owned in list(partitions):
            failures = 0
            while owned.phase in (PartitionPhase.DUE, PartitionPhase.WRITING, PartitionPhase.WRITING_DUE):
                writing = owned.writing or self.checkpoint(partition, owned)
                if writing is not None and not await writing:
                    failures += 1
                    if failures >= attempts:
                        if owned.phase is PartitionPhase.DUE:
                            owned.abandoned()
                        break
                    await asyncio.sleep(self.interval_s)
