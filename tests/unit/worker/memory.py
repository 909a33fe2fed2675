"""In-memory versions of what the worker needs from Kafka (``streams/worker/seams.py``), and a
family worker built on them: the record path and the checkpoint protocol without faust or a broker.

``MemoryChangelog`` keeps what a broker and a store would keep apart: the changelog itself
(each partition's records, in order, with offsets) and the local store (its values and the
changelog offset it holds up to). A crash loses neither; ``recovered`` rebuilds the store as
faust's recovery does, from the store's persisted offset on (RocksDB) or from nothing (memory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from streams.core.checkpoint import Checkpoint
from streams.core.clock import ManualClock
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.settings import Settings
from streams.worker.family import FamilyWorker
from streams.worker.metrics import EventDelays, WorkerHealth

NOW = datetime(2026, 11, 26, 12, 30, 7, tzinfo=UTC).timestamp()
FAMILY = "datachannel"
TOPIC = "corridor.datachannel.v1"


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """A fetched record, as aiokafka hands it over (timestamp in milliseconds)."""

    offset: int
    timestamp: int
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


def record(offset: int, event_id: str | None = None) -> MemoryRecord:
    """A data-channel sample at ``offset`` of partition 0, named after its offset unless ``event_id`` is given."""
    event = {
        "event_id": event_id or f"e{offset}", "event_time": datetime.fromtimestamp(NOW - 60, UTC).isoformat(),
        "source": "probe", "link_id": "CQ-SG-1", "direction": "cn_to_sg", "interval_seconds": 60, "bytes": 10,
    }
    return MemoryRecord(offset, int(NOW * 1000), orjson.dumps(event))


def records(*offsets: int) -> list[MemoryRecord]:
    return [record(offset) for offset in offsets]


class MemoryOffsets:
    """The consumer's offsets of one topic."""

    def __init__(self, committed: int | None = None) -> None:
        #: The group's committed offset per partition, as faust last read or wrote it.
        self.committed_offsets: dict[int, int | None] = {0: committed}
        #: Where each seek went, in order.
        self.seeks: list[int] = []
        #: What each confirmed checkpoint let commits move to (-1 marks where it was dropped).
        self.committable: list[int] = []

    def committed(self, partition: int) -> int | None:
        return self.committed_offsets.get(partition)

    def commit_up_to(self, partition: int, offset: int) -> None:
        assert partition == 0
        self.committable.append(offset)

    def forget_commits(self, partition: int) -> None:
        self.committed_offsets[partition] = None
        self.committable.append(-1)

    async def seek(self, partition: int, offset: int) -> None:
        self.seeks.append(offset)


@dataclass(slots=True)
class MemoryChangelog:
    """A changelog topic and the local store behind it, as the broker and faust's table keep them."""

    #: Each changelog partition's records in order; a record's offset is its index.
    log: dict[int, list[tuple[bytes, bytes | None]]] = field(default_factory=dict)
    #: The local store, and per partition the changelog offset it holds up to.
    data: dict[bytes, bytes] = field(default_factory=dict)
    persisted: dict[int, int] = field(default_factory=dict)
    writes: int = 0

    async def write(self, checkpoint: Checkpoint) -> int:
        self.writes += 1
        log = self.log.setdefault(checkpoint.partition, [])
        log.extend(checkpoint.records)
        return len(log) - 1

    def store(self, checkpoint: Checkpoint, changelog_offset: int) -> None:
        for key, value in checkpoint.records:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        self.persisted[checkpoint.partition] = changelog_offset

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def recovered(self, *, local: bool) -> MemoryChangelog:
        """The store a restarted worker reads: the local one (RocksDB) with the changelog read on from its
        persisted offset, or (memory) the whole changelog read into an empty one."""
        again = MemoryChangelog({p: list(log) for p, log in self.log.items()})
        if local:
            again.data, again.persisted = dict(self.data), dict(self.persisted)
        for partition, log in again.log.items():
            for key, value in log[again.persisted.get(partition, -1) + 1:]:
                if value is None:
                    again.data.pop(key, None)
                else:
                    again.data[key] = value
            if log:
                again.persisted[partition] = len(log) - 1
        return again


class FlakyChangelog(MemoryChangelog):
    """Refuses the first write, as a broker with no leader for the changelog partition would."""

    async def write(self, checkpoint: Checkpoint) -> int:
        if self.writes == 0:
            self.writes += 1
            raise TimeoutError("no leader for the changelog partition")
        return await super().write(checkpoint)


class HeldChangelog(MemoryChangelog):
    """Confirms nothing until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def write(self, checkpoint: Checkpoint) -> int:
        await self.release.wait()
        return await super().write(checkpoint)


class MemoryDeadLetters:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []

    def send(self, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
        self.sent.append((key, value, list(headers)))


def family_worker(changelog: MemoryChangelog | None = None, offsets: MemoryOffsets | None = None,
                  dead_letters: MemoryDeadLetters | None = None, *,
                  processor: Callable[[Settings], FamilyProcessor] | None = None,
                  worker_id: str | None = None) -> FamilyWorker:
    """A data-channel worker given partition 0, on in-memory seams, checkpointing only when asked; named
    ``worker_id`` (``CORRIDOR_WORKER_ID``) if given."""
    settings = Settings(checkpoint_interval_s=3600, worker_id=worker_id)
    worker = FamilyWorker(
        FAMILY, (processor or default_processor)(settings), changelog or MemoryChangelog(),
        offsets or MemoryOffsets(), dead_letters or MemoryDeadLetters(), settings, ManualClock(NOW),
        EventDelays([FAMILY]), WorkerHealth([FAMILY]),
    )
    worker.assigned = {0}
    return worker


def default_processor(settings: Settings) -> FamilyProcessor:
    return FamilyProcessor(FAMILY, settings, Registry.load(None))


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)
