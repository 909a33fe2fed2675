"""`corridor ingest` against the real embedded broker: refusals, per-event reports, and the accepted
events counted exactly once by a real worker, across a broker outage, a client's retries and the
hostile-input corpus."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from schemas.families import DEADLETTER_TOPIC, FAMILIES, FAMILY_NAMES
from schemas.samples import sample_event
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker
from tests.hostile import http_bodies
from tests.integration.conftest import (
    BROKER_KINDS,
    CORRIDOR,
    AnyBroker,
    broker_settings_for,
    free_port,
    own_broker,
    read_topic,
)
from tests.integration.ingests import PUBLISHER, SHIPPER, TOKENS, Answer, IngestProcess
from tests.integration.workers import drain, drained, expected_received, wait_for, window_safe_now, worker_for
from tests.kafka_cluster import KafkaCluster
from tests.replay import Record, ReplayData, expected_metrics, iso, mismatches
from tests.unit.ingest.hostile_answers import INGEST_MAX_BODY_BYTES, expected_answer

pytestmark = pytest.mark.integration

def reasons(answer: Answer) -> list[tuple[int | None, str]]:
    return [(error["index"], error["reason"]) for error in answer.body["errors"]]


def test_refusals_401_403_404_413_and_422_with_field_errors(broker: EmbeddedBroker, tmp_path: Path) -> None:
    ingest = IngestProcess(broker.bootstrap, tmp_path / "ingest.log", {"CORRIDOR_INGEST_MAX_BODY_BYTES": "4096"})
    ingest.start()
    try:
        event = sample_event("flights")
        missing = ingest.post("flights", [event], token=None)
        assert (missing.status, missing.headers["WWW-Authenticate"]) == (401, "Bearer")
        unknown = ingest.post("flights", [event], token="not-" + PUBLISHER)
        assert (unknown.status, unknown.body) == (401, {"detail": "unknown token"})
        forbidden = ingest.post("flights", [event], token=SHIPPER)
        assert forbidden.status == 403
        assert ingest.post("ferries", [event]).status == 404
        oversized = ingest.post("flights", [sample_event("flights") for _ in range(20)])
        assert oversized.status == 413
        assert "over the 4096 byte limit" in oversized.body["detail"]

        invalid = ingest.post("flights", [sample_event("flights", passengers=-1), {**event, "colour": "red"}])
        assert invalid.status == 422
        assert (invalid.body["accepted"], invalid.body["rejected"]) == (0, 2)
        assert reasons(invalid) == [(0, "out_of_range"), (1, "unknown_field")]
        assert invalid.body["errors"][0]["field_errors"] == [
            {"field": "passengers", "message": "must be >= 0 (got -1)", "type": "greater_than_equal"}
        ]
        assert invalid.body["errors"][1]["field_errors"][0]["field"] == "colour"

        metrics = ingest.metrics()
        for code, count in (("401", 2), ("403", 1), ("413", 1), ("422", 1), ("202", 0)):
            assert f'corridor_ingest_requests_total{{code="{code}",family="flights"}} {count}.0' in metrics
        assert 'corridor_ingest_events_rejected_total{family="flights",reason="unknown_field"} 1.0' in metrics
    finally:
        ingest.stop()
    log = ingest.log_text()
    assert "Application shutdown complete" in log
    assert PUBLISHER not in log and SHIPPER not in log
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    refused = [(entry["status"], entry["token"]) for entry in entries if entry["logger"] == "corridor.ingest"
               and "status" in entry]
    assert refused == [(401, None), (401, None), (403, 2), (413, 1), (422, 1)]


def test_over_the_rate_is_429_with_retry_after(broker: EmbeddedBroker, tmp_path: Path) -> None:
    limits = {"CORRIDOR_INGEST_RATE_PER_SECOND": "0.001", "CORRIDOR_INGEST_BURST": "2"}
    ingest = IngestProcess(broker.bootstrap, tmp_path / "ingest.log", limits).start()
    try:
        assert [ingest.post("finance", [sample_event("finance")]).status for _ in range(2)] == [202, 202]
        refused = ingest.post("finance", [sample_event("finance")])
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1000"
        assert ingest.post("shipments", [sample_event("shipments")], token=SHIPPER).status == 202  # its own bucket
    finally:
        ingest.stop()


def test_a_mixed_batch_is_202_with_exact_counts_and_only_its_valid_events_on_the_topic(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    tag = f"ingest-{uuid.uuid4().hex[:8]}"
    good = [sample_event("shipments", source=tag, route=route) for route in ("CNCKG-SGSIN", "CNQZH-SGSIN") * 3]
    body: list[Any] = [*good[:2], sample_event("shipments", source=tag, mode="boat"), *good[2:], "not an event"]
    ingest = IngestProcess(broker.bootstrap, tmp_path / "ingest.log").start()
    try:
        answer = ingest.post("shipments", body)
    finally:
        ingest.stop()
    assert answer.status == 202
    assert (answer.body["accepted"], answer.body["rejected"], answer.body["undelivered"]) == (6, 2, 0)
    assert reasons(answer) == [(2, "invalid_value"), (7, "not_an_event")]
    topic = FAMILIES["shipments"].topic
    records = [r for r in asyncio.run(read_topic(broker.bootstrap, topic)) if f'"source":"{tag}"'.encode() in r.value]
    assert {record.key for record in records} == {b"CNCKG-SGSIN", b"CNQZH-SGSIN"}  # keyed envelopes
    published = [event for record in records for event in json.loads(record.value)]
    assert sorted(event["event_id"] for event in published) == sorted(event["event_id"] for event in good)


def recent_events(seed: int, per_family: int) -> dict[str, list[dict[str, Any]]]:
    """Events the reference model knows how to count, timed well clear of the lateness threshold:
    either within the last minute (not late) or an hour to six days old (late)."""
    now = time.time()
    data = ReplayData(now, seed=seed)
    rng = random.Random(seed)
    events: dict[str, list[dict[str, Any]]] = {}
    for family in FAMILY_NAMES:
        made = [ReplayData.MAKERS[family](data) for _ in range(per_family)]
        for event in made:
            event["event_id"] = f"{event['event_id']}-{uuid.uuid4().hex[:6]}"
            event["event_time"] = iso(now - rng.choice([rng.uniform(0, 60), rng.uniform(3600, 6 * 86400)]))
        events[family] = made
    return events


def delivered_records(family: str, events: list[dict[str, Any]], sent_at: float) -> list[Record]:
    """The reference model's view of delivered events: one record each (its totals do not depend on
    how the publisher grouped them into envelopes)."""
    key_field = FAMILIES[family].key_field
    return [Record(family, str(event[key_field]).encode(), json.dumps(event).encode(), sent_at, [event])
            for event in events]


def test_accepted_events_are_counted_exactly_once_by_a_worker_despite_a_retried_request(
    fresh_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    events = recent_events(seed=41, per_family=40)
    ingest = IngestProcess(fresh_broker.bootstrap, tmp_path / "ingest.log").start()
    records: list[Record] = []
    try:
        for family, valid in events.items():
            invalid = [{**valid[0], "event_id": ""}, {**valid[1], "event_time": "2026-01-01T00:00:00"}]
            body = valid[:20] + invalid + valid[20:]
            for _ in range(2):  # the second time: a client that never saw the first answer
                sent_at = time.time()
                answer = ingest.post(family, body)
                assert answer.status == 202, answer.body
                assert (answer.body["accepted"], answer.body["rejected"]) == (40, 2)
                assert reasons(answer) == [(20, "invalid_value"), (21, "naive_timestamp")]
                records += delivered_records(family, valid, sent_at)
        metrics = ingest.metrics()
    finally:
        ingest.stop()
    for family in FAMILY_NAMES:
        assert f'corridor_ingest_events_accepted_total{{family="{family}"}} 80.0' in metrics

    worker = worker_for(fresh_broker, tmp_path, "w", app_id="corridor-ingest").start()
    scrape_time, samples = drain(worker, expected_received(records), "the worker to receive every delivered event")
    expected = expected_metrics(records, scrape_time)
    for family in FAMILY_NAMES:
        assert expected[("corridor_events_accepted_total", (("stream", family),))] == 40
        assert expected[("corridor_events_duplicate_total", (("stream", family),))] == 40
    problems = mismatches(samples, expected)
    assert not problems, f"{len(problems)} samples differ, e.g. {problems[:8]}"


def test_the_hostile_corpus_is_refused_by_the_ingest_and_only_its_valid_events_reach_a_worker(
    fresh_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Every body of tests/hostile.py gets the answer tests/unit/ingest/hostile_answers.py works out, never
    a 5xx; the ingest keeps answering; the worker counts exactly the accepted events, as the reference
    model does, and finds nothing to dead-letter: the ingest refused the bad events itself."""
    now = time.time()  # the corpus's reference time; the ingest judges against each request's arrival
    bodies = list(http_bodies(datetime.fromtimestamp(now, UTC)))
    limits = {
        "CORRIDOR_INGEST_MAX_BODY_BYTES": str(INGEST_MAX_BODY_BYTES),
        "CORRIDOR_INGEST_RATE_PER_SECOND": "1000",
        "CORRIDOR_INGEST_BURST": str(len(bodies)),
    }
    ingest = IngestProcess(fresh_broker.bootstrap, tmp_path / "ingest.log", limits).start()
    records: list[Record] = []
    wrong: dict[str, tuple[Any, Any]] = {}
    try:
        # httpx reads an answer sent before the whole body was written (the 413 of the 10 MB body, sent
        # once its Content-Length is seen); a client that writes the whole body first sees the reset.
        with httpx.Client(base_url=f"http://127.0.0.1:{ingest.port}", timeout=120,
                          headers={"Authorization": f"Bearer {PUBLISHER}"}) as client:
            for case, body in bodies:
                expected = expected_answer(case, body)
                sent_at = time.time()
                answer = client.post(f"/v1/events/{case.family}", content=body)
                is_json = answer.headers.get("content-type") == "application/json"
                report = answer.json() if is_json else {}  # a crash would be a plain-text 500
                got: tuple[Any, ...] = (answer.status_code,)
                want: tuple[Any, ...] = (expected.status,)
                if expected.status != 413:
                    got += (report.get("accepted"), report.get("rejected"), report.get("undelivered"),
                            [(error["index"], error["reason"]) for error in report.get("errors", [])])
                    want += (len(expected.accepted), expected.rejected, 0, list(expected.errors))
                if got != want:
                    wrong[case.name] = (got, want)
                records += delivered_records(case.family, list(expected.accepted), sent_at)
        assert not wrong, f"answers differ from the corpus's (got, expected): {wrong}"
        assert ingest.process is not None and ingest.process.poll() is None, ingest.log_text()
        assert ingest.get("/healthz") == 200
        metrics = ingest.metrics()
    finally:
        ingest.stop()
    accepted = expected_received(records)
    for family in FAMILY_NAMES:
        assert f'corridor_ingest_events_accepted_total{{family="{family}"}} {accepted[family]:.1f}' in metrics
        assert f'corridor_ingest_requests_total{{code="503",family="{family}"}} 0.0' in metrics
    print(f"{len(bodies)} bodies, {sum(accepted.values())} accepted events: {dict(accepted)}")

    worker = worker_for(fresh_broker, tmp_path, "w", app_id="corridor-ingest-hostile").start()
    scrape_time, samples = drain(worker, accepted, "the worker to receive every accepted event", timeout=60)
    assert asyncio.run(read_topic(fresh_broker.bootstrap, DEADLETTER_TOPIC)) == []
    reference = expected_metrics(records, scrape_time)
    for family in FAMILY_NAMES:
        assert reference.get(("corridor_events_accepted_total", (("stream", family),)), 0) == accepted[family]
    problems = mismatches(samples, reference)
    assert not problems, f"{len(problems)} samples differ, e.g. {problems[:8]}"


