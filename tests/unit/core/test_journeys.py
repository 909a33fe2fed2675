"""Shipments in flight: transit, legs, dwell, on time, in transit, overdue and eviction, and the book's checkpoints."""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections import defaultdict
from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.core.checkpoint import head_key, journey_key, plan_checkpoint, read_checkpoint
from streams.core.clock import ManualClock
from streams.core.journeys import COMPACT_SLACK, JourneyBook, overdue_report
from streams.core.processor import FamilyProcessor, rejected_reasons
from streams.core.registry import Registry
from streams.core.state import PartitionState
from streams.settings import Settings
from streams.worker.metrics import CorridorCollector, ExportedPartition, build_registry
from tests.replay import ReplayData, expected_metrics, mismatches, partition_of

NOW = datetime(2026, 11, 26, 12, 0, 7, tzinfo=UTC).timestamp()
DAY, HOUR = 86400, 3600
REGISTRY = Registry.load(None)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


class Exported:
    def __init__(self, states_by_family):
        self.states_by_family = states_by_family

    def exported(self, family):
        return [ExportedPartition(p, f"owner-{p}", state.view())
                for p, state in sorted(self.states_by_family.get(family, {}).items())]


def scrape(states_by_family, now) -> dict[tuple[str, tuple], float]:
    families = ["shipments", "flights", "finance", "datachannel"]
    collector = CorridorCollector(Exported(states_by_family), families, rejected_reasons(), clock=ManualClock(now))
    samples: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(generate_latest(build_registry(collector)).decode()):
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k not in ("partition", "owner")}
            key = (s.name, tuple(sorted(labels.items())))
            samples[key] = samples.get(key, 0.0) + s.value
    return samples


@pytest.mark.parametrize("seed", [3, 17])
def test_the_processor_agrees_with_the_independent_reference_on_every_sample(seed):
    """Version 1 and 2 shipments mixed (journeys, transit, legs, dwell, on time, in transit, overdue) and every
    other family, applied partition by partition, with a checkpoint round trip half way; no broker."""
    records = ReplayData(NOW, seed=seed).build(6000)
    families = ("shipments", "flights", "finance", "datachannel")
    processors = {family: FamilyProcessor(family, Settings(), REGISTRY) for family in families}
    states: dict[str, dict[int, object]] = defaultdict(dict)
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    for index, record in enumerate(records):
        partition = partition_of(record.key)
        processor = processors[record.family]
        state = states[record.family].setdefault(partition, processor.new_state())
        processor.process(state, partition, offsets[record.family, partition], record.timestamp, record.value)
        offsets[record.family, partition] += 1
        if index == len(records) // 2:  # every state through its changelog records and back
            for family, by_partition in states.items():
                for p, live in list(by_partition.items()):
                    store = {}
                    for key, value in plan_checkpoint(p, live, {}).records:
                        store[key] = value
                    by_partition[p] = read_checkpoint(p, store.get, processors[family].restore_state)
    expected = expected_metrics(records, NOW)
    assert any(name == "corridor_shipment_transit_seconds_count" for name, _ in expected)
    assert any(name == "corridor_shipment_dwell_seconds_count" for name, _ in expected)
    assert any(name == "corridor_shipments_overdue" for name, _ in expected)
    assert not mismatches(scrape(states, NOW), expected), f"seed {seed}"


def shipment(event_id, t, milestone, **fields) -> bytes:
    event = {
        "event_id": event_id, "event_time": iso(t), "source": "cq-rail-ops", "shipment_id": "S1",
        "corridor": "ILSTC", "route": "CNCKG-CNQZH-SGSIN", "mode": "rail_sea", "milestone": milestone,
        "teu": 2, "gross_weight_kg": 24000, "origin": "CNCKG", "destination": "SGSIN", "carrier": "CR Express",
    }
    event.update(fields)
    return orjson.dumps(event)


def apply(processor, state, *events: bytes, at: float) -> None:
    for raw in events:
        processor.process(state, 0, state.offset + 1, at, raw)


