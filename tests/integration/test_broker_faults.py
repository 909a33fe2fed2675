"""Broker faults: a worker started before its broker, a broker restarted under a running worker and
publisher, and publishing while the broker stays down.

Each test runs a broker of its own on fixed ports (it stops and starts it), the embedded broker
or, where the behaviour is meant to be the same, also Apache Kafka. The embedded broker keeps
nothing across a restart: it comes back as a new, empty cluster. Apache Kafka keeps its log,
the changelogs and the group's offsets: it comes back as the same cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.families import FAMILIES, FAMILY_NAMES
from schemas.samples import sample_event
from streams.kafka.admin import cluster_id, create_topics
from streams.kafka.broker import EmbeddedBroker
from streams.sdk import DELIVERED, INVALID, UNDELIVERED, Publisher
from tests.integration.conftest import (
    BROKER_KINDS,
    CORRIDOR,
    AnyBroker,
    broker_settings_for,
    free_port,
    own_broker,
    read_topic,
)
from tests.integration.workers import (
    drained,
    expected_received,
    produce,
    received_by_stream,
    replay,
    wait_for,
    window_safe_now,
    worker_for,
)
from tests.kafka_cluster import KafkaCluster
from tests.replay import Record, ReplayData, expected_metrics, mismatches

pytestmark = pytest.mark.integration

#: How soon a worker started before its broker must be ready once the broker is up.
READY_AFTER_BROKER_S = 30
#: Events per publish call of the publishing loop.
EVENTS_PER_ROUND = 200


def readyz_text(worker) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/readyz", timeout=5) as response:
            return response.read().decode()
    except urllib.error.HTTPError as error:
        return error.read().decode()


def exact(worker, records: list[Record]) -> list[str]:
    """How the worker's totals differ from the reference model's for ``records`` (empty: exact)."""
    now, samples = window_safe_now(worker)
    return mismatches(samples, expected_metrics(records, now))


async def test_each_start_of_the_embedded_broker_is_a_new_cluster():
    broker = EmbeddedBroker(port=free_port())
    settings = broker_settings_for(broker.bootstrap)
    ids = []
    try:
        for _ in range(2):
            broker.start()
            ids.append(await cluster_id(settings))
            assert ids[-1] == broker.cluster_id
            broker.stop()
    finally:
        broker.stop()
    assert len(set(ids)) == 2


@pytest.mark.parametrize("kind", BROKER_KINDS)
def test_a_worker_started_before_its_broker_waits_then_runs(tmp_path, kind):
    with own_broker(kind, tmp_path) as broker:
        worker_started_before_its_broker(broker, tmp_path)


def worker_started_before_its_broker(broker: AnyBroker, tmp_path: Path) -> None:
    worker = worker_for(broker, tmp_path, "w").start()
    try:
        wait_for(lambda: f"waiting for a Kafka broker at {broker.bootstrap}" in worker.log_path.read_text(),
                 timeout=60, interval=0.2, message="the worker to say it waits for the broker")
        assert worker.alive()
        assert worker.probe("/healthz") == 200
        assert worker.probe("/readyz") == 503
        assert f"waiting for a Kafka broker at {broker.bootstrap}" in readyz_text(worker)
        line = next(line for line in worker.log_path.read_text().splitlines() if "waiting for a Kafka broker" in line)
        assert "attempt 1 failed" in line and "next attempt in" in line and "CORRIDOR_KAFKA_BOOTSTRAP" in line

        broker.start()
        started = time.monotonic()
        asyncio.run(create_topics(broker_settings_for(broker.bootstrap)))
        wait_for(lambda: worker.probe("/readyz") == 200, timeout=READY_AFTER_BROKER_S, interval=0.2,
                 message=f"/readyz within {READY_AFTER_BROKER_S}s of the broker starting")
        assert time.monotonic() - started < READY_AFTER_BROKER_S

        records = replay(broker, 3_000, seed=31)
        wait_for(lambda: drained([worker], expected_received(records)), timeout=120,
                 message="the worker to count the events published once the broker was up")
        assert exact(worker, records) == []
        log = worker.log_path.read_text()
        # Rate-limited: the wait lasted seconds, and the line repeats every 30 s at most.
        assert log.count("waiting for a Kafka broker") == 1
        assert "Traceback" not in log
    finally:
        worker.stop()


class RecentEvents(ReplayData):
    """The replay's events, all within the last minute: none is late, stale or in the future."""

    JOURNEY_DAY = 7.5  # a shipment's journey of up to 8 days within the last minute

    def _event_time(self) -> float:
        return time.time() - self.rng.uniform(0, 60)

    def _latest(self) -> float:
        return time.time()


