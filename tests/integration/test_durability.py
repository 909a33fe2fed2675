"""Exact totals across SIGKILL, SIGTERM restarts and scale-out, without Kafka transactions."""

from __future__ import annotations

import asyncio
import os
import random
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.families import FAMILIES
from streams.process import parse_metrics
from tests.integration.conftest import ON_BOTH_FRESH_BROKERS
from tests.integration.workers import (
    RECEIVED,
    Samples,
    by_partition,
    drain,
    drained,
    expected_received,
    parse_samples,
    produce,
    received_by_stream,
    replay,
    summed,
    total,
    wait_for,
    window_safe_now,
    worker_for,
)
from tests.replay import PARTITIONS, Record, ReplayData, expected_metrics, iso, mismatches, partition_of

pytestmark = pytest.mark.integration

def assert_exact(samples: Samples, records, scrape_time: float, context: str = "") -> None:
    problems = mismatches(samples, expected_metrics(records, scrape_time))
    assert not problems, f"{context}{len(problems)} samples differ, e.g. {problems[:8]}"


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
@ON_BOTH_FRESH_BROKERS
def test_sigkill_at_three_random_points_leaves_exact_totals(fresh_broker, tmp_path, store):
    seed = int(os.environ.get("CORRIDOR_TEST_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    records = replay(fresh_broker, 200_000, seed=seed)
    want = expected_received(records)
    everything = sum(want.values())
    kill_points = sorted(rng.uniform(0.1, 0.9) * everything for _ in range(3))

    worker = worker_for(fresh_broker, tmp_path, "w", store=store).start()
    try:
        for point in kill_points:
            def passed_point(point: float = point) -> bool:
                samples = worker.scrape()
                return samples is not None and total(samples, RECEIVED) >= point

            wait_for(passed_point, timeout=180, interval=0.05, message=f"progress past {point:.0f} events")
            worker.kill()
            worker.start()
        try:
            wait_for(lambda: drained([worker], want), timeout=300, interval=0.5,
                     message=f"the restarted worker to drain (seed {seed}, kills after {kill_points})")
        except AssertionError as timeout:
            samples = worker.scrape()
            seen = received_by_stream(samples) if samples else "nothing (not serving /metrics)"
            raise AssertionError(f"{timeout}; received {seen}, expected {dict(want)}") from None
        scrape_time, samples = window_safe_now(worker)
    finally:
        worker.stop()
    assert total(samples, "corridor_events_duplicate_total") > 0
    assert_exact(samples, records, scrape_time, context=f"seed {seed}, kills after {kill_points}: ")


def test_sigterm_restart_serves_no_total_lower_than_before(fresh_broker, tmp_path):
    records = replay(fresh_broker, 20_000, seed=5)
    want = expected_received(records)
    worker = worker_for(fresh_broker, tmp_path, "w").start()
    restarted: list[str] = []
    try:
        wait_for(lambda: drained([worker], want), timeout=120, message="the worker to drain")
        before_text = worker.metrics_text()
        assert worker.stop() == 0, worker.log_tail()
        worker.start()

        def ready() -> bool:
            # Every scrape while the state comes back: /metrics answers, /readyz says whether it is done.
            text = worker.metrics_text()
            if text is not None:
                restarted.append(text)
            return text is not None and worker.probe("/readyz") == 200

        wait_for(ready, timeout=120, interval=0.05, message="the restarted worker to be ready")
        first = worker.scrape()
        scrape_time, samples = window_safe_now(worker)
    finally:
        worker.stop()
    before_series, before = by_partition(before_text), parse_samples(before_text)
    for text in restarted:  # a partition's series never shows less than before, restored or not
        fell = {k: (v, before_series[k]) for k, v in by_partition(text).items() if v < before_series.get(k, 0.0)}
        assert not fell, f"a partition's series fell after the restart: {sorted(fell.items())[:8]}"
    counters = [k for k in before if k[0].endswith("_total") and k[0].startswith("corridor_")]
    dropped = {k: (before[k], first.get(k, 0.0)) for k in counters if first.get(k, 0.0) < before[k]}
    assert not dropped, f"totals dropped after the restart: {sorted(dropped.items())[:8]}"
    assert_exact(samples, records, scrape_time)


def test_two_workers_split_the_work_and_one_survives_the_other(fresh_broker, tmp_path):
    records = replay(fresh_broker, 60_000, seed=9)
    want = expected_received(records)
    first = worker_for(fresh_broker, tmp_path, "a").start()
    second = worker_for(fresh_broker, tmp_path, "b").start()
    try:
        wait_for(lambda: drained([first, second], want), timeout=180, message="two workers to drain together")
        assert all(total(w.scrape(), RECEIVED) > 0 for w in (first, second)), "both workers should own partitions"
        scrape_time, samples = window_safe_now(first, second)
        assert_exact(samples, records, scrape_time)

        more = ReplayData(time.time(), seed=10)
        more._ids = 10_000_000  # event ids distinct from the first replay's
        extra = more.build(60_000)
        asyncio.run(produce(fresh_broker.bootstrap, extra))
        want = expected_received(records + extra)

        def part_way():
            samples = [first.scrape(), second.scrape()]
            if any(s is None for s in samples):
                return False
            return total(summed(samples), RECEIVED) > sum(expected_received(records).values()) + 5_000

        wait_for(part_way, timeout=120, interval=0.05, message="the second replay to be under way")
        second.kill()
        wait_for(lambda: drained([first], want), timeout=240, message="the survivor to finish alone")
        scrape_time, samples = window_safe_now(first)
    finally:
        first.stop()
        second.stop()
    assert_exact(samples, records + extra, scrape_time)


async def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets on the family topics (absent: none committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        committed = {}
        for topic in (family.topic for family in FAMILIES.values()):
            for partition in range(PARTITIONS):
                offset = await consumer.committed(TopicPartition(topic, partition))
                if offset is not None and offset >= 0:
                    committed[(topic, partition)] = offset
        return committed
    finally:
        await consumer.stop()


def test_offsets_are_committed_only_behind_confirmed_checkpoints(fresh_broker, tmp_path):
    """The broker never confirms a changelog record: the worker applies everything and commits nothing."""
    records = replay(fresh_broker, 5_000, seed=21)
    want = expected_received(records)
    held = worker_for(fresh_broker, tmp_path, "held", fault="hold-changelog").start()
    placed = {(FAMILIES[r.family].topic, str(partition_of(r.key))) for r in records}

    def applied_everything() -> bool:
        # Nothing is durable, so nothing shows in the totals: the lag (from the applied state) tells.
        text = held.metrics_text()
        if text is None:
            return False
        lag = {(labels["topic"], labels["partition"]): value
               for name, labels, value, *_ in parse_metrics(text) if name == "corridor_consumer_lag"}
        return placed <= lag.keys() and not any(lag[key] for key in placed)

    try:
        wait_for(applied_everything, timeout=120, message="the worker to apply every record")
        deadline = time.monotonic() + 5.0  # five checkpoint intervals
        while time.monotonic() < deadline:
            committed = asyncio.run(committed_offsets(fresh_broker.bootstrap, held.app_id))
            assert not committed, f"offsets committed although no checkpoint was confirmed: {committed}"
            time.sleep(0.5)
    finally:
        held.kill()
    worker = worker_for(fresh_broker, tmp_path, "w").start()
    scrape_time, samples = drain(worker, want, "a worker without the fault to drain")
    assert_exact(samples, records, scrape_time)


def test_records_dropped_from_a_fetch_are_read_again_and_never_committed_unread(fresh_broker, tmp_path):
    """Records of a fetch a rebalance overtook are dropped: the worker reads them again."""
    records = replay(fresh_broker, 20_000, seed=27)
    want = expected_received(records)
    worker = worker_for(fresh_broker, tmp_path, "w", fault="drop-fetched").start()
    try:
        wait_for(lambda: drained([worker], want), timeout=120, message="the worker to drain")
    finally:
        worker.kill()
    # A worker without the fault, after a SIGKILL: what was committed was applied.
    worker = worker_for(fresh_broker, tmp_path, "again").start()
    scrape_time, samples = drain(worker, want, "a worker without the fault to drain")
    assert_exact(samples, records, scrape_time)
    assert "were not delivered before offset 60: reading them again" in (tmp_path / "w.log").read_text()


def test_a_committed_offset_past_the_restored_state_is_read_again(fresh_broker, tmp_path):
    """The group committed offsets no checkpoint holds (a lost changelog): the worker reads them again."""
    records = replay(fresh_broker, 2_000, seed=23)
    want = expected_received(records)
    placed = sorted({(r.family, partition_of(r.key)) for r in records})
    family, partition = placed[0]
    topic = FAMILIES[family].topic

    async def commit_ahead() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=fresh_broker.bootstrap, group_id="corridor-durability",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, partition)])
            await consumer.commit({TopicPartition(topic, partition): 5})
        finally:
            await consumer.stop()

    asyncio.run(commit_ahead())
    worker = worker_for(fresh_broker, tmp_path, "w").start()
    scrape_time, samples = drain(worker, want, "the worker to drain")
    assert_exact(samples, records, scrape_time)
    assert total(samples, "corridor_state_gaps_total") == 0
    assert f"offsets 0-4 of {topic} partition {partition} were not delivered before offset 5" in (
        worker.log_path.read_text())


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_busy_partition_drains_exactly_across_a_sigkill(fresh_broker, tmp_path, store):
    """300,000 events of one link in one event-time hour: one partition, one dedup bucket."""
    now = time.time()
    hour = (now // 3600 - 1) * 3600
    data = ReplayData(now, seed=31)
    records = []
    for n in range(600):
        events = []
        for _ in range(500):
            event = data.datachannel()
            event.update(link_id="CQ-SG-1", event_time=iso(hour + data.rng.uniform(0, 3599)))
            events.append(event)
        records.append(Record("datachannel", b"CQ-SG-1", orjson.dumps(events), now, events))
        if n % 50 == 0:  # a producer retry: the same envelope again
            records.append(Record("datachannel", b"CQ-SG-1", orjson.dumps(events), now + 1, events))
    asyncio.run(produce(fresh_broker.bootstrap, records))
    want = expected_received(records)
    worker = worker_for(fresh_broker, tmp_path, "w", store=store).start()
    try:
        def half_way():
            samples = worker.scrape()
            return samples is not None and total(samples, RECEIVED) >= 150_000

        wait_for(half_way, timeout=180, interval=0.05, message="half of the events")
        worker.kill()
        worker.start()
        wait_for(lambda: drained([worker], want), timeout=300, message="the restarted worker to drain")
        scrape_time, samples = window_safe_now(worker)
    finally:
        worker.stop()
    assert total(samples, "corridor_checkpoint_failures_total") == 0
    assert total(samples, "corridor_state_gaps_total") == 0
    assert total(samples, "corridor_events_accepted_total") == 300_000
    assert_exact(samples, records, scrape_time)