def test_a_rail_sea_journey_gives_its_transit_legs_and_dwell_at_qinzhou_and_leaves_the_state():
    processor = FamilyProcessor("shipments", Settings(), REGISTRY)
    state = processor.new_state()
    t0 = NOW - 6 * DAY
    apply(processor, state,
          shipment("b", t0, "booked", planned_arrival=iso(t0 + 8 * DAY)),
          shipment("d1", t0 + HOUR, "departed", location="CNCKG", planned_time=iso(t0 + HOUR - 600)),
          shipment("a1", t0 + 2 * DAY, "arrived", location="CNQZH"),
          shipment("d2", t0 + 3 * DAY, "departed", location="CNQZH", planned_time=iso(t0 + 1.5 * DAY)),
          at=t0 + 3 * DAY)
    view = state.view()
    assert view.in_transit == {("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea"): 1}
    dwell = view.histograms["shipment_dwell"][("ILSTC", "CNCKG-CNQZH-SGSIN", "CNQZH")]
    assert (dwell.count, dwell.sum_ms) == (1, DAY * 1000)
    leg = view.histograms["shipment_leg"][("ILSTC", "CNCKG-CNQZH-SGSIN", "CNCKG-CNQZH")]
    assert (leg.count, leg.sum_ms) == (1, (2 * DAY - HOUR) * 1000)
    # The departure from Qinzhou is not volume again: TEU count once, at the origin.
    assert state.counters["shipment_teu"][("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea")] == 2000
    punctual = state.counters["shipment_punctuality"]
    assert punctual[("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea", "departed", "on_time")] == 1
    assert punctual[("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea", "departed", "late")] == 1  # 1.5 days late
    apply(processor, state, shipment("a2", t0 + 8 * DAY, "arrived", location="SGSIN"), at=t0 + 8 * DAY)
    transit = state.histograms["shipment_transit"][("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea")]
    assert (transit.count, transit.sum_ms) == (1, (8 * DAY - HOUR) * 1000)
    assert len(state.journeys) == 0 and state.view().in_transit == {}


def test_version_1_events_mean_what_they_meant_departed_at_the_origin_arrived_at_the_destination():
    processor = FamilyProcessor("shipments", Settings(), REGISTRY)
    state = processor.new_state()
    t0 = NOW - 5 * DAY
    apply(processor, state, shipment("d", t0, "departed"), shipment("a", t0 + 4 * DAY, "arrived"), at=NOW)
    transit = state.histograms["shipment_transit"][("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea")]
    assert (transit.count, transit.sum_ms) == (1, 4 * DAY * 1000)
    assert "shipment_dwell" not in state.histograms and len(state.journeys) == 0


def test_cancelled_and_delivered_shipments_leave_the_state_and_later_milestones_start_nothing():
    processor = FamilyProcessor("shipments", Settings(), REGISTRY)
    state = processor.new_state()
    apply(processor, state, shipment("b1", NOW - DAY, "booked"), shipment("c1", NOW - HOUR, "cancelled"),
          shipment("b2", NOW - DAY, "booked", shipment_id="S2"), shipment("x", NOW - 60, "delivered", shipment_id="S2"),
          shipment("y", NOW - 30, "customs_cleared", shipment_id="S3"), at=NOW)
    assert len(state.journeys) == 0


def test_overdue_counts_planned_arrival_plus_the_modes_tolerance_against_the_wall_clock():
    processor = FamilyProcessor("shipments", Settings(), REGISTRY)
    state = processor.new_state()
    planned = NOW - 3 * DAY
    apply(processor, state,
          shipment("d1", NOW - 5 * DAY, "departed", planned_arrival=iso(planned)),
          shipment("d2", NOW - 5 * DAY, "departed", shipment_id="S2", mode="rail", planned_arrival=iso(planned)),
          at=NOW)
    labels_sea = ("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea")
    labels_rail = ("ILSTC", "CNCKG-CNQZH-SGSIN", "rail")
    view = state.view()
    # rail_sea may be a day late, rail 6 hours.
    assert view.gauge("overdue", planned + DAY - 1) == {labels_sea: 0, labels_rail: 1}
    assert view.gauge("overdue", planned + DAY + 1) == {labels_sea: 1, labels_rail: 1}
    listed = sorted((o.journey.shipment_id, o.late_seconds) for o in state.journeys.overdue(NOW))
    assert listed == [("S1", 3 * DAY), ("S2", 3 * DAY)]