class PublishingLoop:
    """A ``Publisher`` publishing rounds of events in a thread of its own, until stopped.

    Rounds go while ``go`` is set; ``idle`` is set while the loop waits for it. Every event
    published and its outcome are kept, in order.
    """

    def __init__(self, settings, events: RecentEvents) -> None:
        self.settings = settings
        self.events = events
        self.go, self.idle, self.done = threading.Event(), threading.Event(), threading.Event()
        self.published: list[tuple[Record, str]] = []  # (the event as a reference record, its status)
        self.rounds: list[Counter] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with Publisher(self.settings) as publisher:
            round_number = 0
            while not self.done.is_set():
                if not self.go.is_set():
                    self.idle.set()
                    await asyncio.sleep(0.05)
                    continue
                self.idle.clear()
                family = FAMILY_NAMES[round_number % len(FAMILY_NAMES)]
                round_number += 1
                events = [self.events.MAKERS[family](self.events) for _ in range(EVENTS_PER_ROUND)]
                sent_at = time.time()
                report = await publisher.publish(family, events)
                key_field = FAMILIES[family].key_field
                for event, outcome in zip(events, report.outcomes, strict=True):
                    record = Record(family, str(event[key_field]).encode(), b"", sent_at, [event])
                    self.published.append((record, outcome.status))
                self.rounds.append(Counter(outcome.status for outcome in report.outcomes))

    def pause(self) -> None:
        self.go.clear()
        self.idle.clear()
        wait_for(self.idle.is_set, timeout=60, interval=0.05, message="the publishing loop to pause")

    def stop(self) -> None:
        self.done.set()
        self.go.set()
        self.thread.join(120)

    def delivered(self) -> list[Record]:
        return [record for record, status in self.published if status == DELIVERED]

    def undelivered(self) -> list[Record]:
        return [record for record, status in self.published if status == UNDELIVERED]

    def rounds_after(self, start: int, status: str) -> int:
        """Rounds from ``start`` on whose every event has ``status``."""
        return sum(1 for counts in self.rounds[start:] if set(counts) == {status})


@pytest.mark.parametrize("kind", BROKER_KINDS)
@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_worker_and_a_publisher_carry_on_across_a_broker_restart(tmp_path, store, kind):
    with own_broker(kind, tmp_path) as broker:
        carry_on_across_a_broker_restart(broker, tmp_path, store)


