"""The worker's record path without a broker: order, seeks back, holes and state gaps, refused
checkpoints, what the metrics show across partition moves, and a broker back as a new cluster."""

from __future__ import annotations

import logging
import time

import pytest

from streams.core.sequence import HOLE_CONFIRMATIONS
from streams.worker.deadletter import SOURCE_OFFSET
from streams.worker.family import FamilyWorker
from streams.worker.partition import ExportPhase, PartitionPhase
from tests.unit.worker.memory import (
    TOPIC,
    FlakyChangelog,
    HeldChangelog,
    MemoryChangelog,
    MemoryDeadLetters,
    MemoryOffsets,
    MemoryRecord,
    family_worker,
    record,
    records,
    settle,
)


async def test_records_past_a_hole_wait_until_the_missing_ones_are_read_again():
    offsets = MemoryOffsets(committed=None)
    worker = family_worker(offsets=offsets)
    worker.handle_batch(0, records(0, 1, 2, 7, 8))
    await settle()
    assert offsets.seeks == [3]
    state = worker.partitions[0].state
    assert state.offset == 2
    worker.handle_batch(0, records(*range(3, 9)))
    assert state.offset == 8 and state.counters["events_accepted"][()] == 9
    assert worker.health.state_gaps == {"datachannel": 0}


async def test_a_hole_below_the_committed_offset_is_a_state_gap(caplog):
    offsets = MemoryOffsets(committed=6)
    worker = family_worker(offsets=offsets)
    worker.handle_batch(0, records(0))
    with caplog.at_level(logging.INFO, logger="corridor.worker"):
        for _ in range(HOLE_CONFIRMATIONS + 1):
            worker.handle_batch(0, records(9, 10))
            await settle()
    assert offsets.seeks == [1] * HOLE_CONFIRMATIONS
    assert worker.partitions[0].state.offset == 10
    assert worker.health.state_gaps == {"datachannel": 1}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"state gap: offsets 1-5 of {TOPIC} partition 0 were committed, but no checkpoint holds them and the "
        "topic no longer has them; the totals miss those records"
    ]


async def test_a_hole_nobody_committed_is_no_gap(caplog):
    offsets = MemoryOffsets(committed=None)
    worker = family_worker(offsets=offsets)
    with caplog.at_level(logging.INFO, logger="corridor.worker"):
        for _ in range(HOLE_CONFIRMATIONS + 1):
            worker.handle_batch(0, records(5))  # a topic whose first records retention removed
            await settle()
    assert worker.partitions[0].state.offset == 5
    assert worker.health.state_gaps == {"datachannel": 0}
    assert any("offsets 0-4 of corridor.datachannel.v1 partition 0 hold no records" in r.getMessage()
               for r in caplog.records)


def test_records_of_a_partition_no_longer_assigned_are_left_alone():
    worker = family_worker()
    worker.assigned = set()
    worker.handle_batch(0, records(0))
    assert worker.partitions == {}


async def test_a_record_that_breaks_the_processor_is_dead_lettered_and_the_rest_of_its_fetch_applied(caplog):
    dead_letters = MemoryDeadLetters()
    worker = family_worker(dead_letters=dead_letters)
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
    assert owned.state.offset == 2 and owned.due == 3
    assert owned.state.counters["events_accepted"][()] == 2
    assert owned.state.counters["events_rejected"] == {("processing_error",): 1}
    ((key, _, headers),) = dead_letters.sent
    assert key == TOPIC.encode() and dict(headers)[SOURCE_OFFSET] == b"1"
    assert [r.getMessage() for r in caplog.records] == ["failed to process record"]


async def test_a_refused_checkpoint_is_reported_retried_and_lets_nothing_be_committed_until_confirmed(caplog):
    offsets = MemoryOffsets(committed=None)
    changelog = FlakyChangelog()
    worker = family_worker(changelog, offsets)
    worker.handle_batch(0, records(0, 1, 2))
    owned = worker.partitions[0]
    with caplog.at_level(logging.ERROR, logger="corridor.worker"):
        assert await worker.checkpoint(0) is False
    assert offsets.committable == [] and worker.health.checkpoint_failures == {"datachannel": 1}
    assert "checkpoint write failed, retrying at the next interval" in caplog.text
    assert owned.due == 3, "the records of the refused checkpoint wait for the next one"
    worker.handle_batch(0, records(3))
    assert await worker.checkpoint(0) is True
    assert offsets.committable == [4] and owned.due == 0
    assert family_worker(changelog).load(0).state.offset == 3, "the store holds the confirmed checkpoint"