def test_the_overdue_report_lists_the_latest_first_across_partitions_up_to_the_limit():
    processor = FamilyProcessor("shipments", Settings(), REGISTRY)
    books = {0: processor.new_state(), 1: processor.new_state()}

    def departed(partition: int, shipment_id: str, planned_days_ago: float, **fields) -> None:
        apply(processor, books[partition], shipment(f"d-{shipment_id}", NOW - 6 * DAY, "departed",
                                                    shipment_id=shipment_id,
                                                    planned_arrival=iso(NOW - planned_days_ago * DAY), **fields),
              at=NOW)

    departed(0, "S-B", 2)
    departed(0, "S-A", 5, location="CNCKG")
    departed(1, "S-E", 3)
    departed(1, "S-C", 3)  # as late as S-E: the shipment id orders them
    departed(1, "S-D", 0.5)  # within rail_sea's day of tolerance: not overdue yet
    held = [(partition, state.journeys) for partition, state in books.items()]

    full = overdue_report(held, NOW, limit=10)
    assert (full["now"], full["total"], full["truncated"]) == (NOW, 4, False)
    assert [(s["shipment_id"], s["partition"]) for s in full["shipments"]] == [
        ("S-A", 0), ("S-C", 1), ("S-E", 1), ("S-B", 0)]
    assert full["shipments"][0] == {
        "shipment_id": "S-A", "corridor": "ILSTC", "route": "CNCKG-CNQZH-SGSIN", "mode": "rail_sea",
        "last_milestone": "departed", "last_location": "CNCKG",
        "last_event_time": iso(NOW - 6 * DAY).replace("+00:00", "Z"),
        "planned_arrival": iso(NOW - 5 * DAY).replace("+00:00", "Z"), "late_seconds": 5 * DAY, "partition": 0,
    }
    assert overdue_report(held, NOW, limit=4) == full
    cut = overdue_report(held, NOW, limit=2)
    assert (cut["total"], cut["truncated"], cut["shipments"]) == (4, True, full["shipments"][:2])
    assert overdue_report([], NOW, limit=2) == {"now": NOW, "total": 0, "truncated": False, "shipments": []}


def test_a_shipment_nothing_was_heard_of_for_the_horizon_is_evicted_once_and_counted():
    settings = Settings(shipment_horizon=10 * DAY)
    processor = FamilyProcessor("shipments", settings, REGISTRY)
    state = processor.new_state()
    apply(processor, state, shipment("d", NOW - 6 * DAY, "departed"), at=NOW - 6 * DAY)
    # Records move the partition's clock; nothing is evicted until it is past the horizon (by the hour).
    apply(processor, state, shipment("o", NOW, "booked", shipment_id="S9"), at=NOW)
    assert "S1" in state.journeys.journeys
    apply(processor, state, shipment("o2", NOW, "booked", shipment_id="S8"), at=NOW + 5 * DAY)
    assert "S1" not in state.journeys.journeys
    assert state.counters["shipments_evicted"] == {("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea"): 1}
    assert state.view().in_transit == {}


def book_state(book: JourneyBook) -> list:
    return sorted(journey.row() for journey in book.journeys.values())