@pytest.mark.parametrize("kind", BROKER_KINDS)
def test_broker_down_is_503_naming_the_undelivered_events_and_a_retry_delivers_them_once(
    tmp_path: Path, kind: str
) -> None:
    with own_broker(kind, tmp_path) as broker:
        broker_down_is_503_and_a_retry_delivers_once(broker, tmp_path)


def broker_down_is_503_and_a_retry_delivers_once(broker: AnyBroker, tmp_path: Path) -> None:
    bootstrap = broker.bootstrap
    settings = broker_settings_for(bootstrap)
    events = recent_events(seed=43, per_family=6)["datachannel"]
    before, during = events[:1], events[1:]
    body = [*during[:2], {**during[2], "bytes": -1}, *during[2:]]
    ingest = IngestProcess(bootstrap, tmp_path / "ingest.log", {"CORRIDOR_PUBLISH_RETRY_TIMEOUT_S": "2"})
    worker = worker_for(broker, tmp_path, "w", app_id="corridor-ingest")
    # What was delivered before the outage and is still there after it: Apache Kafka keeps its log,
    # the embedded broker forgets everything.
    kept = before if isinstance(broker, KafkaCluster) else []
    records: list[Record] = []
    try:
        broker.start()
        asyncio.run(create_topics(settings))
        ingest.start()
        sent_at = time.time()
        assert ingest.post("datachannel", before).status == 202  # connected before the outage
        records += delivered_records("datachannel", kept, sent_at)
        broker.stop()
        down = ingest.post("datachannel", body)
        assert down.status == 503
        assert (down.body["accepted"], down.body["rejected"], down.body["undelivered"]) == (0, 1, 5)
        assert reasons(down) == [(2, "out_of_range"), *((index, "undelivered") for index in (0, 1, 3, 4, 5))]
        assert all("send it again" in error["message"] for error in down.body["errors"][1:])
        wait_for(lambda: ingest.get("/readyz") == 503, timeout=30, message="/readyz to see the broker gone")

        broker.start()  # embedded: memory storage, a new and empty broker; Apache Kafka: the same cluster
        asyncio.run(create_topics(settings))
        wait_for(lambda: ingest.get("/readyz") == 200, timeout=60, message="the ingest to see the broker again")
        for _ in range(2):  # the retry, and a second one from a client that lost the answer
            sent_at = time.time()
            again = ingest.post("datachannel", body)
            assert again.status == 202, again.body
            assert (again.body["accepted"], again.body["rejected"], again.body["undelivered"]) == (5, 1, 0)
            records += delivered_records("datachannel", during, sent_at)
        metrics = ingest.metrics()
        assert 'corridor_ingest_requests_total{code="503",family="datachannel"} 1.0' in metrics
        assert 'corridor_ingest_events_undelivered_total{family="datachannel"} 5.0' in metrics

        worker.start()
        wait_for(lambda: drained([worker], expected_received(records)), timeout=120,
                 message="the worker to receive every delivered event")
        scrape_time, samples = window_safe_now(worker)
    finally:
        worker.stop()
        ingest.stop()
    expected = expected_metrics(records, scrape_time)
    assert expected[("corridor_events_accepted_total", (("stream", "datachannel"),))] == len(during) + len(kept)
    problems = mismatches(samples, expected)
    assert not problems, f"{len(problems)} samples differ, e.g. {problems[:8]}"