def carry_on_across_a_broker_restart(broker: AnyBroker, tmp_path: Path, store: str) -> None:
    broker.start()
    settings = broker_settings_for(broker.bootstrap, publish_retry_timeout_s=2.0)
    asyncio.run(create_topics(settings))
    worker = worker_for(broker, tmp_path, "w", store=store).start()
    loop = PublishingLoop(settings, RecentEvents(time.time(), seed=32))
    try:
        wait_for(lambda: worker.probe("/readyz") == 200, timeout=120, interval=0.2, message="the worker to be ready")
        loop.thread.start()
        loop.go.set()
        wait_for(lambda: loop.rounds_after(0, DELIVERED) >= 8, timeout=120, message="rounds delivered")

        # The embedded broker loses what it acknowledged and no consumer read yet (memory only):
        # it is stopped once the worker read everything, so that the totals can be checked exactly
        # (Apache Kafka would keep it; the same steps serve both).
        loop.pause()
        before = loop.delivered()
        wait_for(lambda: drained([worker], expected_received(before)), timeout=120,
                 message="the worker to read every event delivered before the stop")
        broker.stop()
        outage_starts = len(loop.rounds)
        loop.go.set()
        wait_for(lambda: loop.rounds_after(outage_starts, UNDELIVERED) >= 3, timeout=120,
                 message="rounds reported undelivered while the broker is down")
        assert worker.alive() and worker.probe("/healthz") == 200
        wait_for(lambda: worker.probe("/readyz") == 503, timeout=30, interval=0.2,
                 message="/readyz to say that no broker answers")

        broker.start()  # same port: the embedded broker a new and empty cluster, Apache Kafka the same one
        asyncio.run(create_topics(settings))
        restarted = len(loop.rounds)
        wait_for(lambda: loop.rounds_after(restarted, DELIVERED) >= 8, timeout=120,
                 message="rounds delivered after the restart")
        loop.stop()

        statuses = Counter(status for _, status in loop.published)
        assert set(statuses) <= {DELIVERED, UNDELIVERED, INVALID} and statuses[INVALID] == 0, statuses
        assert statuses[UNDELIVERED] >= 3 * EVENTS_PER_ROUND
        # What the publisher reported undelivered, published again now that the broker is back.
        resent = asyncio.run(republish(settings, loop.undelivered()))
        assert resent == {DELIVERED: statuses[UNDELIVERED]}

        # "undelivered" means "not acknowledged" (docs/broker.md): a batch the publisher gave up on may
        # still have been written, and with its republished copy its events are in the log twice.
        landed = landed_anyway(broker.bootstrap, loop.undelivered())
        counted = loop.delivered() + loop.undelivered() + landed
        try:
            wait_for(lambda: drained([worker], expected_received(counted)), timeout=120,
                     message="the worker to count every event delivered")
        except AssertionError as exc:
            raise AssertionError(f"{exc} ({len(landed)} undelivered events written anyway): counted "
                                 f"{received_now(worker)}, want {dict(expected_received(counted))}") from None
        assert exact(worker, counted) == []
        wait_for(lambda: worker.probe("/readyz") == 200, timeout=30, interval=0.2, message="/readyz ready again")
        assert worker.alive()
        log = worker.log_path.read_text()
        if isinstance(broker, KafkaCluster):
            # The same cluster: no partition is read again from its first record.
            assert "came back as a new cluster" not in log and "reading it from its first record" not in log
        else:
            assert "came back as a new cluster" in log
    finally:
        loop.stop()
        worker.kill()


def landed_anyway(bootstrap: str, undelivered: list[Record]) -> list[Record]:
    """The undelivered events found in the log more than once (written before the publisher gave
    up, and again when republished): one more reference record per extra copy.

    Only undelivered events may be there twice: a delivered event is written once (idempotent
    producer), and a third copy would mean the republish itself was written twice.
    """
    copies: Counter = Counter()
    for family in FAMILY_NAMES:
        for message in asyncio.run(read_topic(bootstrap, FAMILIES[family].topic)):
            value = orjson.loads(message.value)
            for event in value if isinstance(value, list) else [value]:
                copies[(family, event["event_id"])] += 1
    twice = {key for key, count in copies.items() if count > 1}
    by_id = {(record.family, record.events[0]["event_id"]): record for record in undelivered}
    assert twice <= by_id.keys(), f"delivered events written twice: {sorted(twice - by_id.keys())[:5]}"
    assert all(copies[key] == 2 for key in twice), {key: copies[key] for key in twice if copies[key] != 2}
    return [by_id[key] for key in sorted(twice)]


def received_now(worker) -> dict[str, float] | None:
    samples = worker.scrape()
    return None if samples is None else received_by_stream(samples)


async def republish(settings, records: list[Record]) -> Counter:
    statuses: Counter = Counter()
    async with Publisher(settings) as publisher:
        for family in FAMILY_NAMES:
            events = [record.events[0] for record in records if record.family == family]
            if events:
                report = await publisher.publish(family, events)
                statuses.update(outcome.status for outcome in report.outcomes)
    return statuses


def corridor_publish(bootstrap: str, *args: str, stdin: Any = None) -> subprocess.Popen[str]:
    env = os.environ | {"CORRIDOR_KAFKA_BOOTSTRAP": bootstrap, "CORRIDOR_PUBLISH_RETRY_TIMEOUT_S": "2"}
    return subprocess.Popen([*CORRIDOR, "publish", *args, "--json"], env=env, text=True, stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if stdin else subprocess.PIPE)