async def test_metrics_show_the_restored_state_until_a_scrape_then_only_confirmed_checkpoints():
    offsets = MemoryOffsets(committed=None)
    changelog = MemoryChangelog()
    worker = family_worker(changelog, offsets)
    worker.handle_batch(0, records(0, 1, 2))
    owned = worker.partitions[0]
    (exported,) = worker.exported(time.monotonic())
    assert exported.view.offset == -1 and exported.owner == owned.export.owner  # the restored (empty) state
    assert await worker.checkpoint(0) is True
    assert worker.exported(owned.export.hold_until - 0.1)[0].view.offset == -1, "held for two scrape intervals"
    assert worker.exported(owned.export.hold_until)[0].view.offset == 2
    worker.handle_batch(0, records(3, 4))
    assert worker.exported(time.monotonic())[0].view.offset == 2, "applied but not yet durable: not exported"
    assert await worker.checkpoint(0) is True
    view = worker.exported(time.monotonic())[0].view
    assert view.offset == 4 and view.counters["events_accepted"][()] == 5
    worker.handle_batch(0, records(5))
    assert view.counters["events_accepted"][()] == 5, "an exported view is a copy"


async def test_a_refused_checkpoint_exports_nothing_new_and_its_age_keeps_growing():
    offsets = MemoryOffsets(committed=None)
    changelog = FlakyChangelog()
    worker = family_worker(changelog, offsets)
    worker.handle_batch(0, records(0))
    owned = worker.partitions[0]
    worker.exported(owned.export.hold_until)
    started = owned.due_since
    assert started is not None
    assert await worker.checkpoint(0) is False
    assert worker.exported(time.monotonic())[0].view.offset == -1
    # (started + 7.5) - started is 7.5 only up to the rounding of the sum: compared within it.
    assert worker.checkpoint_ages(started + 7.5) == {0: pytest.approx(7.5, abs=1e-9)}
    assert await worker.checkpoint(0) is True
    assert worker.exported(time.monotonic())[0].view.offset == 0 and worker.checkpoint_ages(started + 9) == {0: 0.0}


async def test_a_partition_given_back_unchanged_keeps_its_series_and_one_advanced_elsewhere_starts_new_ones():
    changelog = MemoryChangelog()
    offsets = MemoryOffsets(committed=None)
    ours, theirs = family_worker(changelog, offsets), family_worker(changelog, offsets)
    ours.handle_batch(0, records(0))
    assert await ours.checkpoint(0) is True
    ours.exported(ours.partitions[0].export.hold_until)
    first = ours.partitions[0].export.owner

    ours.forget({0})  # an eager rebalance revokes everything, then gives the partition back
    ours.assign({0})
    ours.handle_batch(0, records(1))
    assert ours.partitions[0].export.owner == first and ours.partitions[0].export.phase is ExportPhase.LIVE
    assert await ours.checkpoint(0) is True

    ours.forget({0})
    ours.assign(set())
    (shown,) = ours.exported(time.monotonic())  # revoked: its final view is held a while
    assert (shown.partition, shown.owner, shown.view.offset) == (0, first, 1)
    assert ours.exported(ours.released[0, first].export.hold_until) == []
    ours.assign(set())
    assert ours.released == {}
    theirs.handle_batch(0, records(2))  # another worker owned it meanwhile and moved it on
    assert await theirs.checkpoint(0) is True
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
    changelog = MemoryChangelog()
    worker = family_worker(changelog)
    worker.handle_batch(0, records(0, 1, 2))  # taken with nothing restored: offset -1
    owned = worker.partitions[0]
    assert await worker.checkpoint(0) is True
    restored_until = owned.export.hold_until
    worker.forget({0})  # the crashed member's session expired: a second rebalance moves it on
    worker.assign(set())
    assert shown(worker, restored_until - 0.1) == [(-1, True)], "every scraper saw the series begin"
    assert shown(worker, restored_until) == [(2, True)]
    assert shown(worker, restored_until + worker.hold_s - 0.1) == [(2, True)], "and end"
    assert shown(worker, restored_until + worker.hold_s) == []


async def test_a_checkpoint_confirmed_after_revocation_shows_once_the_restored_view_was_held():
    changelog = HeldChangelog()
    worker = family_worker(changelog)
    worker.handle_batch(0, records(0, 1))
    owned = worker.partitions[0]
    writing = worker.checkpoint(0)
    await settle()
    worker.forget({0})
    worker.assign(set())
    assert owned.phase is PartitionPhase.REVOKED and owned.writing is writing
    changelog.release.set()
    assert writing is not None and await writing is False, "revoked: it lets nothing be committed"
    restored_until = owned.export.hold_until
    assert shown(worker, restored_until - 0.1) == [(-1, True)]
    assert shown(worker, restored_until) == [(1, True)], "what is durable ends the series"
    assert shown(worker, restored_until + worker.hold_s - 0.1) == [(1, True)]
    assert shown(worker, restored_until + worker.hold_s) == []