def test_a_book_restores_from_its_pieces_after_a_crash_between_any_two_records_of_any_checkpoint():
    """Checkpoints of a book that grows, changes and shrinks, some refused; a crash after every record."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    processor = FamilyProcessor("shipments", Settings(), REGISTRY)
    state = processor.new_state()
    store: dict[bytes, bytes] = {}
    durable: list = []  # the book as of the newest head the store holds (none: empty)
    unconfirmed: set[bytes] = set()  # journey records of refused checkpoints
    for round_ in range(40):
        for _ in range(rng.randrange(1, 200)):
            sid = f"S{rng.randrange(400)}"
            milestone = rng.choice(["booked", "departed", "arrived", "delivered"])
            location = rng.choice([None, "CNQZH"])
            extra = {"location": location} if location else {}
            apply(processor, state, shipment(f"e{state.offset}", NOW - rng.uniform(0, DAY), milestone,
                                             shipment_id=sid, **extra), at=NOW)
        checkpoint = plan_checkpoint(0, state, {})
        head_at = [key for key, _ in checkpoint.records].index(head_key(0))
        refused = rng.random() < 0.2
        for written, (key, value) in enumerate(checkpoint.records):
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
            # A crash here: the store holds the newest head written so far and what it names.
            restored = read_checkpoint(0, store.get, processor.restore_state)
            expected = durable if written < head_at else book_state(state.journeys)
            got = [] if restored is None else book_state(restored.journeys)
            assert got == expected, f"seed {seed}, round {round_}, record {written}"
            if refused and written == head_at:
                break  # the rest never reached the broker; the worker never heard it was confirmed
        durable = book_state(state.journeys)
        if refused:
            unconfirmed |= {key for key, value in checkpoint.records if value is not None and b":journeys:" in key}
        else:
            state.journeys.mark_durable(checkpoint.journeys)
    # Whole books replace the pieces now and then, and remove the older ones: the changelog keeps only
    # what the newest head names, and pieces of refused checkpoints until the next whole book.
    named = {journey_key(0, piece, index) for piece, index in PartitionState.journey_chunks_of(store[head_key(0)])}
    assert {key for key in store if b":journeys:" in key} - named <= unconfirmed, f"seed {seed}"
    held = sum(piece.rows for piece in state.journeys.pieces_of(orjson.loads(store[head_key(0)])["journeys"])[0])
    assert held <= 3 * len(state.journeys) + 2 * COMPACT_SLACK, f"seed {seed}"


def test_no_piece_a_head_may_name_is_written_again():
    processor = FamilyProcessor("shipments", Settings(), REGISTRY)
    state = processor.new_state()
    seen: set[bytes] = set()
    for n in range(30):
        apply(processor, state, shipment(f"e{n}", NOW - n, "booked", shipment_id=f"S{n % 7}"), at=NOW)
        checkpoint = plan_checkpoint(0, state, {})
        written = {key for key, value in checkpoint.records if value is not None and b":journeys:" in key}
        assert not written & seen
        seen |= written
        if n % 3:
            state.journeys.mark_durable(checkpoint.journeys)
    assert journey_key(0, 0, 0) in seen


def test_memory_per_shipment_in_flight():
    """What one journey costs the worker (docs/metrics.md, "Shipments in flight"): about 590 bytes measured,
    the set of ids changed since the last checkpoint included; bounded here at 1 KB."""
    processor = FamilyProcessor("shipments", Settings(), REGISTRY)
    state = processor.new_state()
    n = 5000
    events = [orjson.loads(shipment(f"e{i}", NOW - i, "departed", shipment_id=f"ILSTC-CKG-{i:08d}",
                                    location="CNCKG", planned_arrival=iso(NOW + 6 * DAY))) for i in range(n)]
    raw = [orjson.dumps(events[i:i + 500]) for i in range(0, n, 500)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for offset, record in enumerate(raw):
        processor.process(state, 0, offset, NOW, record)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    dedup = 16 * n  # the dedup index's hash per event, bounded in tests/unit/core/test_dedup.py
    per_journey = (held - dedup) / n
    print(f"memory per shipment in flight: {per_journey:.0f} bytes")
    assert len(state.journeys) == n
    assert per_journey < 1024, per_journey
