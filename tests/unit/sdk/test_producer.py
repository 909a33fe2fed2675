"""The producer SDK without a broker: validation in chunks, envelopes, reports."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from schemas.families import FAMILIES
from schemas.samples import sample_event
from schemas.validation import RejectReason, ValidationRules
from streams.sdk import producer
from streams.sdk.producer import (
    INVALID,
    Publisher,
    build_envelopes,
    message_key,
    validate_events,
)
from streams.settings import Settings

ROUTES = ("CNCKG-CNQZH-SGSIN", "CNCKG-SGSIN", "CNQZH-SGSIN")


@pytest.fixture
def rules() -> ValidationRules:
    return ValidationRules.from_settings(Settings())


def shipments(count: int, **overrides: object) -> list:
    return [
        FAMILIES["shipments"].model.model_validate_json(
            json.dumps(sample_event("shipments", route=ROUTES[i % 3], event_id=f"e{i}", **overrides))
        )
        for i in range(count)
    ]


def test_envelopes_group_events_by_key_and_keep_input_order() -> None:
    events = shipments(9)
    envelopes = build_envelopes(events, list(range(9)), "route", max_events=500, max_bytes=512 * 1024)
    assert sorted(envelope.key for envelope in envelopes) == sorted(route.encode() for route in ROUTES)
    for envelope in envelopes:
        items = json.loads(envelope.value)
        assert {item["route"] for item in items} == {envelope.key.decode()}
        assert [item["event_id"] for item in items] == [f"e{index}" for index in envelope.indices]
    assert sorted(index for envelope in envelopes for index in envelope.indices) == list(range(9))


def test_envelope_value_is_the_json_array_of_model_dump_json() -> None:
    events = shipments(3)[:1] * 2
    (envelope,) = build_envelopes(events, [4, 7], "route", max_events=10, max_bytes=512 * 1024)
    assert envelope.value == b"[" + b",".join(event.model_dump_json().encode() for event in events) + b"]"
    assert envelope.indices == (4, 7)


def test_envelopes_respect_the_event_bound() -> None:
    events = [event for event in shipments(21) if event.route == ROUTES[0]]  # 7 events, one key
    envelopes = build_envelopes(events, list(range(7)), "route", max_events=3, max_bytes=512 * 1024)
    assert [envelope.indices for envelope in envelopes] == [(0, 1, 2), (3, 4, 5), (6,)]


def test_envelopes_respect_the_byte_bound_and_an_oversized_event_travels_alone() -> None:
    events = [event for event in shipments(12) if event.route == ROUTES[0]]  # 4 events, one key
    size = len(events[0].model_dump_json())
    two_fit = 2 + 2 * size + 1
    envelopes = build_envelopes(events, list(range(4)), "route", max_events=100, max_bytes=two_fit)
    assert [envelope.indices for envelope in envelopes] == [(0, 1), (2, 3)]
    assert all(len(envelope.value) <= two_fit for envelope in envelopes)
    alone = build_envelopes(events, list(range(4)), "route", max_events=100, max_bytes=size // 2)
    assert [envelope.indices for envelope in alone] == [(0,), (1,), (2,), (3,)]


def test_message_key_of_an_enum_field_is_its_value() -> None:
    event = FAMILIES["finance"].model.model_validate_json(json.dumps(sample_event("finance", instrument="bond")))
    assert message_key(event, "instrument") == b"bond"


def test_validate_events_reports_input_indices_across_chunks(
    rules: ValidationRules, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(producer, "VALIDATION_CHUNK_EVENTS", 3)
    events: list = [sample_event("shipments", event_id=f"e{i}") for i in range(8)]
    events[1]["teu"] = -1
    events[6]["mode"] = "boat"
    events[4] = FAMILIES["shipments"].model.model_validate_json(json.dumps(events[4]))  # a model is fine too
    result = validate_events("shipments", events, rules)
    assert result.total == 8
    assert [(error.index, error.reason) for error in result.errors] == [
        (1, RejectReason.OUT_OF_RANGE),
        (6, RejectReason.INVALID_VALUE),
    ]
    assert [event.event_id for event in result.events] == ["e0", "e2", "e3", "e4", "e5", "e7"]


def test_validate_events_judges_an_oversized_or_unwritable_event_alone(rules: ValidationRules) -> None:
    small = ValidationRules(rules.currencies, rules.future_tolerance, 2048, rules.max_events_per_record)
    events: list = [sample_event("shipments", event_id=f"e{i}") for i in range(4)]
    events[1]["carrier"] = "x" * 3000
    events[3]["declared_value"] = object()
    result = validate_events("shipments", events, small)
    assert [(error.index, error.reason) for error in result.errors] == [
        (1, RejectReason.TOO_LARGE),
        (3, RejectReason.NOT_AN_EVENT),
    ]
    assert [event.event_id for event in result.events] == ["e0", "e2"]


def test_validate_events_writes_decimals_as_json_numbers(rules: ValidationRules) -> None:
    event = sample_event("finance", amount=Decimal("1250000.50"), currency="SGD")
    result = validate_events("finance", [event], rules)
    assert not result.errors
    assert result.events[0].amount == Decimal("1250000.50")


async def test_publish_of_only_invalid_events_reports_them_without_a_broker() -> None:
    # Nothing listens on port 1: a connection attempt would surface as "undelivered".
    settings = Settings(kafka_bootstrap="127.0.0.1:1", publish_retry_timeout_s=0.5)
    events = [sample_event("flights", passengers=-1), {"event_id": "x"}]
    async with Publisher(settings) as publisher:
        report = await publisher.publish("flights", events)
    assert [outcome.status for outcome in report.outcomes] == [INVALID, INVALID]
    assert report.invalid == 2 and report.delivered == 0 and not report.ok
    assert report.outcomes[0].rejection.reason == RejectReason.OUT_OF_RANGE
    assert report.topic == "corridor.flights.v1"


async def test_publish_refuses_an_unknown_family() -> None:
    async with Publisher(Settings(kafka_bootstrap="127.0.0.1:1")) as publisher:
        with pytest.raises(ValueError, match="unknown family"):
            await publisher.publish("ships", [])