async def test_a_partition_given_back_while_its_restored_view_is_held_goes_on_holding_it():
    changelog = MemoryChangelog()
    worker = family_worker(changelog)
    worker.handle_batch(0, records(0))
    owned = worker.partitions[0]
    assert await worker.checkpoint(0) is True
    worker.forget({0})  # an eager rebalance, giving it back unchanged
    worker.assign({0})
    worker.handle_batch(0, records(1))
    again = worker.partitions[0]
    assert again.export is owned.export and again.export.phase is ExportPhase.STARTING
    assert await worker.checkpoint(0) is True
    assert shown(worker, owned.export.hold_until - 0.1) == [(-1, False)]
    assert shown(worker, owned.export.hold_until) == [(1, False)]


async def test_a_partition_taken_back_after_another_worker_moved_it_on_still_ends_its_earlier_series():
    changelog = MemoryChangelog()
    offsets = MemoryOffsets(committed=None)
    ours, theirs = family_worker(changelog, offsets), family_worker(changelog, offsets)
    ours.handle_batch(0, records(0))
    ours.exported(ours.partitions[0].export.hold_until)
    assert await ours.checkpoint(0) is True
    ours.forget({0})  # a first rebalance moves it on ...
    ours.assign(set())
    ((_, first),) = ours.released
    theirs.handle_batch(0, records(1))
    assert await theirs.checkpoint(0) is True
    theirs.forget({0})  # ... and a second one, before a scrape, gives it back
    ours.assign({0})
    ours.handle_batch(0, records(2))
    now = time.monotonic()
    assert [(part.owner == first, part.view.offset, part.revoked) for part in ours.exported(now)] == [
        (False, 1, False), (True, 0, True)
    ], "the new series shows its restored view, the earlier one still its final view"
    assert shown(ours, ours.released[0, first].export.hold_until) == [(1, False)]


async def test_a_named_worker_goes_on_with_its_own_series_unless_another_checkpoint_came_after_it():
    changelog = MemoryChangelog()
    offsets = MemoryOffsets(committed=None)
    # A partition without a checkpoint showed zeros only: a named worker's series of it goes on from zero.
    idle = family_worker(changelog, offsets, worker_id="worker-0").load(0).export.owner
    assert idle == family_worker(changelog, offsets, worker_id="worker-0").load(0).export.owner
    assert family_worker(changelog, offsets, worker_id="worker-1").load(0).export.owner != idle
    unnamed = [family_worker(changelog, offsets).load(0).export.owner for _ in range(2)]
    assert unnamed[0] != unnamed[1]

    ours = family_worker(changelog, offsets, worker_id="worker-0")
    ours.handle_batch(0, records(0))
    assert await ours.checkpoint(0) is True
    first = ours.partitions[0].export.owner
    assert first == idle, "the series it began goes on under its checkpoints"

    # Restarted (a new process of the same worker): the checkpoint was written under its series.
    restarted = family_worker(changelog, offsets, worker_id="worker-0")
    restarted.handle_batch(0, records(1))
    assert restarted.partitions[0].export.owner == first
    assert restarted.partitions[0].export.shown.offset == 0, "from the checkpoint it was written under"
    assert await restarted.checkpoint(0) is True

    # Another worker held it meanwhile and confirmed nothing: it showed that checkpoint only.
    theirs = family_worker(changelog, offsets, worker_id="worker-1")
    theirs.handle_batch(0, records(2))
    theirs_owner = theirs.partitions[0].export.owner
    assert theirs_owner.startswith("worker-1.") and theirs_owner != first
    theirs.forget({0})
    again = family_worker(changelog, offsets, worker_id="worker-0")
    again.handle_batch(0, records(2))
    assert again.partitions[0].export.owner == first
    assert again.partitions[0].export.shown.offset == 1

    # Another worker checkpointed under its own series: ours may not go on past it.
    theirs = family_worker(changelog, offsets, worker_id="worker-1")
    theirs.handle_batch(0, records(2, 3))
    assert await theirs.checkpoint(0) is True
    later = family_worker(changelog, offsets, worker_id="worker-0")
    later.handle_batch(0, records(4))
    assert later.partitions[0].export.owner not in (first, theirs.partitions[0].export.owner)
    assert later.partitions[0].export.owner.startswith("worker-0.")

    # Unnamed workers never go on with a series across processes.
    unnamed = family_worker(changelog, offsets)
    unnamed.handle_batch(0, records(4, 5))
    assert await unnamed.checkpoint(0) is True
    assert family_worker(changelog, offsets).load(0).export.owner != unnamed.partitions[0].export.owner


