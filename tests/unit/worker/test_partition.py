"""A partition's phases (streams/worker/partition.py): each transition, and the ones a phase has not."""

from __future__ import annotations

import asyncio

import pytest

from streams.worker.partition import OwnedPartition, PartitionExport, PartitionPhase, PhaseError
from tests.unit.worker.memory import family_worker


def partition() -> OwnedPartition:
    state = family_worker().processor.new_state()
    return OwnedPartition(state, PartitionExport("owner-1", state.view(), hold_until=0.0, hold_s=30.0),
                          last_checkpoint=0.0)


async def test_records_applied_while_a_checkpoint_is_in_flight_are_due_once_it_is_confirmed():
    owned = partition()
    owned.applied(3, now=10.0)
    assert (owned.phase, owned.due, owned.age(12.0)) == (PartitionPhase.DUE, 3, 2.0)
    writing = asyncio.get_running_loop().create_future()
    assert owned.started(writing, now=12.0) == 3
    assert (owned.phase, owned.due, owned.writing, owned.last_checkpoint) == (PartitionPhase.WRITING, 0, writing, 12.0)
    owned.applied(2, now=13.0)
    assert owned.phase is PartitionPhase.WRITING_DUE and owned.age(14.0) == 4.0, "the oldest record waits longest"
    owned.confirmed()
    assert (owned.phase, owned.due, owned.writing, owned.age(14.0)) == (PartitionPhase.DUE, 2, None, 1.0)


async def test_a_refused_checkpoint_makes_its_records_due_again_as_old_as_they_were():
    owned = partition()
    owned.applied(3, now=10.0)
    owned.started(asyncio.get_running_loop().create_future(), now=12.0)
    owned.applied(1, now=13.0)
    owned.refused(3)
    assert (owned.phase, owned.due, owned.writing, owned.age(15.0)) == (PartitionPhase.DUE, 4, None, 5.0)
    owned.abandoned()
    assert (owned.phase, owned.due) == (PartitionPhase.CLEAN, 0)


async def test_a_revoked_partition_stays_revoked_whatever_its_checkpoint_in_flight_does():
    owned = partition()
    owned.applied(1, now=10.0)
    owned.started(asyncio.get_running_loop().create_future(), now=10.0)
    owned.revoked(now=11.0)
    assert not owned.owned
    owned.refused(1)
    assert owned.phase is PartitionPhase.REVOKED
    owned.confirmed()
    assert owned.phase is PartitionPhase.REVOKED
    with pytest.raises(PhaseError):
        owned.applied(1, now=12.0)
    owned.handed_on()
    assert owned.phase is PartitionPhase.HANDED_ON
    with pytest.raises(PhaseError):
        owned.revoked(now=13.0)


async def test_a_rebased_partition_is_due_though_nothing_was_applied_and_only_a_due_one_starts():
    owned = partition()
    owned.rebased(now=5.0)
    assert (owned.phase, owned.due_since) == (PartitionPhase.DUE, 5.0)
    with pytest.raises(PhaseError):
        partition().started(asyncio.get_running_loop().create_future(), now=0.0)


def test_lag_seconds_is_zero_without_lag_and_unknown_until_a_bound_is():
    owned = partition()
    assert owned.lag_seconds(0, now=100.0) == 0.0
    assert owned.lag_seconds(5, now=100.0) is None, "no record applied, never seen caught up: no bound yet"


def test_lag_seconds_bounds_the_oldest_waiting_record_by_the_later_of_the_last_applied_one_and_caught_up():
    owned = partition()
    owned.last_record_time = 1000.0  # a backlog: the next record follows the last applied one closely
    assert owned.lag_seconds(40, now=1030.0) == 30.0
    assert owned.lag_seconds(40, now=1045.0) == 15 + 30.0, "rises with the wall clock while nothing more is applied"
    # A quiet partition: its last record an hour old, seen with nothing waiting a scrape ago. A record
    # arriving now waits seconds, not the hour since the previous one.
    owned.seen_caught_up(4600.0)
    assert owned.lag_seconds(1, now=4615.0) == 15.0
    # A replay whose records carry old producer timestamps: being caught up recently keeps the bound near.
    owned.last_record_time = 10.0
    assert owned.lag_seconds(3, now=4620.0) == 20.0


def test_lag_seconds_is_never_negative_when_a_producer_clock_runs_ahead():
    owned = partition()
    owned.last_record_time = 2000.0
    assert owned.lag_seconds(2, now=1990.0) == 0.0
