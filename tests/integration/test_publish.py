"""Publishing with the SDK and the CLI, read back with a plain consumer; delivery across broker outages."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiokafka import ConsumerRecord

from schemas.export import family_json_schema
from schemas.families import FAMILIES
from schemas.samples import sample_event
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker
from streams.sdk import DELIVERED, INVALID, UNDELIVERED, Publisher
from streams.settings import Settings
from tests.integration.conftest import CORRIDOR, broker_settings_for, free_port, read_topic

pytestmark = pytest.mark.integration

ROUTES = ("CNCKG-CNQZH-SGSIN", "CNCKG-SGSIN", "CNCKG-VNHAN")


def tagged(family: str, tag: str, count: int, **overrides: Any) -> list[dict[str, Any]]:
    """``count`` valid events whose ``source`` is ``tag``, so a test finds its own among shared topics."""
    return [sample_event(family, source=tag, **overrides) for _ in range(count)]


def messages_from(records: list[ConsumerRecord[bytes, bytes]], tag: str) -> list[ConsumerRecord[bytes, bytes]]:
    return [record for record in records if f'"source":"{tag}"'.encode() in record.value]


def check_envelopes(family: str, records: list[ConsumerRecord[bytes, bytes]]) -> list[dict[str, Any]]:
    """Every value valid against the exported schema and keyed by the family's key field; returns the events."""
    validator = jsonschema.Draft202012Validator(family_json_schema(family))
    events = []
    for record in records:
        value = json.loads(record.value)
        validator.validate(value)
        assert isinstance(value, list)
        assert {str(event[FAMILIES[family].key_field]) for event in value} == {record.key.decode()}
        events.extend(value)
    return events


async def test_sdk_publishes_keyed_schema_valid_envelopes(broker_settings: Settings) -> None:
    tag = f"sdk-{uuid.uuid4().hex[:8]}"
    good = [event for route in ROUTES for event in tagged("shipments", tag, 4, route=route)]
    events: list[Any] = [*good[:6], sample_event("shipments", source=tag, teu=-2), *good[6:]]
    async with Publisher(broker_settings) as publisher:
        report = await publisher.publish("shipments", events)
    assert [outcome.status for outcome in report.outcomes] == [DELIVERED] * 6 + [INVALID] + [DELIVERED] * 6
    assert report.indices(INVALID) == [6]

    records = messages_from(await read_topic(broker_settings.bootstrap, FAMILIES["shipments"].topic), tag)
    assert len(records) == len(ROUTES)  # one envelope per route
    published = check_envelopes("shipments", records)
    assert sorted(event["event_id"] for event in published) == sorted(event["event_id"] for event in good)
    where = {(record.partition, record.offset) for record in records}
    delivered = [outcome for outcome in report.outcomes if outcome.status == DELIVERED]
    assert {(outcome.partition, outcome.offset) for outcome in delivered} == where


async def test_envelopes_are_bounded_by_the_batch_settings(broker: EmbeddedBroker) -> None:
    settings = broker_settings_for(broker.bootstrap, publish_batch_events=4)
    tag = f"bounded-{uuid.uuid4().hex[:8]}"
    async with Publisher(settings) as publisher:
        report = await publisher.publish("finance", tagged("finance", tag, 10, instrument="bond"))
    assert report.ok
    records = messages_from(await read_topic(broker.bootstrap, FAMILIES["finance"].topic), tag)
    assert sorted(len(json.loads(record.value)) for record in records) == [2, 4, 4]
    assert {record.key for record in records} == {b"bond"}
    assert len(check_envelopes("finance", records)) == 10


async def test_send_raw_delivers_the_bytes_as_given(
    broker_settings: Settings, new_topic: Callable[..., Any]
) -> None:
    topic = await new_topic("raw", partitions=1)
    async with Publisher(broker_settings) as publisher:
        sent = await publisher.send_raw(topic, b"not even json", key=b"k1")
        await publisher.send_raw(topic, b"{}")
    (first, second) = await read_topic(broker_settings.bootstrap, topic)
    assert (first.key, first.value, first.offset) == (b"k1", b"not even json", sent.offset)
    assert (second.key, second.value) == (None, b"{}")


