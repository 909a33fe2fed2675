"""The checkpoint protocol (streams/worker/checkpoint.py) across crashes, without faust or a broker.

A worker on in-memory seams (tests/unit/worker/memory.py) applies a partition's records and
checkpoints them; the process dies between two steps of a checkpoint (plan, write, confirm,
store, commit). What survives is what a broker and a disk keep: the changelog, the group's
committed offset (any commit the worker asked for may or may not have reached the broker), and
on RocksDB the local store. The next worker restores from that and reads on from the committed
offset. Whatever the crashes, the totals must equal those of one worker that never crashed:
nothing lost, nothing counted twice.

The hypothesis test prints a failing case (and ``@reproduce_failure`` to replay it exactly).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.checkpoint import CHUNK_ENTRIES, Checkpoint
from streams.core.state import PartitionState
from streams.worker.family import FamilyWorker
from streams.worker.partition import PartitionPhase
from tests.unit.worker.memory import (
    MemoryChangelog,
    MemoryOffsets,
    MemoryRecord,
    family_worker,
    record,
)


class Crash(BaseException):
    """The worker process dies here: nothing after this point happens (not an error it could handle)."""


class Step(Enum):
    """Where in a checkpoint the process dies, in the protocol's order."""

    PLANNED = "after plan, before write"
    PART_WRITTEN = "during write: the first records in the changelog, not the head"
    WRITTEN = "after write, before the broker's confirmation reached the worker"
    CONFIRMED = "after confirm, before store"
    PART_STORED = "during store: records in the local store, its persisted offset not yet"
    STORED = "after store, before commit"
    COMMITTED = "after commit"


@dataclass  # no slots: a slotted subclass is a new class, which breaks super() in its methods
class CrashingChangelog(MemoryChangelog):
    crash_at: Step | None = None

    async def write(self, checkpoint: Checkpoint) -> int:
        if self.crash_at is Step.PLANNED:
            raise Crash
        if self.crash_at is Step.PART_WRITTEN:
            self.log.setdefault(checkpoint.partition, []).extend(checkpoint.records[:-1])
            raise Crash
        offset = await super().write(checkpoint)
        if self.crash_at is Step.WRITTEN:
            raise Crash
        return offset

    def store(self, checkpoint: Checkpoint, changelog_offset: int) -> None:
        if self.crash_at is Step.CONFIRMED:
            raise Crash
        if self.crash_at is Step.PART_STORED:
            persisted = dict(self.persisted)
            super().store(checkpoint, changelog_offset)
            self.persisted = persisted
            raise Crash
        super().store(checkpoint, changelog_offset)


class CrashingOffsets(MemoryOffsets):
    def __init__(self, committed: int | None) -> None:
        super().__init__(committed)
        self.crash_at: Step | None = None

    def commit_up_to(self, partition: int, offset: int) -> None:
        if self.crash_at is Step.STORED:
            raise Crash
        super().commit_up_to(partition, offset)
        if self.crash_at is Step.COMMITTED:
            raise Crash


@dataclass(frozen=True, slots=True)
class Life:
    """One run of a worker: the records it is given per fetch, and how it ends."""

    batches: Sequence[int]
    #: None: it runs to the end and flushes. Else it dies at ``step`` of its checkpoint number ``checkpoint``.
    crash: tuple[int, Step] | None = None
    #: Whether the last commit it asked for reached the broker before it died.
    last_commit_landed: bool = True


@dataclass(slots=True)
class Durable:
    """What survives the process: the changelog and local store, and the group's committed offset."""

    changelog: MemoryChangelog = field(default_factory=MemoryChangelog)
    committed: int | None = None
    #: Each restart: (committed offset, offset of the restored state).
    restarts: list[tuple[int | None, int]] = field(default_factory=list)


def stream(size: int, event_ids: Sequence[int] | None = None) -> list[MemoryRecord]:
    """A partition's records; ``event_ids`` repeats some (a producer resending), a negative id is unparseable."""
    ids = event_ids if event_ids is not None else range(size)
    return [replace(record(offset, f"e{event}"), value=b"not json") if event < 0 else record(offset, f"e{event}")
            for offset, event in enumerate(ids)]


def totals(state: PartitionState) -> tuple[object, int]:
    """Everything a partition's metrics and its dedup decisions come from (its head record, whose key
    order follows the order labels were first seen in, read back as data), less the ``owner`` label it is
    shown under: every process draws its own."""
    head = orjson.loads(state.head_bytes(CHUNK_ENTRIES))
    del head["series"]
    return head, len(state.dedup)