def renamed(offsets: range, prefix: str) -> list[MemoryRecord]:
    """Records with event ids of their own (``record`` names each event after its offset)."""
    return [record(offset, f"{prefix}{offset}") for offset in offsets]


async def test_a_broker_back_as_a_new_cluster_rebases_partitions_keeping_their_totals():
    changelog = MemoryChangelog()
    offsets = MemoryOffsets(committed=None)
    worker = family_worker(changelog, offsets)
    worker.rebase("cluster-a")
    worker.handle_batch(0, records(0, 1, 2, 3, 4))
    owned = worker.partitions[0]
    assert await worker.checkpoint(0) is True and offsets.committable == [5]

    worker.rebase("cluster-b")  # the broker came back empty: its topic starts again at offset 0
    await settle()
    state = owned.state
    assert (state.offset, state.cluster) == (-1, "cluster-b") and offsets.seeks == [0]
    # Offsets of the old topic are dropped, and the rebased state is written to the new changelog at once.
    assert offsets.committable == [5, -1, 0]
    # Offsets 0-2 of the new topic: one event re-sent by its producer, two new ones.
    worker.handle_batch(0, [*records(0), *renamed(range(1, 3), "new-")])
    assert state.offset == 2
    assert state.counters["events_accepted"][()] == 7 and state.counters["events_duplicate"][()] == 1
    while owned.writing is not None:
        await owned.writing
    assert await worker.checkpoint(0) is True and offsets.committable[-1] == 3
    # The new changelog holds the whole state, dedup index included, under the new cluster.
    restored = family_worker(changelog)
    restored.rebase("cluster-b")
    again = restored.load(0).state
    assert (again.offset, again.cluster) == (2, "cluster-b")
    assert again.counters == state.counters and len(again.dedup) == len(state.dedup) == 7


async def test_a_checkpoint_of_another_cluster_is_rebased_when_loaded():
    changelog = MemoryChangelog()
    old = family_worker(changelog)
    old.rebase("cluster-a")
    old.handle_batch(0, records(0, 1, 2))
    assert await old.checkpoint(0) is True

    offsets = MemoryOffsets(committed=3)
    worker = family_worker(changelog, offsets)
    worker.rebase("cluster-b")
    owned = worker.load(0)
    assert (owned.state.offset, owned.state.cluster) == (-1, "cluster-b")
    assert owned.state.counters["events_accepted"][()] == 3
    assert offsets.committed(0) is None and offsets.seeks == []
    # Written to the new changelog at once, whole: the dedup index included.
    assert owned.writing is not None and await owned.writing is True
    assert offsets.seeks == [0] and offsets.committable == [-1, 0]
    again = family_worker(changelog)
    again.rebase("cluster-b")
    state = again.load(0).state
    assert (state.offset, state.cluster, len(state.dedup)) == (-1, "cluster-b", 3)


async def test_a_checkpoint_planned_before_the_cluster_changed_moves_nothing_when_confirmed():
    offsets = MemoryOffsets(committed=None)
    changelog = HeldChangelog()
    worker = family_worker(changelog, offsets)
    worker.rebase("cluster-a")
    worker.handle_batch(0, records(0, 1))
    owned = worker.partitions[0]
    stale = worker.checkpoint(0)
    await settle()
    worker.rebase("cluster-b")
    changelog.release.set()
    assert stale is not None and await stale is False
    assert offsets.committable == [-1] and changelog.data == {}
    assert owned.phase is PartitionPhase.DUE, "the rebased state is still due"
    assert await worker.checkpoint(0) is True and offsets.committable == [-1, 0]


def test_the_kafka_timestamp_of_the_last_applied_record_is_kept_for_the_lag_in_seconds():
    worker = family_worker()
    fetched = records(0, 1, 2)
    fetched[2] = MemoryRecord(2, fetched[2].timestamp + 5000, fetched[2].value)
    worker.handle_batch(0, fetched)
    owned = worker.partitions[0]
    assert owned.last_record_time == fetched[2].timestamp / 1000
    assert owned.lag_seconds(7, now=owned.last_record_time + 12) == 12.0
    worker.handle_batch(0, [MemoryRecord(3, -1, fetched[0].value)])  # a record without a timestamp
    assert owned.last_record_time == fetched[2].timestamp / 1000, "a record without one leaves the bound as it was"