def run_corridor(broker: EmbeddedBroker, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"CORRIDOR_KAFKA_BOOTSTRAP": broker.bootstrap}
    return subprocess.run([*CORRIDOR, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)


async def test_cli_publishes_valid_lines_and_reports_bad_ones(broker: EmbeddedBroker, tmp_path: Path) -> None:
    tag = f"cli-{uuid.uuid4().hex[:8]}"
    good = tagged("flights", tag, 5)
    lines = [json.dumps(event) for event in good[:2]]
    lines += [json.dumps(sample_event("flights", source=tag, carrier="Scoot")), "{oops"]
    lines += [json.dumps(event) for event in good[2:]]
    path = tmp_path / "flights.jsonl"
    path.write_text("\n".join(lines) + "\n")

    run = run_corridor(broker, "publish", "flights", str(path), "--json")
    assert run.returncode == 1, run.stderr
    summary = json.loads(run.stdout)
    assert (summary["valid"], summary["invalid"], summary["published"], summary["undelivered"]) == (5, 2, 5, 0)
    assert [(error["line"], error["reason"]) for error in summary["errors"]] == [
        (3, "invalid_value"),
        (4, "invalid_json"),
    ]
    records = messages_from(await read_topic(broker.bootstrap, FAMILIES["flights"].topic), tag)
    published = check_envelopes("flights", records)
    assert sorted(event["event_id"] for event in published) == sorted(event["event_id"] for event in good)
    assert {record.key for record in records} == {b"CKG-SIN"}


async def test_cli_publishes_a_json_array_from_stdin(broker: EmbeddedBroker) -> None:
    tag = f"stdin-{uuid.uuid4().hex[:8]}"
    events = tagged("datachannel", tag, 3, link_id="CQ-SG-1") + tagged("datachannel", tag, 2, link_id="CQ-SG-2")
    run = run_corridor(broker, "publish", "datachannel", "-", stdin=json.dumps(events, indent=2))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "5 valid, 0 invalid, 5 published"
    records = messages_from(await read_topic(broker.bootstrap, FAMILIES["datachannel"].topic), tag)
    assert sorted((record.key, len(json.loads(record.value))) for record in records) == [
        (b"CQ-SG-1", 3),
        (b"CQ-SG-2", 2),
    ]
    check_envelopes("datachannel", records)


async def test_an_unreachable_broker_yields_an_undelivered_report() -> None:
    settings = broker_settings_for(f"127.0.0.1:{free_port()}", publish_retry_timeout_s=1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with Publisher(settings) as publisher:
        report = await publisher.publish("shipments", [sample_event("shipments"), sample_event("shipments", teu=-1)])
    assert [outcome.status for outcome in report.outcomes] == [UNDELIVERED, INVALID]
    assert "KafkaConnectionError" in (report.outcomes[0].error or "")
    assert loop.time() - started < 5


async def test_publish_retries_until_the_broker_comes_up() -> None:
    port = free_port()
    settings = broker_settings_for(f"127.0.0.1:{port}", publish_retry_timeout_s=15.0)
    broker = EmbeddedBroker(port=port)

    async def start_later() -> None:
        await asyncio.sleep(1.0)
        broker.start()
        await create_topics(settings)

    try:
        async with Publisher(settings) as publisher:
            starter = asyncio.create_task(start_later())
            report = await publisher.publish("flights", tagged("flights", "late", 3))
            await starter
        assert report.ok
        assert len(check_envelopes("flights", await read_topic(broker.bootstrap, FAMILIES["flights"].topic))) == 3
    finally:
        broker.stop()


async def test_a_publisher_outlives_a_broker_outage() -> None:
    port = free_port()
    settings = broker_settings_for(f"127.0.0.1:{port}", publish_retry_timeout_s=1.5)
    broker = EmbeddedBroker(port=port)
    try:
        broker.start()
        await create_topics(settings)
        async with Publisher(settings) as publisher:
            assert (await publisher.publish("finance", tagged("finance", "before", 2))).ok
            broker.stop()
            lost = await publisher.publish("finance", tagged("finance", "during", 2))
            assert [outcome.status for outcome in lost.outcomes] == [UNDELIVERED, UNDELIVERED]
            broker.start()  # memory storage: a new, empty broker
            await create_topics(settings)
            assert (await publisher.publish("finance", tagged("finance", "after", 2))).ok
        records = await read_topic(broker.bootstrap, FAMILIES["finance"].topic)
        assert {event["source"] for event in check_envelopes("finance", records)} == {"after"}
    finally:
        broker.stop()


async def test_closing_after_an_abandoned_publish_returns_within_the_retry_timeout() -> None:
    port = free_port()
    settings = broker_settings_for(f"127.0.0.1:{port}", publish_retry_timeout_s=1.0)
    with EmbeddedBroker(port=port) as broker:
        await create_topics(settings)
        publisher = Publisher(settings)
        assert (await publisher.publish("flights", tagged("flights", "before", 1))).ok
        broker.stop()
        publishing = asyncio.create_task(publisher.publish("flights", tagged("flights", "lost", 1)))
        await asyncio.sleep(0.3)
        publishing.cancel()
        await asyncio.wait_for(publisher.close(), timeout=5)  # an idempotent producer alone would hang
        assert publishing.cancelled()
