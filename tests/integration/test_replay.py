"""Replay: 50,000+ events through a real worker; every metric must come out exact."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import orjson
import pytest

from schemas.families import DEADLETTER_TOPIC, FAMILIES, FAMILY_NAMES
from streams.worker.deadletter import parse_dead_letter_headers
from tests.integration.conftest import read_topic
from tests.integration.workers import WorkerProcess, produce, total, wait_for, window_safe_now
from tests.replay import ReplayData, expected_metrics, mismatches, partition_of, rejections

pytestmark = pytest.mark.integration

def test_replay_metrics_and_dead_letters_are_exact(fresh_broker, tmp_path):
    broker = fresh_broker
    now = time.time()
    data = ReplayData(now, seed=11)
    records = data.build(50_000)
    assert sum(len(r.events) or 1 for r in records) >= 50_000
    written = asyncio.run(produce(broker.bootstrap, records))
    expected_received = Counter()
    for r in records:
        expected_received[r.family] += len(r.events) or 1

    worker = WorkerProcess(broker.bootstrap, tmp_path / "state", tmp_path / "worker.log").start()
    try:
        def drained():
            samples = worker.scrape()
            if samples is None:
                return None
            got = {f: samples.get(("corridor_events_received_total", (("stream", f),)), 0) for f in FAMILY_NAMES}
            return samples if got == dict(expected_received) else None

        wait_for(drained, timeout=240, interval=1, message="the worker to drain the replay")
        scrape_time, samples = window_safe_now(worker)
    finally:
        worker.stop()
    expected = expected_metrics(records, scrape_time)

    lags = {k: v for k, v in samples.items() if k[0] == "corridor_consumer_lag"}
    assert len(lags) == 4 * 4 and set(lags.values()) == {0.0}, lags
    problems = mismatches(samples, expected)
    assert not problems, f"{len(problems)} samples differ, e.g. {problems[:10]}"
    rejected = rejections(records)
    assert total(samples, "corridor_events_rejected_total") == sum(map(len, rejected))

    # The dead-letter topic holds exactly the invalid records, each once, with its raw bytes.
    letters = asyncio.run(read_topic(broker.bootstrap, DEADLETTER_TOPIC, idle_s=3.0))
    got = Counter()
    for letter in letters:
        meta = parse_dead_letter_headers(letter.headers)
        got[(meta["source_topic"], meta["source_partition"], meta["source_offset"], meta["index"],
             meta["reason"], letter.value)] += 1
    want = Counter()
    for (record, partition, offset), invalid in zip(written, rejected):
        assert partition == partition_of(record.key)
        for index, reason in invalid:
            raw = record.value if index is None else orjson.dumps(record.events[index])
            want[(FAMILIES[record.family].topic, partition, offset, index, reason, raw)] += 1
    assert got == want
