"""The worker's record path without a broker: order, seeks back, holes and state gaps."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
from faust.types import TP

from streams.core.clock import ManualClock
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.core.sequence import HOLE_CONFIRMATIONS
from streams.settings import Settings
from streams.worker.app import FamilyWorker
from streams.worker.metrics import EventDelays, WorkerHealth

NOW = datetime(2026, 11, 26, 12, 30, 7, tzinfo=UTC).timestamp()
TOPIC = "corridor.datachannel.v1"


def record(offset: int) -> SimpleNamespace:
    event = {
        "event_id": f"e{offset}", "event_time": datetime.fromtimestamp(NOW - 60, UTC).isoformat(),
        "source": "probe", "link_id": "CQ-SG-1", "direction": "cn_to_sg", "interval_seconds": 60, "bytes": 10,
    }
    message = SimpleNamespace(partition=0, offset=offset, timestamp=NOW, value=orjson.dumps(event))
    return SimpleNamespace(message=message)


class StubConsumer:
    def __init__(self, committed: int | None) -> None:
        self._committed_offset = {TP(TOPIC, 0): committed}
        self.seeks: list[int] = []

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.extend(partitions.values())


def worker_with(consumer: StubConsumer) -> FamilyWorker:
    settings = Settings(checkpoint_interval_s=3600)
    worker = FamilyWorker(
        "datachannel", FamilyProcessor("datachannel", settings, Registry.load(None)),
        SimpleNamespace(data={}), SimpleNamespace(send_soon=lambda **_: None), settings, ManualClock(NOW),
        EventDelays(["datachannel"]), WorkerHealth(["datachannel"]), lambda: consumer,
    )
    worker.assigned = {0}
    return worker


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_records_past_a_hole_wait_until_the_missing_ones_are_read_again():
    consumer = StubConsumer(committed=None)
    worker = worker_with(consumer)
    for offset in (0, 1, 2, 7, 8):
        worker.handle(record(offset))
    await settle()
    assert consumer.seeks == [3]
    state = worker.partitions[0].state
    assert state.offset == 2
    for offset in range(3, 9):
        worker.handle(record(offset))
    assert state.offset == 8 and state.counters["events_accepted"][()] == 9
    assert worker.health.state_gaps == {"datachannel": 0}


async def test_a_hole_below_the_committed_offset_is_a_state_gap(caplog):
    consumer = StubConsumer(committed=6)
    worker = worker_with(consumer)
    worker.handle(record(0))
    with caplog.at_level(logging.INFO, logger="corridor.worker"):
        for _ in range(HOLE_CONFIRMATIONS + 1):
            worker.handle(record(9))
            await settle()
    assert consumer.seeks == [1] * HOLE_CONFIRMATIONS
    assert worker.partitions[0].state.offset == 9
    assert worker.health.state_gaps == {"datachannel": 1}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"state gap: offsets 1-5 of {TOPIC} partition 0 were committed, but no checkpoint holds them and the "
        "topic no longer has them; the totals miss those records"
    ]


async def test_a_hole_nobody_committed_is_no_gap(caplog):
    consumer = StubConsumer(committed=None)
    worker = worker_with(consumer)
    with caplog.at_level(logging.INFO, logger="corridor.worker"):
        for _ in range(HOLE_CONFIRMATIONS + 1):
            worker.handle(record(5))  # a topic whose first records retention removed
            await settle()
    assert worker.partitions[0].state.offset == 5
    assert worker.health.state_gaps == {"datachannel": 0}
    assert any("offsets 0-4 of corridor.datachannel.v1 partition 0 hold no records" in r.getMessage()
               for r in caplog.records)


def test_records_of_a_partition_no_longer_assigned_are_left_alone():
    worker = worker_with(StubConsumer(committed=None))
    worker.assigned = set()
    worker.handle(record(0))
    assert worker.partitions == {}


class FlakyChangelog:
    """Refuses the first write, as a broker with no leader for the changelog partition would."""

    def __init__(self) -> None:
        self.writes = 0
        self.stored: list[int] = []

    async def write(self, checkpoint) -> int:
        self.writes += 1
        if self.writes == 1:
            raise TimeoutError("no leader for the changelog partition")
        return self.writes

    def store(self, checkpoint, changelog_offset: int, stand_in) -> None:
        self.stored.append(checkpoint.offset)

    def get(self, key: bytes) -> None:
        return None


async def test_a_refused_checkpoint_is_reported_retried_and_acknowledges_nothing_until_confirmed(caplog):
    consumer = StubConsumer(committed=None)
    acked: list[int] = []
    consumer.ack_checkpointed = lambda message: acked.append(message.offset)
    worker = worker_with(consumer)
    worker.changelog = FlakyChangelog()
    for offset in range(3):
        worker.handle(record(offset))
    owned = worker.partitions[0]
    with caplog.at_level(logging.ERROR, logger="corridor.worker"):
        assert await worker.checkpoint(0, owned) is False
    assert acked == [] and worker.health.checkpoint_failures == {"datachannel": 1}
    assert "checkpoint write failed, retrying at the next interval" in caplog.text
    worker.handle(record(3))
    assert await worker.checkpoint(0, owned) is True
    assert acked == [0, 1, 2, 3] and worker.changelog.stored == [3]