def reference(records: Sequence[MemoryRecord]) -> tuple[object, int]:
    worker = family_worker()
    worker.handle_batch(0, records)
    return totals(worker.partitions[0].state)


async def live(durable: Durable, records: Sequence[MemoryRecord], life: Life, *, local_store: bool) -> None:
    recovered = durable.changelog.recovered(local=local_store)
    changelog = CrashingChangelog(recovered.log, recovered.data, recovered.persisted)
    offsets = CrashingOffsets(durable.committed)
    worker = family_worker(changelog, offsets)
    owned = worker.load(0)
    durable.restarts.append((durable.committed, owned.state.offset))
    # Step 5's promise, which a restart stands on: never committed past what the changelog holds.
    assert durable.committed is None or durable.committed <= owned.state.offset + 1
    position, checkpoints = durable.committed or 0, 0
    try:
        for size in life.batches:
            fetched = records[position:position + size]
            if not fetched:
                break
            worker.handle_batch(0, fetched)
            position += len(fetched)
            checkpoints += 1
            if life.crash is not None and life.crash[0] == checkpoints:
                changelog.crash_at = offsets.crash_at = life.crash[1]
            await checkpoint(worker)
        if life.crash is None:
            worker.handle_batch(0, records[position:])
            await worker.flush()
            assert owned.phase is PartitionPhase.CLEAN
    except Crash:
        pass
    else:
        assert life.crash is None or checkpoints < life.crash[0], "armed but never reached"
    assert offsets.seeks == [], "a restored partition is never asked for records before its committed offset"
    durable.changelog = changelog
    asked = offsets.committable
    if asked:
        durable.committed = asked[-1] if life.last_commit_landed else asked[-2] if len(asked) > 1 else durable.committed


async def checkpoint(worker: FamilyWorker) -> None:
    writing = worker.checkpoint(0)
    if writing is not None:
        await writing


async def run(records: Sequence[MemoryRecord], lives: Sequence[Life], *, local_store: bool) -> Durable:
    durable = Durable()
    for life in lives:
        await live(durable, records, life, local_store=local_store)
    return durable


def restored(durable: Durable, *, local_store: bool) -> PartitionState:
    return family_worker(durable.changelog.recovered(local=local_store)).load(0).state


@pytest.mark.parametrize("local_store", [False, True], ids=["memory", "rocksdb"])
@pytest.mark.parametrize("landed", [True, False], ids=["commit-landed", "commit-lost"])
@pytest.mark.parametrize("step", list(Step), ids=[step.name.lower() for step in Step])
async def test_a_crash_between_any_two_steps_restores_exactly(step: Step, landed: bool, local_store: bool):
    records = stream(14, [0, 1, 2, 3, 2, 4, -5, 6, 7, 0, 8, 9, 10, 11])  # resends and an unparseable one
    lives = [Life([3, 3, 3], crash=(2, step), last_commit_landed=landed), Life([2, 2, 2, 2, 2, 2, 2])]
    durable = await run(records, lives, local_store=local_store)
    ((_, first), (committed, second)) = durable.restarts
    assert first == -1
    assert committed is None or committed <= second + 1
    assert totals(restored(durable, local_store=local_store)) == reference(records)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[MemoryRecord], list[Life]]:
    size = draw(st.integers(1, 30))
    event_ids = draw(st.lists(st.integers(-2, size), min_size=size, max_size=size))
    lives = []
    for _ in range(draw(st.integers(0, 3))):
        batches = draw(st.lists(st.integers(1, 6), min_size=1, max_size=6))
        crash = (draw(st.integers(1, len(batches))), draw(st.sampled_from(Step)))
        lives.append(Life(batches, crash, draw(st.booleans())))
    lives.append(Life(draw(st.lists(st.integers(1, 6), max_size=4))))
    return stream(size, event_ids), lives


@settings(max_examples=150, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), local_store=st.booleans())
def test_any_sequence_of_crashes_restores_exactly(scenario: tuple[list[MemoryRecord], list[Life]],
                                                  local_store: bool):
    records, lives = scenario
    durable = asyncio.run(run(records, lives, local_store=local_store))
    assert totals(restored(durable, local_store=local_store)) == reference(records)


def test_the_reference_counts_resent_events_once_and_unparseable_records_as_rejected():
    state = family_worker()
    state.handle_batch(0, stream(4, [0, 1, 0, -2]))
    counters = state.partitions[0].state.counters
    assert counters["events_accepted"][()] == 2 and counters["events_duplicate"][()] == 1
    assert sum(counters["events_rejected"].values()) == 1

