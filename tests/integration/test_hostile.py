"""The hostile-input corpus (tests/hostile.py) through Kafka into a real worker, among valid traffic.

The worker must survive every case, and valid events whose total outgrows 64 bits; dead-letter
each rejected record or event exactly once with the corpus's reason; count the rejections by
reason; and count the valid events (and the valid events of mixed batches) exactly as the
reference model does: the corpus changes nothing else.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from schemas.families import DEADLETTER_TOPIC, FAMILIES, FAMILY_NAMES
from schemas.samples import sample_event
from streams.kafka.admin import RECORD_ROOM_BYTES
from streams.worker.deadletter import parse_dead_letter_headers
from tests.hostile import MAX_RECORD_BYTES, Case, corpus
from tests.integration.conftest import ON_BOTH_FRESH_BROKERS, read_topic
from tests.integration.workers import (
    RECEIVED,
    Samples,
    expected_received,
    received_by_stream,
    wait_for,
    window_safe_now,
    worker_for,
)
from tests.kafka_cluster import KafkaCluster
from tests.replay import Record, ReplayData, expected_metrics, mismatches, rejections

pytestmark = pytest.mark.integration

SEED = 1414
REJECTED = "corridor_events_rejected_total"


class RecentTraffic(ReplayData):
    """The replay's events, all from the last hour, so that none is stale or late for the partition's clock."""

    JOURNEY_DAY = 435  # a shipment's journey of up to 8 days within the hour

    def _event_time(self) -> float:
        return self.now - self.rng.uniform(120, 3600)

    def _latest(self) -> float:
        return self.now - 120


def valid_records(now: float, n_events: int) -> list[Record]:
    records = [r for r in RecentTraffic(now, seed=SEED).build(n_events) if not r.invalid]
    assert not any(rejections(records)), "the valid traffic must hold no rejected event"
    return records


def past_64_bits(now: float) -> list[Record]:
    """Valid samples of the largest byte count the schema allows, on one partition: their total needs more
    than 64 bits, which the worker's checkpoints must hold."""
    at = datetime.fromtimestamp(now - 60, UTC).isoformat()
    events = [sample_event("datachannel", event_id=f"biggest-{n}", event_time=at, bytes=2**63 - 1) for n in range(3)]
    return [Record("datachannel", b"CQ-SG-1", orjson.dumps(event), now, [event]) for event in events]


def interleaved(valid: list[Record], cases: list[Case]) -> list[Record | Case]:
    """The corpus spread at random (seeded) through the valid records, keeping each list's order."""
    size = len(valid) + len(cases)
    slots = set(random.Random(SEED).sample(range(size), len(cases)))
    pending_cases, pending_valid = iter(cases), iter(valid)
    return [next(pending_cases) if position in slots else next(pending_valid) for position in range(size)]


