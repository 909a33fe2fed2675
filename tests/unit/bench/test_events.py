"""The bench's events: valid, unique, recent, in the family mix; envelopes and single records as producers send them."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.families import FAMILIES, FAMILY_NAMES
from schemas.validation import ValidationRules, validate_record
from streams.bench.events import (
    ENVELOPE_EVENTS,
    MIX,
    SPREAD_S,
    Envelopes,
    EventSource,
    OwnShipments,
    RouteSpread,
    envelope_bytes,
    family_cycle,
    registry_with_routes,
    shipment_routes,
    single_records,
)
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.settings import Settings

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def source() -> EventSource:
    return EventSource(seed=3, per_family=50)


def test_event_ids_are_unique_across_takes_and_carry_the_seed(source: EventSource) -> None:
    events = source.take(3_000, NOW) + source.take(2_000, NOW + 60)
    ids = [event.fields["event_id"] for event in events]
    assert len(set(ids)) == len(ids) == 5_000
    assert all(f"/b{source.tag}-" in event_id and len(event_id) <= 128 for event_id in ids)
    assert EventSource(seed=4, per_family=5).tag != source.tag


def test_events_follow_the_mix(source: EventSource) -> None:
    events = source.take(20 * 100, NOW)
    assert Counter(event.family for event in events) == {family: share * 100 for family, share in MIX.items()}
    assert sorted(family_cycle(0)) == sorted(family_cycle(1))
    assert len(family_cycle(0)) == sum(MIX.values())


def test_event_times_lie_just_before_now_and_other_times_keep_their_spacing(source: EventSource) -> None:
    events = source.take(400, NOW)
    times = [datetime.fromisoformat(event.fields["event_time"]).timestamp() for event in events]
    assert all(NOW - SPREAD_S < moment <= NOW for moment in times)
    departed = [event.fields for event in events if event.fields.get("status") == "departed"]
    assert departed, "the flights' templates hold departures"
    for fields in departed:
        # A departure's actual time is its event time; it was scheduled no later.
        assert fields["actual_time"] == fields["event_time"]
        assert fields["scheduled_time"] <= fields["actual_time"]


def test_every_event_is_valid_and_keyed_by_its_family_key_field(source: EventSource) -> None:
    rules = ValidationRules.from_settings(Settings())
    events = source.take(1_000, NOW)
    reference = datetime.fromtimestamp(NOW, UTC)
    for record in single_records(events):
        result = validate_record(record.family, record.value, rules, reference_time=reference)
        assert not result.errors, result.errors[0].message
        assert record.key == str(json.loads(record.value)[FAMILIES[record.family].key_field]).encode()
        assert record.topic == FAMILIES[record.family].topic


def test_envelopes_hold_one_family_and_key_and_at_most_their_size(source: EventSource) -> None:
    events = source.take(5_000, NOW)
    batcher = Envelopes(size=ENVELOPE_EVENTS)
    full = batcher.add(events)
    rest = batcher.flush()
    assert all(record.events == ENVELOPE_EVENTS for record in full)
    assert all(0 < record.events < ENVELOPE_EVENTS for record in rest)
    assert batcher.flush() == []
    assert sum(record.events for record in full + rest) == 5_000
    rules = ValidationRules.from_settings(Settings())
    for record in full + rest:
        items = json.loads(record.value)
        assert len(items) == record.events
        key_field = FAMILIES[record.family].key_field
        assert {str(item[key_field]).encode() for item in items} == {record.key}
        assert not validate_record(record.family, record.value, rules,
                                   reference_time=datetime.fromtimestamp(NOW, UTC)).errors
    assert {record.family for record in full + rest} == set(FAMILY_NAMES)


def test_envelope_bytes_counts_the_events_json_only(source: EventSource) -> None:
    events = source.take(7, NOW)
    singles = list(single_records(events))
    batcher = Envelopes(size=1_000)
    batcher.add(events)
    envelopes = batcher.flush()
    assert sum(envelope_bytes(record) for record in envelopes) == sum(len(record.value) for record in singles)
    assert all(envelope_bytes(record) == len(record.value) for record in singles)


def test_route_spread_moves_shipments_onto_every_route_in_turn_and_keys_them_by_it(
        source: EventSource, tmp_path: Path) -> None:
    routes = shipment_routes(30)
    assert len(set(routes)) == 30
    registry_file = tmp_path / "registry.json"
    registry_file.write_bytes(registry_with_routes(routes))
    registry = Registry.load(registry_file)
    assert [registry.route(route) for route in routes] == routes  # every route is known: none is "other"
    assert registry.route("CNCKG-CNQZH-SGSIN") == "other"  # the built-in routes are not
    spread = RouteSpread(routes)
    events = spread.apply(source.take(200, NOW)) + spread.apply(source.take(200, NOW))
    shipments = [event for event in events if event.family == "shipments"]
    assert [event.fields["route"] for event in shipments] == [routes[i % 30] for i in range(len(shipments))]
    assert all(event.key == event.fields["route"].encode() for event in shipments)
    assert all(event.fields["origin"] == event.fields["route"][:5] for event in shipments)
    others = [event for event in events if event.family != "shipments"]
    assert others and all("route" not in event.fields or event.fields["route"] not in routes for event in others)
    rules = ValidationRules.from_settings(Settings())
    for record in single_records(shipments):
        assert not validate_record("shipments", record.value, rules,
                                   reference_time=datetime.fromtimestamp(NOW, UTC)).errors


def test_own_shipments_give_every_shipment_event_a_shipment_of_its_own_at_the_default_place(
        source: EventSource) -> None:
    departures = OwnShipments("departed")
    events = departures.apply(source.take(400, NOW)) + departures.apply(source.take(400, NOW))
    shipments = [event for event in events if event.family == "shipments"]
    ids = [event.fields["shipment_id"] for event in shipments]
    assert len(set(ids)) == len(ids) == 7 * 40 and ids[0] == "SHP-bench-000000001"
    assert all(event.fields["milestone"] == "departed" for event in shipments)
    assert all("location" not in event.fields and "planned_arrival" not in event.fields for event in shipments)
    assert all(event.key == event.fields["route"].encode() for event in shipments)
    others = [event for event in events if event.family != "shipments"]
    assert others and all("shipment_id" not in event.fields for event in others)


@pytest.mark.parametrize(("milestone", "journeys"), [("departed", 600), ("customs_cleared", 0)])
def test_as_departures_every_shipment_opens_a_journey_in_transit_and_as_clearances_none(
        milestone: str, journeys: int) -> None:
    now = datetime.now(UTC).timestamp()
    events = OwnShipments(milestone).apply(EventSource(seed=0, per_family=50, mix={"shipments": 1}).take(600, now))
    processor = FamilyProcessor("shipments", Settings(), Registry.load(None))
    state = processor.new_state()
    batcher = Envelopes()
    for offset, record in enumerate(batcher.add(events) + batcher.flush()):
        assert not processor.process(state, 0, offset, now, record.value).dead_letters
    assert state.counters["events_accepted"][()] == 600
    assert state.journeys is not None and len(state.journeys) == journeys
    assert sum(state.journeys.in_transit.values()) == journeys