def lines(family: str, count: int, tag: str) -> list[str]:
    return [json.dumps(sample_event(family, source=tag)) for _ in range(count)]


def test_publish_reports_every_line_undelivered_when_no_broker_answers(tmp_path: Path):
    path = tmp_path / "flights.jsonl"
    path.write_text("\n".join([*lines("flights", 3, "closed"), "{oops", *lines("flights", 2, "closed")]) + "\n")
    run = corridor_publish(f"127.0.0.1:{free_port()}", "flights", str(path))
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr
    summary = json.loads(stdout)
    assert (summary["valid"], summary["invalid"], summary["published"], summary["undelivered"]) == (5, 1, 0, 5)
    assert sorted((error["line"], error["reason"]) for error in summary["errors"]) == [
        (1, "undelivered"), (2, "undelivered"), (3, "undelivered"), (4, "invalid_json"),
        (5, "undelivered"), (6, "undelivered"),
    ]
    assert all("KafkaConnectionError" in error["message"] for error in summary["errors"] if error["line"] != 4)


@pytest.mark.parametrize("kind", BROKER_KINDS)
def test_publish_reports_the_lines_sent_after_the_broker_stopped(tmp_path: Path, kind: str):
    with own_broker(kind, tmp_path) as broker:
        lines_sent_after_the_broker_stopped(broker)


def lines_sent_after_the_broker_stopped(broker: AnyBroker) -> None:
    from streams.cli.records import CHUNK_EVENTS

    broker.start()
    try:
        asyncio.run(create_topics(broker_settings_for(broker.bootstrap)))
        run = corridor_publish(broker.bootstrap, "datachannel", "-", stdin=subprocess.PIPE)
        assert run.stdin is not None
        # A first round of lines, read and published before the broker stops.
        run.stdin.write("\n".join(lines("datachannel", CHUNK_EVENTS, "before")) + "\n")
        run.stdin.flush()

        def published_before() -> bool:
            records = asyncio.run(read_topic(broker.bootstrap, FAMILIES["datachannel"].topic))
            return sum(len(json.loads(record.value)) for record in records) == CHUNK_EVENTS

        wait_for(published_before, timeout=120, message="the first round to reach the broker")
        broker.stop()
        run.stdin.write("\n".join(lines("datachannel", 7, "after")) + "\n")
        run.stdin.close()
        run.wait(timeout=120)
    finally:
        broker.stop()
    assert run.stdout is not None
    output = run.stdout.read()
    assert run.returncode == 1, output
    summary = json.loads(output.splitlines()[-1])  # after any retry warnings, the summary line
    assert (summary["valid"], summary["invalid"], summary["published"], summary["undelivered"]) == (
        CHUNK_EVENTS + 7, 0, CHUNK_EVENTS, 7)
    assert sorted((error["line"], error["reason"]) for error in summary["errors"]) == [
        (CHUNK_EVENTS + n, "undelivered") for n in range(1, 8)
    ]


def test_a_worker_restarted_after_the_broker_keeps_its_totals_from_local_state(tmp_path):
    port = free_port()
    broker = EmbeddedBroker(port=port)
    broker.start()
    settings = broker_settings_for(broker.bootstrap)
    asyncio.run(create_topics(settings))
    worker = worker_for(broker, tmp_path, "w", store="rocksdb://")
    try:
        worker.start()
        data = ReplayData(time.time(), seed=33)  # one data set: event ids unique across both brokers
        before = list(data.build(3_000))
        asyncio.run(produce(broker.bootstrap, before))
        wait_for(lambda: drained([worker], expected_received(before)), timeout=120,
                 message="the worker to count the events of the first broker")
        assert worker.stop() == 0

        broker.stop()
        broker.start()  # a new, empty cluster: the changelog is gone, the worker's RocksDB store is not
        asyncio.run(create_topics(settings))
        after = data.build(3_000)[len(before):]
        asyncio.run(produce(broker.bootstrap, after))
        worker.start()
        wait_for(lambda: drained([worker], expected_received(before + after)), timeout=120,
                 message="the worker to count the events of both brokers")
        assert exact(worker, before + after) == []
        assert "whose topic starts empty: reading it from its first record, totals kept" in worker.log_tail(2_000)
    finally:
        worker.kill()
        broker.stop()
