"""Replay: 50,000+ events through a real worker; every metric must come out exact."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.topics import DEADLETTER_TOPIC, FAMILY_TOPICS
from streams.admin import create_topics
from streams.broker import EmbeddedBroker
from streams.deadletter import parse_dead_letter_headers
from streams.settings import Settings
from tests.integration.workers import Samples, WorkerProcess, free_port, total, wait_for
from tests.replay import WINDOWS, Record, ReplayData, expected_metrics

pytestmark = pytest.mark.integration

PARTITIONS = 4


async def produce(bootstrap: str, records: list[Record]) -> list[tuple[Record, int, int]]:
    """Write every record as it is with a plain producer; returns (record, partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(FAMILY_TOPICS[r.family], r.value, key=r.key, timestamp_ms=int(r.timestamp * 1000))
            for r in records
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(r, m.partition, m.offset) for r, m in zip(records, metadata)]


async def read_all(bootstrap: str, topic: str, quiet: float = 3.0) -> list:
    """Every record of ``topic``, read until nothing more arrives (end offsets are not trusted)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        records = []
        while True:
            batch = await consumer.getmany(timeout_ms=int(quiet * 1000))
            if not batch:
                return records
            for items in batch.values():
                records.extend(items)
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker(free_port()) as embedded:
        asyncio.run(create_topics(Settings(kafka_bootstrap=embedded.bootstrap), partitions=PARTITIONS))
        yield embedded


def window_safe_now(worker: WorkerProcess) -> tuple[float, Samples]:
    """A scrape taken while no window bucket boundary passed, with the time it describes."""
    while True:
        before = time.time()
        samples = worker.scrape()
        after = time.time()
        if samples is not None and all(before // b == after // b for _, _, b in WINDOWS):
            return before, samples
        time.sleep(0.2)


def test_replay_metrics_and_dead_letters_are_exact(broker, tmp_path):
    now = time.time()
    data = ReplayData(now, seed=11, partitions=PARTITIONS)
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
            got = {f: samples.get(("corridor_events_received_total", (("stream", f),)), 0) for f in FAMILY_TOPICS}
            return samples if got == dict(expected_received) else None

        wait_for(drained, timeout=240, interval=1, message="the worker to drain the replay")
        scrape_time, samples = window_safe_now(worker)
    finally:
        worker.stop()
    expected = expected_metrics(records, scrape_time)

    missing = {k: v for k, v in expected.items() if k not in samples and not (k[0].endswith("_window") and v == 0)}
    assert not missing, f"metrics not exported: {sorted(missing)[:10]}"
    wrong = {
        k: (samples[k], v) for k, v in expected.items() if k in samples and samples[k] != v
    }
    assert not wrong, f"{len(wrong)} wrong samples, e.g. {sorted(wrong.items())[:10]}"
    checked_prefixes = ("corridor_shipment", "corridor_flight", "corridor_finance", "corridor_datachannel",
                        "corridor_events_", "corridor_last_event")
    extra = {
        k: v for k, v in samples.items()
        if k[0].startswith(checked_prefixes) and k not in expected and v != 0
        and not k[0].startswith("corridor_event_delay_seconds")
    }
    assert not extra, f"unexpected non-zero samples: {sorted(extra.items())[:10]}"
    assert total(samples, "corridor_events_rejected_total") == sum(len(r.invalid) for r in records)

    # The dead-letter topic holds exactly the invalid records, each once, with its raw bytes.
    letters = asyncio.run(read_all(broker.bootstrap, DEADLETTER_TOPIC))
    got = Counter()
    for letter in letters:
        meta = parse_dead_letter_headers(letter.headers)
        got[(meta["source_topic"], meta["source_partition"], meta["source_offset"], meta["index"],
             meta["reason"], letter.value)] += 1
    want = Counter()
    for record, partition, offset in written:
        for index, reason in record.invalid:
            raw = record.value if index is None else orjson.dumps(record.events[index])
            want[(FAMILY_TOPICS[record.family], partition, offset, index, reason, raw)] += 1
    assert got == want