def test_corridor_run_starts_the_ingest_when_tokens_are_set_and_stops_it_before_the_worker(tmp_path: Path) -> None:
    ingest_port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CORRIDOR_")} | {
        "CORRIDOR_BROKER_PORT": str(free_port()),
        "CORRIDOR_WEB_PORT": str(free_port()),
        "CORRIDOR_WEB_HOST": "127.0.0.1",
        "CORRIDOR_INGEST_PORT": str(ingest_port),
        "CORRIDOR_INGEST_TOKENS": json.dumps(TOKENS),
        "CORRIDOR_STATE_DIR": str(tmp_path / "state"),
        "CORRIDOR_APP_ID": f"run-ingest-{uuid.uuid4().hex[:8]}",
        "CORRIDOR_REBALANCE_TIMEOUT_S": "1.0",
    }
    output = tmp_path / "run.out"
    with open(output, "wb") as out:
        run = subprocess.Popen([*CORRIDOR, "run", "--no-simulate"], env=env, stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT)
    ingest = IngestProcess("", tmp_path / "unused.log", port=ingest_port)
    children: list[psutil.Process] = []
    try:
        url = f"http://127.0.0.1:{ingest_port}/v1/events/{{family}}"
        wait_for(lambda: f"ingest     {url}, pid" in output.read_text(), timeout=60, message="the ingest's address")
        children = psutil.Process(run.pid).children(recursive=True)
        wait_for(lambda: ingest.get("/readyz") == 200, timeout=60, message="the ingest to be ready")
        assert ingest.post("finance", [sample_event("finance")]).status == 202
        run.send_signal(signal.SIGINT)
        assert run.wait(90) == 0, output.read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for child in children:
            if child.is_running():
                child.kill()
    stopped = output.read_text()
    assert stopped.index("ingest stopped") < stopped.index("worker stopped") < stopped.index("embedded broker stopped")
    assert not [child.pid for child in children if psutil.pid_exists(child.pid)]
