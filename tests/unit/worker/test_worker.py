"""The worker's record path without a broker: order, seeks back, holes and state gaps."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from streams.core.clock import ManualClock
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.core.sequence import HOLE_CONFIRMATIONS
from streams.settings import Settings
from streams.worker.app import ExportPhase, FamilyWorker
from streams.worker.deadletter import SOURCE_OFFSET
from streams.worker.metrics import EventDelays, WorkerHealth

NOW = datetime(2026, 11, 26, 12, 30, 7, tzinfo=UTC).timestamp()
TOPIC = "corridor.datachannel.v1"


def record(offset: int) -> SimpleNamespace:
    """A fetched record of partition 0, as aiokafka hands it over (timestamp in milliseconds)."""
    event = {
        "event_id": f"e{offset}", "event_time": datetime.fromtimestamp(NOW - 60, UTC).isoformat(),
        "source": "probe", "link_id": "CQ-SG-1", "direction": "cn_to_sg", "interval_seconds": 60, "bytes": 10,
    }
    return SimpleNamespace(offset=offset, timestamp=int(NOW * 1000), value=orjson.dumps(event), headers=())


def records(*offsets: int) -> list[SimpleNamespace]:
    return [record(offset) for offset in offsets]


class StubConsumer:
    def __init__(self, committed: int | None) -> None:
        self._committed_offset = {TP(TOPIC, 0): committed}
        self.seeks: list[int] = []
        #: What each confirmed checkpoint let commits move to.
        self.committable: list[int] = []

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.extend(partitions.values())

    def commit_up_to(self, tp: TP, offset: int) -> None:
        assert tp == TP(TOPIC, 0)
        self.committable.append(offset)

    def forget_commits(self, tp: TP) -> None:
        self._committed_offset[tp] = None
        self.committable.append(-1)  # marks where what could be committed was dropped


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
    worker.handle_batch(0, records(0, 1, 2, 7, 8))
    await settle()
    assert consumer.seeks == [3]
    state = worker.partitions[0].state
    assert state.offset == 2
    worker.handle_batch(0, records(*range(3, 9)))
    assert state.offset == 8 and state.counters["events_accepted"][()] == 9
    assert worker.health.state_gaps == {"datachannel": 0}


async def test_a_hole_below_the_committed_offset_is_a_state_gap(caplog):
    consumer = StubConsumer(committed=6)
    worker = worker_with(consumer)
    worker.handle_batch(0, records(0))
    with caplog.at_level(logging.INFO, logger="corridor.worker"):
        for _ in range(HOLE_CONFIRMATIONS + 1):
            worker.handle_batch(0, records(9, 10))
            await settle()
    assert consumer.seeks == [1] * HOLE_CONFIRMATIONS
    assert worker.partitions[0].state.offset == 10
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
            worker.handle_batch(0, records(5))  # a topic whose first records retention removed
            await settle()
    assert worker.partitions[0].state.offset == 5
    assert worker.health.state_gaps == {"datachannel": 0}
    assert any("offsets 0-4 of corridor.datachannel.v1 partition 0 hold no records" in r.getMessage()
               for r in caplog.records)


def test_records_of_a_partition_no_longer_assigned_are_left_alone():
    worker = worker_with(StubConsumer(committed=None))
    worker.assigned = set()
    worker.handle_batch(0, records(0))
    assert worker.partitions == {}


async def test_a_record_that_breaks_the_processor_is_dead_lettered_and_the_rest_of_its_fetch_applied(caplog):
    worker = worker_with(StubConsumer(committed=None))
    letters: list[dict] = []
    worker.dead_letters = SimpleNamespace(send_soon=lambda **letter: letters.append(letter))
    processor = worker.processor
    process, process_many = processor.process, processor.process_many

    def breaks_on_offset_1(state, partition, offset, timestamp, raw, headers=None):
        if offset == 1:
            raise RuntimeError("a bug")
        return process(state, partition, offset, timestamp, raw, headers)

    def breaks_on_batches(state, partition, batch, headers=None):
        batch = list(batch)
        if len(batch) > 1:
            raise RuntimeError("a bug somewhere in the batch")  # before touching the state
        return process_many(state, partition, batch, headers)

    processor.process, processor.process_many = breaks_on_offset_1, breaks_on_batches
    with caplog.at_level(logging.ERROR, logger="corridor.worker"):
        worker.handle_batch(0, records(0, 1, 2))
    owned = worker.partitions[0]
    assert owned.state.offset == 2 and owned.pending == 3
    assert owned.state.counters["events_accepted"][()] == 2
    assert owned.state.counters["events_rejected"] == {("processing_error",): 1}
    (letter,) = letters
    assert dict(letter["headers"])[SOURCE_OFFSET] == b"1"
    assert [r.getMessage() for r in caplog.records] == ["failed to process record"]


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

    def store(self, checkpoint, changelog_offset: int) -> None:
        self.stored.append(checkpoint.offset)

    def get(self, key: bytes) -> None:
        return None


async def test_a_refused_checkpoint_is_reported_retried_and_lets_nothing_be_committed_until_confirmed(caplog):
    consumer = StubConsumer(committed=None)
    worker = worker_with(consumer)
    worker.changelog = FlakyChangelog()
    worker.handle_batch(0, records(0, 1, 2))
    owned = worker.partitions[0]
    with caplog.at_level(logging.ERROR, logger="corridor.worker"):
        assert await worker.checkpoint(0, owned) is False
    assert consumer.committable == [] and worker.health.checkpoint_failures == {"datachannel": 1}
    assert "checkpoint write failed, retrying at the next interval" in caplog.text
    assert owned.pending == 3, "the records of the refused checkpoint wait for the next one"
    worker.handle_batch(0, records(3))
    assert await worker.checkpoint(0, owned) is True
    assert consumer.committable == [4] and worker.changelog.stored == [3] and owned.pending == 0


class ConfirmingChangelog(FlakyChangelog):
    """Confirms every write."""

    async def write(self, checkpoint) -> int:
        self.writes += 1
        return self.writes


async def test_metrics_show_the_restored_state_until_a_scrape_then_only_confirmed_checkpoints():
    consumer = StubConsumer(committed=None)
    worker = worker_with(consumer)
    worker.changelog = ConfirmingChangelog()
    worker.handle_batch(0, records(0, 1, 2))
    owned = worker.partitions[0]
    (exported,) = worker.exported(time.monotonic())
    assert exported.view.offset == -1 and exported.owner == owned.export.owner  # the restored (empty) state
    assert await worker.checkpoint(0, owned) is True
    assert worker.exported(owned.export.hold_until - 0.1)[0].view.offset == -1, "held for two scrape intervals"
    assert worker.exported(owned.export.hold_until)[0].view.offset == 2
    worker.handle_batch(0, records(3, 4))
    assert worker.exported(time.monotonic())[0].view.offset == 2, "applied but not yet durable: not exported"
    assert await worker.checkpoint(0, owned) is True
    view = worker.exported(time.monotonic())[0].view
    assert view.offset == 4 and view.counters["events_accepted"][()] == 5
    worker.handle_batch(0, records(5))
    assert view.counters["events_accepted"][()] == 5, "an exported view is a copy"


async def test_a_refused_checkpoint_exports_nothing_new_and_its_age_keeps_growing():
    consumer = StubConsumer(committed=None)
    worker = worker_with(consumer)
    worker.changelog = FlakyChangelog()
    worker.handle_batch(0, records(0))
    owned = worker.partitions[0]
    worker.exported(owned.export.hold_until)
    started = owned.pending_since
    assert started is not None
    assert await worker.checkpoint(0, owned) is False
    assert worker.exported(time.monotonic())[0].view.offset == -1
    # (started + 7.5) - started is 7.5 only up to the rounding of the sum: compared within it.
    assert worker.checkpoint_ages(started + 7.5) == {0: pytest.approx(7.5, abs=1e-9)}
    assert await worker.checkpoint(0, owned) is True
    assert worker.exported(time.monotonic())[0].view.offset == 0 and worker.checkpoint_ages(started + 9) == {0: 0.0}


class MemoryChangelog:
    """A changelog several workers share: confirmed records land in one store, as faust's table does."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.writes = 0

    async def write(self, checkpoint) -> int:
        self.writes += 1
        return self.writes

    def store(self, checkpoint, changelog_offset: int) -> None:
        for key, value in checkpoint.records:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


