"""Records as producers other than the SDK frame them, through a real broker and a real worker.

The replay's records are published plain, in Confluent's wire format (made by confluent-kafka's
own JSON serializer) and as CloudEvents in binary and structured mode (single and batches): the
worker's /metrics must equal the reference model's totals for the same events sent as plain
JSON. A wrong magic byte and bad CloudEvents land in the dead-letter topic with their reasons
and their original bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from schemas.export import family_json_schema
from schemas.families import DEADLETTER_TOPIC, FAMILIES, FAMILY_NAMES
from streams.worker.deadletter import parse_dead_letter_headers
from tests.integration.conftest import ON_BOTH_FRESH_BROKERS, read_topic
from tests.integration.workers import drain, expected_received, worker_for
from tests.replay import Record, ReplayData, expected_metrics, mismatches

pytestmark = pytest.mark.integration

MAPPED = ("event_id", "source", "event_time")
FORMS = ("plain", "confluent", "cloudevents-binary", "cloudevents-structured")


@dataclass
class Sent:
    """A record as the reference model sees it (plain JSON) and as it goes on the wire."""

    record: Record
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    form: str = "plain"


def cloudevent(event: dict) -> dict:
    return {"specversion": "1.0", "id": event["event_id"], "source": event["source"],
            "type": "org.corridor.event", "time": event["event_time"],
            "data": {name: value for name, value in event.items() if name not in MAPPED}}


def binary_headers(event: dict) -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", event["event_id"].encode()), ("ce_source", event["source"].encode()),
            ("ce_type", b"org.corridor.event"), ("ce_time", event["event_time"].encode()),
            ("content-type", b"application/json")]


def framed_by_confluent(serializers: dict[str, JSONSerializer], record: Record) -> bytes | None:
    try:
        return serializers[record.family](orjson.loads(record.value),
                                          SerializationContext(FAMILIES[record.family].topic, MessageField.VALUE))
    except SerializationError:  # an event the schema refuses: its producer would not send it like this
        return None


def with_single_events(records: list[Record]) -> list[Record]:
    """The records with every other envelope of valid events split into one record per event."""
    out: list[Record] = []
    for number, record in enumerate(records):
        if number % 2 and not record.invalid and len(record.events) > 1:
            out += [Record(record.family, record.key, orjson.dumps(event), record.timestamp, [event])
                    for event in record.events]
        else:
            out.append(record)
    return out


def in_every_form(records: list[Record]) -> list[Sent]:
    """Each record in the next form in turn; whole-record rejects and bad events stay plain JSON."""
    registry = SchemaRegistryClient.new_client({"url": "mock://interop"})
    serializers = {family: JSONSerializer(json.dumps(family_json_schema(family)), registry) for family in FAMILY_NAMES}
    out: list[Sent] = []
    for number, record in enumerate(records):
        form = FORMS[number % len(FORMS)]
        single = record.value[:1] == b"{"
        # CloudEvents carry id and time as attributes: an event rejected for its id or shape would be
        # rejected as an invalid CloudEvent instead, so only records of valid events go as CloudEvents.
        valid = all(reason in ("future_event_time", "stale_event_time") for _, reason in record.invalid)
        if not record.events or (form.startswith("cloudevents") and not valid):
            form = "plain"
        if form == "confluent":
            value = framed_by_confluent(serializers, record)
            out.append(Sent(record, record.value) if value is None else Sent(record, value, form=form))
        elif form == "cloudevents-binary" and single:
            event = record.events[0]
            out.append(Sent(record, orjson.dumps(cloudevent(event)["data"]), binary_headers(event), form))
        elif form.startswith("cloudevents") and single:
            out.append(Sent(record, orjson.dumps(cloudevent(record.events[0])), form="cloudevents-structured"))
        elif form.startswith("cloudevents"):
            batch = orjson.dumps([cloudevent(event) for event in record.events])
            headers = [("content-type", b"application/cloudevents-batch+json")] if number % 8 < 4 else []
            out.append(Sent(record, batch, headers, "cloudevents-batch"))
        else:
            out.append(Sent(record, record.value))
    return out


def rejected_on_the_wire(replay: ReplayData) -> list[Sent]:
    """A wrong magic byte and bad CloudEvents, with the reason each must be dead-lettered for."""
    out = []
    for family in FAMILY_NAMES:
        event = replay.MAKERS[family](replay)
        key = str(event[FAMILIES[family].key_field]).encode()
        timestamp = time.time()
        plain = orjson.dumps(event)
        # Reasons as the reference model sees them: the record as a whole is rejected.
        wrong_magic = Sent(Record(family, key, plain, timestamp, [], [(None, "invalid_wire_format")]),
                           b"\x01\x00\x00\x00\x01" + plain, form="wrong magic byte")
        no_version = Sent(Record(family, key, plain, timestamp, [], [(None, "invalid_cloudevent")]),
                          orjson.dumps({k: v for k, v in cloudevent(event).items() if k != "specversion"}),
                          [("content-type", b"application/cloudevents+json")], "cloudevent without specversion")
        bad_time = {**event, "event_time": "last tuesday"}
        time_header = [(name, b"last tuesday" if name == "ce_time" else value)
                       for name, value in binary_headers(event)]
        bad_record = Record(family, key, orjson.dumps(bad_time), timestamp, [bad_time], [(None, "invalid_value")])
        data = orjson.dumps(cloudevent(event)["data"])
        out += [wrong_magic, no_version, Sent(bad_record, data, time_header, "cloudevent with a bad time")]
    return out


async def publish(bootstrap: str, sent: list[Sent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(FAMILIES[s.record.family].topic, s.value, key=s.record.key,
                                timestamp_ms=s.record.timestamp_ms, headers=s.headers or None)
            for s in sent
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@ON_BOTH_FRESH_BROKERS
def test_confluent_and_cloudevents_records_count_exactly_like_plain_json(fresh_broker, tmp_path):
    replay = ReplayData(time.time(), seed=83)
    sent = in_every_form(with_single_events(replay.build(6_000))) + rejected_on_the_wire(replay)
    forms = Counter(s.form for s in sent)
    assert all(forms[form] >= 100 for form in ("plain", "confluent", "cloudevents-binary", "cloudevents-structured",
                                              "cloudevents-batch")), forms
    records = [s.record for s in sent]
    asyncio.run(publish(fresh_broker.bootstrap, sent))
    worker = worker_for(fresh_broker, tmp_path, "interop").start()
    scrape_time, samples = drain(worker, expected_received(records), "the worker to receive every event", timeout=180)
    problems = mismatches(samples, expected_metrics(records, scrape_time))
    assert not problems, f"{len(problems)} samples differ, e.g. {problems[:8]}"

    letters = asyncio.run(read_topic(fresh_broker.bootstrap, DEADLETTER_TOPIC))
    by_reason: dict[str, list] = {}
    for letter in letters:
        by_reason.setdefault(parse_dead_letter_headers(list(letter.headers))["reason"], []).append(letter)
    wrong_magic = [s.value for s in sent if s.form == "wrong magic byte"]
    assert sorted(letter.value for letter in by_reason["invalid_wire_format"]) == sorted(wrong_magic)
    no_version = [s.value for s in sent if s.form == "cloudevent without specversion"]
    assert sorted(letter.value for letter in by_reason["invalid_cloudevent"]) == sorted(no_version)
    bad_time = {s.value for s in sent if s.form == "cloudevent with a bad time"}
    from_time = [parse_dead_letter_headers(list(letter.headers)) for letter in by_reason["invalid_value"]
                 if letter.value in bad_time]
    assert len(from_time) == len(FAMILY_NAMES)
    assert all(headers["error"].startswith("event_time (from the CloudEvent's ce_time): ") for headers in from_time)