async def publish(
    bootstrap: str, items: list[Record | Case], now: float
) -> tuple[dict[tuple[str, int, int], Case], list[Case]]:
    """Every record as it is, corpus cases stamped ``now``; returns the case at each (topic, partition, offset),
    and the cases the broker refused for their size (Apache Kafka; the embedded broker takes any size)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=256 * 1024,
        max_request_size=16 * MAX_RECORD_BYTES,  # the 10 MB case must reach the broker (it decides)
    )
    await producer.start()
    try:
        sends = []
        for item in items:
            if isinstance(item, Case):
                sends.append(await producer.send(
                    item.topic, item.value, key=item.key, headers=list(item.headers) or None,
                    timestamp_ms=int(now * 1000),
                ))
            else:
                sends.append(await producer.send(
                    FAMILIES[item.family].topic, item.value, key=item.key, timestamp_ms=item.timestamp_ms,
                ))
        metadata = await asyncio.gather(*sends, return_exceptions=True)
    finally:
        await producer.stop()
    placed, refused = {}, []
    for item, outcome in zip(items, metadata):
        if isinstance(outcome, MessageSizeTooLargeError) and isinstance(item, Case):
            refused.append(item)
        elif isinstance(outcome, BaseException):
            raise outcome
        elif isinstance(item, Case):
            placed[(outcome.topic, outcome.partition, outcome.offset)] = item
    return placed, refused


def reference_records(valid: list[Record], cases: list[Case], now: float) -> list[Record]:
    """What the reference model must count: the valid records and the accepted events of the corpus."""
    accepted = [Record(case.family, case.key, b"", now, list(case.accepted)) for case in cases if case.accepted]
    return valid + accepted


def without(samples: Samples, *names: str) -> Samples:
    return {key: value for key, value in samples.items() if key[0] not in names}


@ON_BOTH_FRESH_BROKERS
def test_the_corpus_is_dead_lettered_exactly_and_changes_nothing_else(fresh_broker, tmp_path):
    now = time.time()
    cases = corpus(datetime.fromtimestamp(now, UTC))
    valid = valid_records(now, 4_000) + past_64_bits(now)
    print(f"seed {SEED}, {len(cases)} hostile cases among {len(valid)} valid records")
    placed, refused = asyncio.run(publish(fresh_broker.bootstrap, interleaved(valid, cases), now))
    # Apache Kafka refuses a record batch past the topic's max.message.bytes, which `corridor topics create`
    # sets a little above the workers' limit (streams/kafka/admin.py): what is larger never reaches a worker.
    topic_limit = MAX_RECORD_BYTES + RECORD_ROOM_BYTES
    want_refused = [case.name for case in cases if len(case.value or b"") > topic_limit] if isinstance(
        fresh_broker, KafkaCluster) else []
    assert [case.name for case in refused] == want_refused
    cases = [case for case in cases if case not in refused]
    assert len(placed) == len(cases)

    want_received = expected_received(valid)
    for case in cases:
        want_received[case.family] += case.received
    worker = worker_for(fresh_broker, tmp_path, "hostile").start()
    try:
        def drained() -> Samples | None:
            samples = worker.scrape()
            if samples is None:
                return None
            received = received_by_stream(samples)
            return samples if all(received[f] == want_received[f] for f in FAMILY_NAMES) else None

        wait_for(drained, timeout=240, message="the worker to receive every record")
        scrape_time, samples = window_safe_now(worker)
        assert worker.alive(), worker.log_tail()
        assert worker.probe("/healthz") == 200
    finally:
        worker.stop()

    # Exactly one dead letter per rejected record or event, with its reason, and none for valid traffic.
    letters: dict[tuple[str, int, int], list[tuple[int | None, str]]] = defaultdict(list)
    for record in asyncio.run(read_topic(fresh_broker.bootstrap, DEADLETTER_TOPIC, idle_s=2.0)):
        headers = parse_dead_letter_headers(list(record.headers))
        place = (str(headers["source_topic"]), int(headers["source_partition"]), int(headers["source_offset"]))
        letters[place].append((headers["index"], str(headers["reason"])))
        if headers["truncated_from"] is not None:
            assert len(record.value) < int(headers["truncated_from"])
    assert set(letters) <= set(placed), "valid records were dead-lettered"
    wrong = {
        placed[place].name: (got, list(placed[place].rejected))
        for place in placed
        if sorted(got := letters.get(place, []), key=str) != sorted(placed[place].rejected, key=str)
    }
    assert not wrong, f"dead letters differ from the corpus: {wrong}"
    print(f"{sum(map(len, letters.values()))} dead letters from {len(letters)} records")

    # The rejection counters by stream and reason.
    want_rejected = Counter((case.family, reason) for case in cases for _, reason in case.rejected)
    got_rejected = {
        (dict(labels)["stream"], dict(labels)["reason"]): value
        for (name, labels), value in samples.items() if name == REJECTED and value
    }
    assert got_rejected == dict(want_rejected)

    # Everything else is the valid traffic's (and the mixed batches' valid events'), as the reference counts it.
    expected = expected_metrics(reference_records(valid, cases, now), scrape_time)
    problems = mismatches(without(samples, REJECTED, RECEIVED), without(expected, REJECTED, RECEIVED))
    assert not problems, f"{len(problems)} samples differ, e.g. {problems[:8]}"