async def test_a_partition_given_back_unchanged_keeps_its_series_and_one_advanced_elsewhere_starts_new_ones():
    changelog = MemoryChangelog()
    consumer = StubConsumer(committed=None)
    ours, theirs = worker_with(consumer), worker_with(consumer)
    ours.changelog = theirs.changelog = changelog
    ours.handle_batch(0, records(0))
    assert await ours.checkpoint(0, ours.partitions[0]) is True
    ours.exported(ours.partitions[0].export.hold_until)
    first = ours.partitions[0].export.owner

    ours.forget({0})  # an eager rebalance revokes everything, then gives the partition back
    ours.assign({0})
    ours.handle_batch(0, records(1))
    assert ours.partitions[0].export.owner == first and ours.partitions[0].export.phase is ExportPhase.LIVE
    assert await ours.checkpoint(0, ours.partitions[0]) is True

    ours.forget({0})
    ours.assign(set())
    (shown,) = ours.exported(time.monotonic())  # revoked: its final view is held a while
    assert (shown.partition, shown.owner, shown.view.offset) == (0, first, 1)
    assert ours.exported(ours.released[0, first].export.hold_until) == []
    ours.assign(set())
    assert ours.released == {}
    theirs.handle_batch(0, records(2))  # another worker owned it meanwhile and moved it on
    assert await theirs.checkpoint(0, theirs.partitions[0]) is True
    theirs.forget({0})
    ours.assign({0})
    ours.handle_batch(0, records(3))
    owned = ours.partitions[0]
    ((_, theirs_owner),) = theirs.released
    assert owned.export.owner not in (first, theirs_owner)
    assert owned.export.phase is ExportPhase.STARTING
    assert owned.export.shown.offset == 2 and owned.state.offset == 3


