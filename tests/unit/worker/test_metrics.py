"""The worker's collectors: labels that survive partition moves, base units, and the worker's own status."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import cast

import orjson
from faust.types import ProducerT
from prometheus_client import CollectorRegistry, generate_latest

from schemas.samples import sample_event
from streams.core.clock import ManualClock
from streams.core.processor import FamilyProcessor, rejected_reasons
from streams.core.registry import Registry
from streams.settings import Settings
from streams.worker.metrics import (
    CorridorCollector,
    EventDelays,
    ExportedPartition,
    WorkerCollector,
    WorkerHealth,
    WorkerStatus,
    build_registry,
)
from streams.worker.sensor import WorkerSensor

NOW = datetime(2026, 11, 26, 12, 0, 7, tzinfo=UTC).timestamp()
FAMILIES = ["shipments", "finance"]


def event(family: str, event_id: str, **overrides) -> dict:
    return sample_event(family, event_id=event_id, event_time=datetime.fromtimestamp(NOW - 60, UTC).isoformat(),
                        **overrides)


class Exported:
    def __init__(self, parts: dict[str, list[ExportedPartition]]) -> None:
        self.parts = parts

    def exported(self, family: str) -> list[ExportedPartition]:
        return self.parts.get(family, [])


def registry_of(parts: dict[str, list[ExportedPartition]]) -> CollectorRegistry:
    collector = CorridorCollector(Exported(parts), FAMILIES, rejected_reasons(), clock=ManualClock(NOW))
    return build_registry(collector)


def partition_with(family: str, partition: int, owner: str, *events: dict) -> ExportedPartition:
    processor = FamilyProcessor(family, Settings(), Registry.load(None))
    state = processor.new_state()
    processor.process(state, partition, 0, NOW, orjson.dumps(list(events)))
    return ExportedPartition(partition, owner, state.view())


def test_state_series_carry_partition_and_owner_and_windows_sum_over_partitions():
    registry = registry_of({"shipments": [
        partition_with("shipments", 0, "a-1", event("shipments", "x", teu=2.0, gross_weight_kg=1.5)),
        partition_with("shipments", 3, "b-7", event("shipments", "y", teu=1.0, gross_weight_kg=2.25)),
    ]})
    labels = {"corridor": "ILSTC", "route": "CNCKG-CNQZH-SGSIN", "mode": "rail_sea"}
    teu = "corridor_shipment_teu_total"
    assert registry.get_sample_value(teu, labels | {"partition": "0", "owner": "a-1"}) == 2.0
    assert registry.get_sample_value(teu, labels | {"partition": "3", "owner": "b-7"}) == 1.0
    grams = "corridor_shipment_gross_weight_grams_total"
    assert registry.get_sample_value(grams, labels | {"partition": "0", "owner": "a-1"}) == 1500.0
    assert registry.get_sample_value("corridor_shipment_teu_window", labels | {"window": "1h"}) == 3.0
    accepted = "corridor_events_accepted_total"
    assert registry.get_sample_value(accepted, {"stream": "shipments", "partition": "3", "owner": "b-7"}) == 1.0
    for reason in rejected_reasons():  # pre-created for every exported partition
        labels = {"stream": "shipments", "reason": reason, "partition": "0", "owner": "a-1"}
        assert registry.get_sample_value("corridor_events_rejected_total", labels) == 0.0


def test_countries_outside_the_registry_are_other():
    registry = registry_of({"finance": [
        partition_with("finance", 1, "a-2", event("finance", "f", lender_country="SG", borrower_country="KP")),
    ]})
    labels = {"instrument": "syndicated_loan", "lender_country": "SG", "borrower_country": "other",
              "partition": "1", "owner": "a-2"}
    assert registry.get_sample_value("corridor_finance_usd_total", labels) > 0


def test_a_family_with_no_exported_partition_has_no_state_series():
    registry = registry_of({})
    assert registry.get_sample_value("corridor_events_accepted_total", {"stream": "shipments"}) is None
    assert b"corridor_events_accepted_total{" not in generate_latest(registry)


class Status:
    def __init__(self, status: WorkerStatus) -> None:
        self.value = status

    def status(self) -> WorkerStatus:
        return self.value


def test_the_worker_collector_reports_build_restore_checkpoint_age_and_only_known_lag():
    health = WorkerHealth(FAMILIES)
    health.rebalances = 2
    health.commit_latency.observe(30)
    status = WorkerStatus(
        lag={("corridor.shipments.v1", 0): 5, ("corridor.shipments.v1", 1): -3},
        restoring={"shipments": 2, "finance": 0},
        restore_seconds=4.5,
        checkpoint_age={("shipments", 0): 1.25},
        broker="kafka",
        lag_seconds={("corridor.shipments.v1", 0): 42.5, ("corridor.shipments.v1", 1): 0.0},
    )
    registry = build_registry(WorkerCollector(Status(status), EventDelays(FAMILIES), health), process=True)
    value = registry.get_sample_value
    build = {"version": metadata.version("corridor-monitor"), "python": platform.python_version(), "broker": "kafka"}
    assert value("corridor_build_info", build) == 1
    assert value("corridor_consumer_lag", {"topic": "corridor.shipments.v1", "partition": "0"}) == 5
    assert value("corridor_consumer_lag", {"topic": "corridor.shipments.v1", "partition": "1"}) == 0
    assert value("corridor_consumer_lag", {"topic": "corridor.shipments.v1", "partition": "2"}) is None
    assert value("corridor_consumer_lag_seconds", {"topic": "corridor.shipments.v1", "partition": "0"}) == 42.5
    assert value("corridor_consumer_lag_seconds", {"topic": "corridor.shipments.v1", "partition": "1"}) == 0
    assert value("corridor_consumer_lag_seconds", {"topic": "corridor.shipments.v1", "partition": "2"}) is None
    assert value("corridor_partitions_restoring", {"stream": "shipments"}) == 2
    assert value("corridor_restore_seconds") == 4.5
    assert value("corridor_checkpoint_age_seconds", {"stream": "shipments", "partition": "0"}) == 1.25
    assert value("corridor_rebalances_total") == 2
    assert value("corridor_commit_latency_seconds_bucket", {"le": "0.05"}) == 1
    assert value("process_cpu_seconds_total") is not None
    major, minor, patch = platform.python_version_tuple()
    python = {"implementation": "CPython", "major": major, "minor": minor, "patchlevel": patch,
              "version": platform.python_version()}
    assert value("python_info", python) == 1


def test_a_revoked_partition_shows_its_counters_but_not_its_windows_or_freshness():
    departed = event("shipments", "x", teu=2.0)
    revoked = partition_with("shipments", 0, "a-1", departed)
    registry = registry_of({"shipments": [
        ExportedPartition(revoked.partition, revoked.owner, revoked.view, revoked=True),
        partition_with("shipments", 0, "b-1", departed),  # the next owner, restored from the same state
    ]})
    labels = {"corridor": "ILSTC", "route": "CNCKG-CNQZH-SGSIN", "mode": "rail_sea"}
    for owner in ("a-1", "b-1"):
        assert registry.get_sample_value(
            "corridor_shipment_teu_total", labels | {"partition": "0", "owner": owner}
        ) == 2.0
    assert registry.get_sample_value("corridor_shipment_teu_window", labels | {"window": "1h"}) == 2.0
    freshness = {"stream": "shipments", "key": "CNCKG-CNQZH-SGSIN"}
    assert registry.get_sample_value("corridor_last_event_timestamp_seconds", freshness) == NOW - 60


def test_send_errors_are_counted_by_topic_the_dead_letter_topic_from_zero():
    health = WorkerHealth(FAMILIES, send_topics=("corridor.deadletter.v1",))
    sensor = WorkerSensor(health)
    registry = build_registry(WorkerCollector(Status(WorkerStatus({}, {}, 0.0, {})), EventDelays(FAMILIES), health))
    assert registry.get_sample_value("corridor_send_errors_total", {"topic": "corridor.deadletter.v1"}) == 0
    producer = cast(ProducerT, object())
    for topic in ("corridor.deadletter.v1", "corridor-state-shipments-changelog", "corridor.deadletter.v1"):
        state = sensor.on_send_initiated(producer, topic, message=None, keysize=0, valsize=0)
        sensor.on_send_error(producer, RuntimeError("refused"), state)
    assert registry.get_sample_value("corridor_send_errors_total", {"topic": "corridor.deadletter.v1"}) == 2
    assert registry.get_sample_value(
        "corridor_send_errors_total", {"topic": "corridor-state-shipments-changelog"}) == 1
