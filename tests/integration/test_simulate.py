"""`corridor simulate` against the test broker: what it reports publishing is what a plain consumer reads."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest

from schemas.families import FAMILIES, FAMILY_NAMES
from schemas.validation import ValidationRules, validate_record
from streams.kafka.broker import EmbeddedBroker
from streams.sdk.producer import message_key
from streams.settings import Settings
from tests.integration.conftest import CORRIDOR, read_topic

pytestmark = pytest.mark.integration


def published_per_family(summary: str) -> dict[str, int]:
    rows = [line.split() for line in summary.splitlines()]
    return {row[0]: int(row[1]) for row in rows if row and row[0] in FAMILY_NAMES}


def test_simulate_publishes_all_four_families_that_a_plain_consumer_reads_back(broker: EmbeddedBroker) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CORRIDOR_")}
    env["CORRIDOR_KAFKA_BOOTSTRAP"] = broker.bootstrap
    since_ms = int(time.time() * 1000)
    result = subprocess.run(
        [*CORRIDOR, "simulate", "--duration", "7200", "--speed", "36000", "--seed", "11"],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    published = published_per_family(result.stdout)
    assert set(published) == set(FAMILY_NAMES)
    assert all(count > 0 for count in published.values()), result.stdout
    assert "undelivered" in result.stdout.splitlines()[0]
    assert result.stdout.splitlines()[-1].split()[-2:] == ["0", "0"]  # total: none invalid, none undelivered

    rules = ValidationRules.from_settings(Settings())
    tags = set()
    for family in FAMILY_NAMES:
        records = [
            record for record in asyncio.run(read_topic(broker.bootstrap, FAMILIES[family].topic))
            if record.timestamp >= since_ms
        ]
        events = []
        for record in records:
            validated = validate_record(family, record.value, rules)
            assert not validated.errors, validated.errors[0]
            assert {message_key(event, FAMILIES[family].key_field) for event in validated.events} == {record.key}
            events.extend(validated.events)
        assert len(events) == published[family], family
        assert len({event.event_id for event in events}) == len(events), f"{family}: an event was read twice"
        # Event ids carry the run's tag (e.g. SHP-1a2b3c4d-0000042/departed): all from this run.
        tags |= {event.event_id.split("-")[1] for event in events}
    assert len(tags) == 1, tags