def shown(worker: FamilyWorker, now: float) -> list[tuple[int, bool]]:
    """(offset of the view, revoked) of each series the metrics show at ``now``."""
    return [(part.view.offset, part.revoked) for part in worker.exported(now)]


async def test_a_partition_revoked_while_its_restored_view_is_held_shows_it_to_the_end_then_its_final_view():
    worker = worker_with(StubConsumer(committed=None))
    worker.changelog = ConfirmingChangelog()
    worker.handle_batch(0, records(0, 1, 2))  # taken with nothing restored: offset -1
    owned = worker.partitions[0]
    assert await worker.checkpoint(0, owned) is True
    restored_until = owned.export.hold_until
    worker.forget({0})  # the crashed member's session expired: a second rebalance moves it on
    worker.assign(set())
    assert shown(worker, restored_until - 0.1) == [(-1, True)], "every scraper saw the series begin"
    assert shown(worker, restored_until) == [(2, True)]
    assert shown(worker, restored_until + worker.hold_s - 0.1) == [(2, True)], "and end"
    assert shown(worker, restored_until + worker.hold_s) == []


async def test_a_checkpoint_confirmed_after_revocation_shows_once_the_restored_view_was_held():
    worker = worker_with(StubConsumer(committed=None))
    release = asyncio.Event()

    class SlowChangelog(ConfirmingChangelog):
        async def write(self, checkpoint) -> int:
            await release.wait()
            return await super().write(checkpoint)

    worker.changelog = SlowChangelog()
    worker.handle_batch(0, records(0, 1))
    owned = worker.partitions[0]
    writing = worker.checkpoint(0, owned)
    await settle()
    worker.forget({0})
    worker.assign(set())
    release.set()
    assert writing is not None and await writing is False, "revoked: it lets nothing be committed"
    restored_until = owned.export.hold_until
    assert shown(worker, restored_until - 0.1) == [(-1, True)]
    assert shown(worker, restored_until) == [(1, True)], "what is durable ends the series"
    assert shown(worker, restored_until + worker.hold_s - 0.1) == [(1, True)]
    assert shown(worker, restored_until + worker.hold_s) == []


async def test_a_partition_given_back_while_its_restored_view_is_held_goes_on_holding_it():
    changelog = MemoryChangelog()
    worker = worker_with(StubConsumer(committed=None))
    worker.changelog = changelog
    worker.handle_batch(0, records(0))
    owned = worker.partitions[0]
    assert await worker.checkpoint(0, owned) is True
    worker.forget({0})  # an eager rebalance, giving it back unchanged
    worker.assign({0})
    worker.handle_batch(0, records(1))
    again = worker.partitions[0]
    assert again.export is owned.export and again.export.phase is ExportPhase.STARTING
    assert await worker.checkpoint(0, again) is True
    assert shown(worker, owned.export.hold_until - 0.1) == [(-1, False)]
    assert shown(worker, owned.export.hold_until) == [(1, False)]


async def test_a_partition_taken_back_after_another_worker_moved_it_on_still_ends_its_earlier_series():
    changelog = MemoryChangelog()
    consumer = StubConsumer(committed=None)
    ours, theirs = worker_with(consumer), worker_with(consumer)
    ours.changelog = theirs.changelog = changelog
    ours.handle_batch(0, records(0))
    ours.exported(ours.partitions[0].export.hold_until)
    assert await ours.checkpoint(0, ours.partitions[0]) is True
    ours.forget({0})  # a first rebalance moves it on ...
    ours.assign(set())
    ((_, first),) = ours.released
    theirs.handle_batch(0, records(1))
    assert await theirs.checkpoint(0, theirs.partitions[0]) is True
    theirs.forget({0})  # ... and a second one, before a scrape, gives it back
    ours.assign({0})
    ours.handle_batch(0, records(2))
    now = time.monotonic()
    assert [(part.owner == first, part.view.offset, part.revoked) for part in ours.exported(now)] == [
        (False, 1, False), (True, 0, True)
    ], "the new series shows its restored view, the earlier one still its final view"
    assert shown(ours, ours.released[0, first].export.hold_until) == [(1, False)]


