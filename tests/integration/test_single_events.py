"""Single-event records (what plain Kafka producers send) stay exact across a scale-out and a SIGKILL.

The worker takes each partition's records in batches straight from the consumer; a
rebalance overtakes fetches in flight and moves partitions between workers.
"""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from tests.integration.conftest import ON_BOTH_FRESH_BROKERS
from tests.integration.workers import (
    RECEIVED,
    drained,
    expected_received,
    produce,
    total,
    wait_for,
    window_safe_now,
    worker_for,
)
from tests.replay import Record, ReplayData, expected_metrics, mismatches

pytestmark = pytest.mark.integration


def single_event_records(n_events: int, seed: int, first_id: int = 0) -> list[Record]:
    """The replay's records with every envelope of valid events split into one record per event."""
    data = ReplayData(time.time(), seed=seed)
    data._ids = first_id
    out: list[Record] = []
    for record in data.build(n_events):
        if record.invalid or len(record.events) < 2:
            out.append(record)
        else:
            out += [Record(record.family, record.key, orjson.dumps(event), record.timestamp, [event])
                    for event in record.events]
    return out


@ON_BOTH_FRESH_BROKERS
def test_single_event_records_are_exact_across_a_scale_out_and_a_sigkill(fresh_broker, tmp_path):
    records = single_event_records(30_000, seed=61)
    asyncio.run(produce(fresh_broker.bootstrap, records))
    extra = single_event_records(40_000, seed=62, first_id=10_000_000)
    want = expected_received(records + extra)
    chunks = [extra[i:i + 2_000] for i in range(0, len(extra), 2_000)]
    first = worker_for(fresh_broker, tmp_path, "a").start()
    second = worker_for(fresh_broker, tmp_path, "b")
    try:
        def under_way() -> bool:
            samples = first.scrape()
            return samples is not None and total(samples, RECEIVED) >= 5_000

        def second_has_work() -> bool:
            samples = second.scrape()
            return samples is not None and total(samples, RECEIVED) > 0

        wait_for(under_way, timeout=120, interval=0.05, message="the first worker to be under way")
        # The second worker joins while records keep arriving: the group rebalances under way.
        second.start()
        while chunks and not second_has_work():
            if len(chunks) == 1:  # the last ones wait until the second worker owns partitions
                wait_for(lambda: second.probe("/readyz") == 200, timeout=120, message="the second worker to join")
            asyncio.run(produce(fresh_broker.bootstrap, chunks.pop(0)))
            time.sleep(0.2)
        wait_for(second_has_work, timeout=120, interval=0.05, message="the second worker to apply records")
        second.kill()
        for chunk in chunks:  # while the first worker takes the second one's partitions over
            asyncio.run(produce(fresh_broker.bootstrap, chunk))
        wait_for(lambda: drained([first], want), timeout=240, message="the first worker to finish alone")
        scrape_time, samples = window_safe_now(first)
    finally:
        first.stop()
        second.stop()
    assert total(samples, "corridor_state_gaps_total") == 0
    problems = mismatches(samples, expected_metrics(records + extra, scrape_time))
    assert not problems, f"{len(problems)} samples differ, e.g. {problems[:8]}"