def renamed(fetched: list[SimpleNamespace], prefix: str) -> list[SimpleNamespace]:
    """The records with event ids of their own (``record`` names each event after its offset)."""
    return [SimpleNamespace(**{**vars(r), "value": r.value.replace(f'"e{r.offset}"'.encode(),
                                                                   f'"{prefix}{r.offset}"'.encode())})
            for r in fetched]


async def test_a_broker_back_as_a_new_cluster_rebases_partitions_keeping_their_totals():
    changelog = MemoryChangelog()
    consumer = StubConsumer(committed=None)
    worker = worker_with(consumer)
    worker.changelog = changelog
    worker.rebase("cluster-a")
    worker.handle_batch(0, records(0, 1, 2, 3, 4))
    owned = worker.partitions[0]
    assert await worker.checkpoint(0, owned) is True and consumer.committable == [5]

    worker.rebase("cluster-b")  # the broker came back empty: its topic starts again at offset 0
    await settle()
    state = owned.state
    assert (state.offset, state.cluster) == (-1, "cluster-b") and consumer.seeks == [0]
    # Offsets of the old topic are dropped, and the rebased state is written to the new changelog at once.
    assert consumer.committable == [5, -1, 0]
    # Offsets 0-2 of the new topic: one event re-sent by its producer, two new ones.
    worker.handle_batch(0, [*records(0), *renamed(records(1, 2), "new-")])
    assert state.offset == 2
    assert state.counters["events_accepted"][()] == 7 and state.counters["events_duplicate"][()] == 1
    while owned.writing is not None:
        await owned.writing
    assert await worker.checkpoint(0, owned) is True and consumer.committable[-1] == 3
    # The new changelog holds the whole state, dedup index included, under the new cluster.
    restored = worker_with(StubConsumer(committed=None))
    restored.changelog = changelog
    restored.rebase("cluster-b")
    again = restored.load(0).state
    assert (again.offset, again.cluster) == (2, "cluster-b")
    assert again.counters == state.counters and len(again.dedup) == len(state.dedup) == 7


async def test_a_checkpoint_of_another_cluster_is_rebased_when_loaded():
    changelog = MemoryChangelog()
    old = worker_with(StubConsumer(committed=None))
    old.changelog = changelog
    old.rebase("cluster-a")
    old.handle_batch(0, records(0, 1, 2))
    assert await old.checkpoint(0, old.partitions[0]) is True

    consumer = StubConsumer(committed=3)
    worker = worker_with(consumer)
    worker.changelog = changelog
    worker.rebase("cluster-b")
    owned = worker.load(0)
    assert (owned.state.offset, owned.state.cluster) == (-1, "cluster-b")
    assert owned.state.counters["events_accepted"][()] == 3
    assert consumer._committed_offset[TP(TOPIC, 0)] is None and consumer.seeks == []
    # Written to the new changelog at once, whole: the dedup index included.
    assert owned.writing is not None and await owned.writing is True
    assert consumer.seeks == [0] and consumer.committable == [-1, 0]
    again = worker_with(StubConsumer(committed=None))
    again.changelog = changelog
    again.rebase("cluster-b")
    state = again.load(0).state
    assert (state.offset, state.cluster, len(state.dedup)) == (-1, "cluster-b", 3)


async def test_a_checkpoint_planned_before_the_cluster_changed_moves_nothing_when_confirmed():
    consumer = StubConsumer(committed=None)
    worker = worker_with(consumer)
    release = asyncio.Event()

    class SlowChangelog(MemoryChangelog):
        async def write(self, checkpoint) -> int:
            await release.wait()
            return await super().write(checkpoint)

    worker.changelog = SlowChangelog()
    worker.rebase("cluster-a")
    worker.handle_batch(0, records(0, 1))
    owned = worker.partitions[0]
    stale = worker.checkpoint(0, owned)
    await settle()
    worker.rebase("cluster-b")
    release.set()
    assert stale is not None and await stale is False
    assert consumer.committable == [-1] and worker.changelog.data == {}
    assert owned.pending, "the rebased state is still due"
    assert await worker.checkpoint(0, owned) is True and consumer.committable == [-1, 0]
